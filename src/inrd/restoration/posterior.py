"""INRD posterior sampling: the INRD loop (paper, Sec. 2.3) with each relaxed denoising step made
consistent with the observation ``y = A v + w``, ``w ~ N(0, nu^2 Id)``:

    U_t     = V_t + gamma_t Z_t                                   (noise level sigma_t, eq. 20)
    X_t     = D_{sigma_t}(U_t)                                    (estimate of E[v | U_t])
    X^y_t   = argmin_x ||A x - y||^2 / (2 nu^2) + lam ||x - X_t||^2 / (2 sigma_t^2)
            = prox_l2(X_t, y, sigma_t^2 / (lam nu^2))             (data-consistent estimate)
    V_{t-1} = (1 - rho_t) U_t + rho_t X^y_t                        (relaxation, eq. 13)

So the posterior sampler is :func:`inrd.sample` run with the denoiser :class:`DataConsistent`
(``X^y_t`` in place of ``X_t``). The unconditional sampler is recovered with ``lam -> infinity`` (X^y_t = X_t). The proximal step is
the one of DiffPIR (Zhu et al., CVPR 2023) and the projection-type consistency of Kadkhodaie &
Simoncelli (NeurIPS 2021, the paper's ref. [15]); its weight follows the denoiser's uncertainty:
while sigma_t >> nu the data dominate, as sigma_t falls the denoised estimate (which already carries
the data) does. Schedules are :mod:`inrd.schedules`, relaxations and gammas :mod:`inrd.relaxations`; noise is
:class:`inrd.noise.PerSampleNoise` (sample i of seed s is the same image whatever the batch).

Several samples of one observation give a posterior mean (the restored image) and a per-pixel std.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional

import torch

from .. import relaxations, schedules
from ..choices import Rho
from ..metrics import psnr as _psnr
from ..sampler import SamplingDiverged, Step, sample
from .common import check_trained_range, fidelity, positive, setup
from .result import PnPResult, diagnose

__all__ = ["inrd_posterior", "DataConsistent", "POSTERIOR_SIGMA_MAX"]

#: first level of the default schedule ([0, 1] units) for nu up to it (above, the first level is nu): the
#: largest FFDNet was trained for is 75/255 ~ 0.29; a start above the error of physics.init(y) but inside
#: every shipped denoiser's range
POSTERIOR_SIGMA_MAX = 0.2


class DataConsistent:
    """``X^y = prox_l2(D_sigma(u), y, sigma^2 / (lam nu^2))``: a denoiser whose output is made consistent
    with the observation ``y = A v + w`` (module docstring). INRD with this denoiser is the posterior sampler."""

    def __init__(self, denoiser: Callable, physics, y: torch.Tensor, nu: float, lam: float):
        self.denoiser, self.physics, self.y, self.nu, self.lam = denoiser, physics, y, nu, lam
        self.sigma_range = getattr(denoiser, "sigma_range", None)

    def __call__(self, u: torch.Tensor, sigma: float) -> torch.Tensor:
        return self.physics.prox_l2(self.denoiser(u, sigma), self.y, sigma**2 / (self.lam * self.nu**2))


def inrd_posterior(y: torch.Tensor, physics, denoiser: Callable, samples: int = 3, steps: int = 30,
                   sigma_max: Optional[float] = None, sigma_min: Optional[float] = None,
                   rho: Rho = "ind", lam: float = 1.0, seed: int = 0,
                   init: Optional[torch.Tensor] = None, x_true: Optional[torch.Tensor] = None,
                   noise_level: float = 0.01, callback: Optional[Callable] = None, **diagnose_options) -> PnPResult:
    """Draw ``samples`` approximate posterior samples of each observation (module docstring).

    Args:
        y: observation (B, C, h, w). physics: operator with ``A``, ``A_adjoint``, ``prox_l2``.
        denoiser: ``D(x, sigma)``, any (an MMSE denoiser makes X_t the posterior mean of the prior).
        samples: S samples per observation (drawn as one batch of B * S).
        steps: T; the levels are ``schedules.geometric(T, sigma_min, sigma_max)`` with sigma_0 = 0.
        sigma_max: sigma_T, default ``max(POSTERIOR_SIGMA_MAX, nu)`` (the start's noise is at least nu:
            physics.init(y) carries the observation's); V_T is ``init`` (default ``physics.init(y)``) and
            gamma_T = sigma_T. A nu above the top of the denoiser's trained range is refused.
        sigma_min: sigma_1, default nu / 2 (raised to the smallest level the denoiser was trained for).
        rho: relaxation (:data:`inrd.choices.Rho`): "ind" (rho = 1, the default: when V_T = physics.init(y) +
            sigma_T Z, the init's error is not Gaussian noise of level sigma_T, the denoiser leaves it and a
            relaxation rho < 1 carries it on), "canonical" (DDPM-like), "ddim", a number; measured in
            docs/posterior.md.
        lam: weight of the proximity term relative to ``nu^2 / sigma_t^2`` (larger: trust X_t more).
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
    check_trained_range(nu, denoiser, "inrd-posterior")
    s_hi = max(POSTERIOR_SIGMA_MAX, nu) if sigma_max is None else positive("sigma_max", sigma_max)
    trained_lo = float((getattr(denoiser, "sigma_range", None) or (0.0,))[0])  # e.g. sigma_1 of a DDPM network
    s_lo = positive("sigma_min", sigma_min if sigma_min is not None else max(nu / 2, trained_lo))
    if s_lo >= s_hi:
        raise ValueError(f"sigma_min = {s_lo:g} must be below sigma_max = {s_hi:g}.")
    plan = relaxations.scheme(schedules.geometric(steps, s_lo, s_hi), rho)
    B, S = y.shape[0], samples
    consistent = DataConsistent(denoiser, physics, y.repeat_interleave(S, dim=0), nu, lam)
    res = PnPResult(x=v0)
    res.params = dict(algorithm="inrd-posterior", samples=S, steps=int(steps), sigma_max=s_hi, sigma_min=s_lo,
                      rho=rho if isinstance(rho, (str, float, int)) else "tensor", lam=lam, seed=seed, noise_level=nu)

    def mean(x):  # per-observation mean over its S samples
        return x.reshape(B, S, *x.shape[1:]).mean(dim=1)

    res.norm.append(float(v0.double().norm()))
    last = [v0]  # the mean data-consistent estimate of the last finite step

    def record(step: Step) -> None:
        m = mean(step.denoised)
        res.residual.append(float((m - last[0]).double().norm() / max(res.norm[-1], 1e-300)))
        res.norm.append(float(m.double().norm()))
        res.fidelity.append(fidelity(physics, m, y, nu)[1])
        res.sigma.append(step.sigma)
        if x_true is not None:
            res.psnr.append(float(_psnr(m, x_true).mean()))
        last[0] = m
        if callback is not None:
            callback(plan.T - step.t + 1, m)

    # the INRD loop itself: only finiteness is checked (max_abs = inf), a diverged run keeps its curves
    try:
        V = sample(consistent, plan, init=v0.repeat_interleave(S, dim=0), seed=seed, callback=record, max_abs=math.inf)
        finite = True
    except SamplingDiverged as stop:
        V, finite = stop.last, False
    res.samples = V.detach()
    res.x = mean(V) if finite else last[0]
    res.std = V.reshape(B, S, *V.shape[1:]).std(dim=1, unbiased=S > 1) if S > 1 else torch.zeros_like(res.x)
    if x_true is not None and finite:
        res.params["psnr_per_sample"] = [float(p) for p in _psnr(V, x_true.repeat_interleave(S, dim=0))]
    res.params["iters_run"] = len(res.residual)
    res.seconds = time.perf_counter() - t0
    res.verdict, res.evidence = diagnose(res.residual, res.norm, res.psnr, finite=finite, **diagnose_options)
    return res
