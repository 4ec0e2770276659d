"""Plug-and-play optimisation: the paper's raw PnP-PGD, the convergent GS-PnP, and DPIR-style HQS.

All three minimise (or, for the raw scheme, try to) ``f(v) + prior`` with the data term
``f(v) = ||A v - y||^2 / (2 nu^2)`` (:mod:`inrd.restoration.common`) and return a
:class:`~inrd.restoration.result.PnPResult` with per-iteration curves and a stability verdict.

**Raw PnP-PGD** (:func:`pnp_pgd`, the scheme of the paper's Fig. 4): ``v_{n+1} = D_sigma(v_n - tau
grad f(v_n))``. ``stepsize`` is the paper's tau, in units of nu^2 (grad f has a 1/nu^2 inside); grad f
is L-Lipschitz with ``L = ||A||^2 / nu^2`` and the default is ``tau = 1 / L``. Any ``tau <= 2 / L``
keeps the gradient step non-expansive; beyond, :func:`pnp_pgd` warns. Nothing guarantees convergence:
the fixed-point map is non-expansive only if D is, which trained networks are not.

**GS-PnP** (:func:`gs_pnp`, Hurault, Leclaire, Papadakis, ICLR 2022, the paper's ref. [11]):
proximal gradient with backtracking on an explicit objective; converges.

**HQS with a decreasing sigma** (:func:`hqs`, DPIR: Zhang et al., IEEE TPAMI 2021):
``z_k = prox_{f / mu_k}(v_{k-1})``, ``v_k = D_{sigma_k}(z_k)``, sigma_k geometric from 49/255 down to nu
and ``mu_k = lam / sigma_k^2``: early steps denoise strongly, late ones trust the data.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Callable, Optional

import torch

from .common import check_trained_range, fidelity, positive, record, setup, sigma_check
from .physics import operator_norm
from .result import PnPResult, diagnose

__all__ = ["pnp_pgd", "gs_pnp", "hqs"]


def _finish(res: PnPResult, v, finite: bool, t0: float, diagnose_options) -> PnPResult:
    res.x = v.detach()
    res.params["iters_run"] = len(res.residual)
    res.seconds = time.perf_counter() - t0
    res.verdict, res.evidence = diagnose(res.residual, res.norm, res.psnr, finite=finite, **diagnose_options)
    return res


def pnp_pgd(y: torch.Tensor, physics, denoiser: Callable, sigma_denoiser: float, stepsize: Optional[float] = None,
            iters: int = 100, init: Optional[torch.Tensor] = None, x_true: Optional[torch.Tensor] = None,
            noise_level: float = 0.01, callback: Optional[Callable] = None, **diagnose_options) -> PnPResult:
    """Raw PnP-PGD (paper, Sec. 3.3): ``v_{n+1} = D_sigma(v_n - tau grad f(v_n))``.

    Args:
        y: observation (B, C, h, w), finite. physics: the operator A.
        denoiser: ``D(x, sigma)`` ([0, 1] units); called under ``torch.no_grad``.
        sigma_denoiser: sigma passed to D at every iteration (> 0).
        stepsize: tau, in units of nu^2; default ``nu^2 / ||A||^2`` (= 1 / L).
        iters: number of iterations N. init: v_0 (default ``physics.init(y)``).
        x_true: ground truth, for the PSNR curve. noise_level: nu > 0 ([0, 1] units).
        callback: ``callback(n, v_n)`` after each iteration.
        diagnose_options: ``tol``, ``growth``, ``blowup``, ``window`` for :func:`diagnose`.

    The run stops early on a non-finite iterate (``x`` is then the last finite one, verdict ``diverging``).
    """
    t0 = time.perf_counter()
    v, nu = setup(y, physics, iters, noise_level, init, x_true)
    sigma = sigma_check(sigma_denoiser, denoiser)
    L = operator_norm(physics, v) ** 2 / nu**2
    if L <= 0:
        raise ValueError("the operator A is zero; nothing can be restored.")
    tau = 1.0 / L if stepsize is None else positive("stepsize (tau, in units of nu^2)", stepsize)
    if tau * L > 2:
        warnings.warn(f"stepsize tau = {tau:g} is {tau * L:.3g} / L > 2 / L: the gradient step itself is expansive.", stacklevel=2)
    res = PnPResult(x=v)
    res.params = dict(algorithm="pnp-pgd", sigma_denoiser=sigma, stepsize=tau, stepsize_normalized=tau * L,
                      lipschitz=L, noise_level=nu, iters=int(iters))
    res.norm.append(float(v.double().norm()))
    Av, _ = fidelity(physics, v, y, nu)
    finite = True
    with torch.no_grad():
        for n in range(iters):
            v_new = denoiser(v - (tau / nu**2) * physics.A_adjoint(Av - y), sigma)
            if not torch.isfinite(v_new).all():
                finite = False
                break
            Av, fid = fidelity(physics, v_new, y, nu)
            record(res, v_new, (v, res.norm[-1]), fid, x_true)
            v = v_new
            if callback is not None:
                callback(n + 1, v)
    return _finish(res, v, finite, t0, diagnose_options)


def gs_pnp(y: torch.Tensor, physics, network: Callable, sigma_denoiser: float, iters: int = 100,
           lam: Optional[float] = None, step: float = 1.0, init: Optional[torch.Tensor] = None,
           x_true: Optional[torch.Tensor] = None, noise_level: float = 0.01, gamma: float = 0.1, eta: float = 0.5,
           max_backtracks: int = 20, callback: Optional[Callable] = None, **diagnose_options) -> PnPResult:
    """Convergent PnP (Hurault et al., ICLR 2022, "GS-PnP"): proximal gradient descent on
    ``F(v) = f(v) + lam g_sigma(v)``, ``g_sigma(v) = ||v - N_sigma(v)||^2 / 2`` for a differentiable
    network N, whose gradient step ``v - grad g_sigma(v)`` is the gradient-step denoiser ``D^GS``:

        v_{n+1} = prox_{tau f}(v_n - tau lam grad g_sigma(v_n)),    tau lam = ``step`` initially,

    ``prox_{tau f}`` exact (``physics.prox_l2``). Convergence (their theorem, via Attouch-Bolte-
    Svaiter): if grad g is L_g-Lipschitz and ``tau lam L_g < 1``, F(v_n) decreases and v_n converges
    to a critical point of F. L_g is unknown, so tau is found by backtracking (their Alg. 1): while
    ``F(v_n) - F(v_{n+1}) < (gamma / tau) ||v_{n+1} - v_n||^2``, ``tau <- eta tau``. With a ReLU
    network (FFDNet) g is only piecewise smooth; a failed backtracking is counted in
    ``backtracking_failures``. ``D^GS = N + J_N^T (Id - N)`` denoises less than N, so a larger sigma suits.

    Args:
        network: ``N(x, sigma)``, differentiable by autograd (an error says so if its output is detached).
        lam: prior weight; default ``1 / sigma^2`` (Tweedie: g / sigma^2 ~ -log p_sigma, so F is a
            negative log-posterior). step: initial ``tau lam`` in (0, 1].
        gamma, eta: sufficient-decrease constant in (0, 1/2) and backtracking factor in (0, 1).
        Other arguments as :func:`pnp_pgd`.
    """
    t0 = time.perf_counter()
    v, nu = setup(y, physics, iters, noise_level, init, x_true, prox=True)
    sigma = sigma_check(sigma_denoiser, network)
    lam = 1.0 / sigma**2 if lam is None else positive("lam", lam)
    step = positive("step", step)
    if not (0 < gamma < 0.5 and 0 < eta < 1):
        raise ValueError(f"need 0 < gamma < 1/2 and 0 < eta < 1, got gamma={gamma}, eta={eta}.")
    tau = step / lam
    potential = lambda x: _gs_potential(network, x, sigma)  # noqa: E731
    res = PnPResult(x=v)
    res.params = dict(algorithm="gs-pnp", reference="Hurault, Leclaire, Papadakis, ICLR 2022", sigma_denoiser=sigma,
                      lam=lam, step=step, noise_level=nu, iters=int(iters), gamma=gamma, eta=eta)
    res.norm.append(float(v.double().norm()))
    g, grad = potential(v)
    Fv = fidelity(physics, v, y, nu)[1] + lam * g
    failures, finite, taus = 0, True, []
    for n in range(iters):
        t, (v_new, grad_new, fid, F_new), accepted = _backtrack(
            physics, potential, y, v, grad, Fv, tau, lam, nu, gamma, eta, max_backtracks)
        if not accepted:
            failures += 1  # keep the last candidate: the run continues, the failure is reported
            if not torch.isfinite(v_new).all():
                finite = False
                break
        tau = t  # Alg. 1 keeps the reduced step for the next iterations
        taus.append(t * lam)
        record(res, v_new, (v, res.norm[-1]), fid, x_true)
        res.objective.append(F_new)
        v, grad, Fv = v_new, grad_new, F_new
        if callback is not None:
            callback(n + 1, v)
    res.params.update(final_step=taus[-1] if taus else step, backtracking_failures=failures)
    return _finish(res, v, finite, t0, diagnose_options)


def _gs_potential(network: Callable, x: torch.Tensor, sigma: float):
    """``g_sigma(x) = ||x - N_sigma(x)||^2 / 2`` (pooled over the batch) and its gradient, by autograd."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        out = network(x, sigma)
        if not out.requires_grad:
            raise ValueError("gs_pnp needs a network differentiable by autograd; its output is detached from the input.")
        g = 0.5 * (x - out).double().pow(2).sum()
        (grad,) = torch.autograd.grad(g, x)
    return float(g.detach()), grad.detach()


def _backtrack(physics, potential, y, v, grad, Fv, t, lam, nu, gamma, eta, max_backtracks):
    """One GS-PnP step from ``v`` with backtracking on ``t`` (Hurault et al., Alg. 1): ``(t, candidate,
    accepted)``, the candidate ``(v_new, grad g(v_new), f(v_new), F(v_new))`` being the last one tried (only
    ``v_new`` when it is not finite); ``t`` is reduced by ``eta`` after each rejected candidate."""
    candidate = None
    for _ in range(max_backtracks + 1):
        with torch.no_grad():
            v_new = physics.prox_l2(v - t * lam * grad, y, t / nu**2)
        if not torch.isfinite(v_new).all():
            candidate = (v_new, None, None, None)
            t *= eta
            continue
        g_new, grad_new = potential(v_new)
        fid = fidelity(physics, v_new, y, nu)[1]
        F_new = fid + lam * g_new
        candidate = (v_new, grad_new, fid, F_new)
        if math.isfinite(F_new) and Fv - F_new >= gamma / t * float((v_new - v).double().pow(2).sum()):
            return t, candidate, True
        t *= eta
    return t, candidate, False


#: DPIR's first level, 49/255 ([0, 1] units), and its weight lam = 0.23 (Zhang et al. 2021, deblurring)
HQS_SIGMA_MAX = 49.0 / 255.0
HQS_LAM = 0.23


def hqs(y: torch.Tensor, physics, denoiser: Callable, iters: int = 8, sigma_max: Optional[float] = None,
        sigma_min: Optional[float] = None, lam: float = HQS_LAM, init: Optional[torch.Tensor] = None,
        x_true: Optional[torch.Tensor] = None, noise_level: float = 0.01, callback: Optional[Callable] = None,
        **diagnose_options) -> PnPResult:
    """Half-quadratic splitting with a decreasing denoiser level (DPIR, Zhang et al., TPAMI 2021):

        z_k = argmin_x ||A x - y||^2 / (2 nu^2) + lam ||x - v_{k-1}||^2 / (2 sigma_k^2)
            = prox_l2(v_{k-1}, y, sigma_k^2 / (lam nu^2)),
        v_k = D_{sigma_k}(z_k),        k = 1..iters,

    with ``sigma_k`` geometric from ``sigma_max`` (default ``max(49/255, sigma_min)``: for nu above 49/255
    every level is nu) to ``sigma_min`` (default nu, raised to the smallest level the denoiser was trained
    for, floored at 0.001): the prior's weight ``lam / sigma_k^2`` grows as the denoiser's level falls, so
    the last steps trust the data. A noise level above the top of the denoiser's trained range
    (``sigma_range[1]``, 75/255 for FFDNet) is refused: the last levels would leave it. The defaults are deepinv's ``DPIR`` (8 levels, lam = 0.23; deepinv also
    floors nu at 0.01 in the weight); :func:`~inrd.restoration.restore` uses per-task values
    (``HQS_TASK_OPTIONS``). The residual is only reported: the scheme stops after ``iters`` by design.
    """
    t0 = time.perf_counter()
    v, nu = setup(y, physics, iters, noise_level, init, x_true, prox=True)
    check_trained_range(nu, denoiser, "hqs")
    trained_lo = float((getattr(denoiser, "sigma_range", None) or (0.0,))[0])  # e.g. sigma_1 of a DDPM network
    s_lo = max(positive("sigma_min", sigma_min if sigma_min is not None else max(nu, trained_lo)), 1e-3)
    s_hi = max(HQS_SIGMA_MAX, s_lo) if sigma_max is None else positive("sigma_max", sigma_max)
    lam = positive("lam", lam)
    if s_lo > s_hi and sigma_min is None:  # the last level defaults to nu: the noise is above the first level
        raise ValueError(f"noise_level = {nu:g} is above HQS's first denoiser level sigma_max = {s_hi:g}; the levels "
                         f"decrease from sigma_max to nu: raise sigma_max or use pnp-pgd / gs-pnp.")
    if s_lo > s_hi:
        raise ValueError(f"sigma_min = {s_lo:g} exceeds sigma_max = {s_hi:g}; the levels must decrease.")
    sigmas = torch.logspace(math.log10(s_hi), math.log10(s_lo), iters, dtype=torch.float64).tolist()
    res = PnPResult(x=v)
    res.params = dict(algorithm="hqs", reference="Zhang et al., TPAMI 2021 (DPIR)", sigma_max=s_hi, sigma_min=s_lo,
                      lam=lam, noise_level=nu, iters=int(iters))
    res.norm.append(float(v.double().norm()))
    finite = True
    with torch.no_grad():
        for k, s in enumerate(sigmas):
            z = physics.prox_l2(v, y, s**2 / (lam * nu**2))
            v_new = denoiser(z, s)
            if not torch.isfinite(v_new).all():
                finite = False
                break
            record(res, v_new, (v, res.norm[-1]), fidelity(physics, v_new, y, nu)[1], x_true)
            res.sigma.append(s)
            v = v_new
            if callback is not None:
                callback(k + 1, v)
    return _finish(res, v, finite, t0, diagnose_options)
