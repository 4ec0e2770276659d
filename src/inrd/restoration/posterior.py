"""INRD posterior sampling: the INRD loop (paper, Sec. 2.3) with each relaxed denoising step made
consistent with the observation ``y = A v + w``, ``w ~ N(0, nu^2 Id)``:

    U_t     = V_t + gamma_t Z_t                                   (noise level sigma_t, eq. 20)
    X_t     = D_{sigma_t}(U_t)                                    (estimate of E[v | U_t])
    X^y_t   = argmin_x ||A x - y||^2 / (2 nu^2) + lam ||x - X_t||^2 / (2 sigma_t^2)
            = prox_l2(X_t, y, sigma_t^2 / (lam nu^2))             (data-consistent estimate)
    V_{t-1} = (1 - rho_t) U_t + rho_t X^y_t                        (relaxation, eq. 13)

The unconditional sampler is recovered with ``lam -> infinity`` (X^y_t = X_t). The proximal step is
the one of DiffPIR (Zhu et al., CVPR 2023) and the projection-type consistency of Kadkhodaie &
Simoncelli (NeurIPS 2021, the paper's ref. [15]); its weight follows the denoiser's uncertainty:
while sigma_t >> nu the data dominate, as sigma_t falls the denoised estimate (which already carries
the data) does. Schedules are :mod:`inrd.schedules`', relaxations and gammas :mod:`inrd.relaxations`'; noise is
:class:`inrd.sampler.PerSampleNoise` (sample i of seed s is the same image whatever the batch).

Several samples of one observation give a posterior mean (the restored image) and a per-pixel std.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import torch

from .. import relaxations, schedules
from ..metrics import psnr as _psnr
from ..sampler import PerSampleNoise
from .algorithms import fidelity, positive, setup
from .diagnostics import PnPResult, diagnose

__all__ = ["inrd_posterior", "POSTERIOR_SIGMA_MAX"]

#: first level of the default schedule ([0, 1] units): the largest FFDNet was trained for is 75/255 ~ 0.29;
#: a start above the error of physics.init(y) but inside every shipped denoiser's range
POSTERIOR_SIGMA_MAX = 0.2


def inrd_posterior(y: torch.Tensor, physics, denoiser: Callable, samples: int = 3, steps: int = 30,
                   sigma_max: float = POSTERIOR_SIGMA_MAX, sigma_min: Optional[float] = None,
                   rho: relaxations.Relaxation = "ind", lam: float = 1.0, seed: int = 0,
                   init: Optional[torch.Tensor] = None, x_true: Optional[torch.Tensor] = None,
                   noise_level: float = 0.01, callback: Optional[Callable] = None, **diagnose_options) -> PnPResult:
    """Draw ``samples`` approximate posterior samples of each observation (module docstring).

    Args:
        y: observation (B, C, h, w). physics: operator with ``A``, ``A_adjoint``, ``prox_l2``.
        denoiser: ``D(x, sigma)``, any (an MMSE denoiser makes X_t the posterior mean of the prior).
        samples: S samples per observation (drawn as one batch of B * S).
        steps: T; the levels are ``schedules.geometric(T, sigma_min, sigma_max)`` with sigma_0 = 0.
        sigma_max: sigma_T; V_T is ``init`` (default ``physics.init(y)``) and gamma_T = sigma_T.
        sigma_min: sigma_1, default nu / 2 (raised to the smallest level the denoiser was trained for).
        rho: relaxation (``relaxations.relaxation``): "ind" (rho = 1, the default), "canonical"
            (DDPM-like), "ddim", a float. Measured (FFDNet, astronaut 64x64, 2 samples x 30 steps,
            lam = 1): "ind" / "canonical" / "ddim" gave 26.3 / 18.6 / 17.7 dB on inpainting (half the
            pixels missing), 29.1 / 25.6 / 24.3 dB on denoising (nu = 0.1) and 27.1 / 26.0 / 25.4 dB on
            deblurring: when V_T = physics.init(y) + sigma_T Z, the init's error is not Gaussian noise of
            level sigma_T, the denoiser leaves it, and a relaxation rho < 1 carries it on.
        lam: weight of the proximity term relative to ``nu^2 / sigma_t^2`` (larger: trust X_t more);
            lam = 10 lost 0.4-4.8 dB against lam = 1 with "ind" in the measurement above.
        seed: noise seed (``PerSampleNoise``); x_true: truth, for the PSNR curve.

    Returns a :class:`PnPResult` with ``samples`` (B * S images, those of observation b contiguous),
    ``x`` their per-observation mean, ``std`` the per-pixel std over the S samples (0 when S = 1) and
    per-step curves of the mean data-consistent estimate (``psnr``, ``residual``, ``fidelity``, ``sigma``).
    """
    t0 = time.perf_counter()
    v0, nu = setup(y, physics, steps, noise_level, init, x_true, prox=True)
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}.")
    lam = positive("lam", lam)
    s_hi = positive("sigma_max", sigma_max)
    trained_lo = float((getattr(denoiser, "sigma_range", None) or (0.0,))[0])  # e.g. sigma_1 of a DDPM network
    s_lo = positive("sigma_min", sigma_min if sigma_min is not None else max(nu / 2, trained_lo))
    if s_lo >= s_hi:
        raise ValueError(f"sigma_min = {s_lo:g} must be below sigma_max = {s_hi:g}.")
    sigmas = schedules.geometric(steps, s_lo, s_hi)
    rhos = relaxations.relaxation(sigmas, rho)
    gam = relaxations.gammas(sigmas, rho)
    B, S = y.shape[0], samples
    Y = y.repeat_interleave(S, dim=0)
    V = v0.repeat_interleave(S, dim=0)
    noise = PerSampleNoise(seed, B * S)
    res = PnPResult(x=v0)
    res.params = dict(algorithm="inrd_posterior", samples=S, steps=int(steps), sigma_max=s_hi, sigma_min=s_lo,
                      rho=rho if isinstance(rho, (str, float, int)) else "tensor", lam=lam, seed=seed, noise_level=nu)

    def mean(x):  # per-observation mean over its S samples
        return x.reshape(B, S, *x.shape[1:]).mean(dim=1)

    prev = v0
    res.norm.append(float(prev.double().norm()))
    finite = True
    with torch.no_grad():
        for t in range(steps, 0, -1):
            s = float(sigmas[t])
            U = V + float(gam[t]) * noise(t, V)
            X = physics.prox_l2(denoiser(U, s), Y, s**2 / (lam * nu**2))
            V = (1 - float(rhos[t])) * U + float(rhos[t]) * X
            if not torch.isfinite(V).all():
                finite = False
                break
            m = mean(X)
            res.residual.append(float((m - prev).double().norm() / max(res.norm[-1], 1e-300)))
            res.norm.append(float(m.double().norm()))
            res.fidelity.append(fidelity(physics, m, y, nu)[1])
            res.sigma.append(s)
            if x_true is not None:
                res.psnr.append(float(_psnr(m, x_true).mean()))
            prev = m
            if callback is not None:
                callback(steps - t + 1, m)
    res.samples = V.detach()
    res.x = mean(V) if finite else prev
    res.std = V.reshape(B, S, *V.shape[1:]).std(dim=1, unbiased=S > 1) if S > 1 else torch.zeros_like(res.x)
    if x_true is not None and finite:
        res.params["psnr_per_sample"] = [float(p) for p in _psnr(V, x_true.repeat_interleave(S, dim=0))]
    res.params["iters_run"] = len(res.residual)
    res.seconds = time.perf_counter() - t0
    res.verdict, res.evidence = diagnose(res.residual, res.norm, res.psnr, finite=finite, **diagnose_options)
    return res
