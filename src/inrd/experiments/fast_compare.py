"""Accuracy of the reduced-precision fast path (:func:`inrd.fast.accelerate`) along a sampling run.

Reduced precision changes the samples: a sampler does not amplify the network's rounding errors, but it
does not average them out either. :func:`compare` runs INRD twice from the same seed (so with the same
noise ``Z_t`` at every step), once with the full-precision denoiser and once with the fast one, and
measures the error of every step and of the final images. ``benchmarks/compare_samplers.py --accuracy``
runs it for the package's networks.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..metrics import psnr
from ..sampler import sample

__all__ = ["compare"]


@torch.no_grad()
def compare(reference: Callable, fast: Callable, sigmas, rho="canonical", *, shape, seed: int = 0, **sample_kw) -> dict:
    """Accuracy of ``fast`` against ``reference`` (same denoiser, full precision) along INRD, same noise.

    Two measurements (both in [0, 1] units, images not clamped except for the PSNR):

    * per step t: on the *reference* trajectory's input ``u_t = V_t + gamma_t Z_t`` (paper eq. 20),
      ``rel_err[t] = ||D_fast(u_t) - D(u_t)|| / ||D(u_t)||`` and ``err_over_sigma[t] = RMS(D_fast(u_t) -
      D(u_t)) / sigma_t``: the error against the noise level the step removes, the scale on which a
      denoiser error matters (at small sigma_t a tiny absolute error is a large part of the step);
    * the whole run: ``psnr`` (dB, peak 1) between the two final images V_0, clamped to [0, 1], each
      run with its own denoiser from the same seed (errors propagate through the trajectory).

    Returns ``{"steps": [{t, sigma, rel_err, err_over_sigma}, ...], "rel_err_max", "rel_err_median",
    "err_over_sigma_max", "psnr" (per image), "psnr_min"}``. ``sample_kw`` goes to :func:`inrd.sample`.
    """
    rows = []

    def record(st) -> None:
        df = fast(st.noisy, st.sigma).to(st.denoised.dtype)
        diff = (df - st.denoised).flatten(1).double()
        ref = st.denoised.flatten(1).double()
        rows.append(
            {
                "t": st.t,
                "sigma": st.sigma,
                "rel_err": float(diff.norm() / ref.norm()),
                "err_over_sigma": float(diff.pow(2).mean().sqrt()) / st.sigma,
            }
        )

    v_ref = sample(reference, sigmas, rho, shape=shape, seed=seed, callback=record, **sample_kw)
    v_fast = sample(fast, sigmas, rho, shape=shape, seed=seed, **sample_kw)
    p = psnr(v_fast.clamp(0, 1), v_ref.clamp(0, 1))
    rel = torch.tensor([r["rel_err"] for r in rows])
    return {
        "steps": rows,
        "rel_err_max": float(rel.max()),
        "rel_err_median": float(rel.median()),
        "err_over_sigma_max": max(r["err_over_sigma"] for r in rows),
        "psnr": p.tolist(),
        "psnr_min": float(p.min()),
    }
