"""Linear baselines: Tikhonov-regularised least squares, its weight chosen with the truth (oracle) or
without it (Morozov's discrepancy principle).

``x_lam = argmin ||A x - y||^2 / 2 + lam ||R x||^2 / 2``, R = periodic forward differences
(``reg="gradient"``: the Wiener filter of a 1/|w|^2 image spectrum) or R = Id. Exact by FFT when A is a
periodic blur or Id (both diagonal in the DFT basis, as is R^T R); otherwise (inpainting,
super-resolution with the gradient prior) the normal equations ``(A^T A + lam R^T R) x = A^T y`` are
solved by conjugate gradients to a relative residual of 1e-7.
"""

from __future__ import annotations

import math

import torch

from ..metrics import psnr as _psnr
from ..validate import check_image
from .physics import Denoising, Downsampling, PeriodicBlur

__all__ = ["tikhonov", "tikhonov_deconvolution", "tikhonov_oracle", "tikhonov_discrepancy"]

#: default oracle grid: 49 values 10^(-6 + k/8), k = 0..48 (1e-6 to 1)
LAMS = tuple(10 ** (-6 + k / 8) for k in range(49))


def _gradient_symbol(H: int, W: int, device) -> torch.Tensor:
    """|R|^2 = 4 - 2 cos w1 - 2 cos w2 on the rFFT grid (periodic forward differences)."""
    w1 = 2 * math.pi * torch.fft.fftfreq(H, dtype=torch.float64, device=device)[:, None]
    w2 = 2 * math.pi * torch.fft.rfftfreq(W, dtype=torch.float64, device=device)[None, :]
    return 4 - 2 * torch.cos(w1) - 2 * torch.cos(w2)


def _RtR(u: torch.Tensor) -> torch.Tensor:
    """R^T R u for periodic forward differences (minus the periodic 5-point Laplacian)."""
    dx, dy = torch.roll(u, -1, -1) - u, torch.roll(u, -1, -2) - u
    return (torch.roll(dx, 1, -1) - dx) + (torch.roll(dy, 1, -2) - dy)


def _check_lam(lam) -> float:
    if not (isinstance(lam, (int, float)) and lam > 0 and math.isfinite(lam)):
        raise ValueError(f"the Tikhonov weight lam must be finite and > 0, got {lam!r}.")
    return float(lam)


def tikhonov_deconvolution(y: torch.Tensor, blur: PeriodicBlur, lam: float, reg: str = "gradient") -> torch.Tensor:
    """Exact Tikhonov for a periodic blur: ``X = conj(K) Y / (|K|^2 + lam |R|^2)`` (a frequency the
    kernel removes, K = 0, stays 0 with the gradient prior)."""
    check_image(y, "y")
    lam = _check_lam(lam)
    H, W = y.shape[-2:]
    if reg == "gradient":
        R2 = _gradient_symbol(H, W, y.device)
    elif reg == "identity":
        R2 = torch.ones(1, dtype=torch.float64, device=y.device)
    else:
        raise ValueError(f"reg must be 'gradient' or 'identity', got {reg!r}.")
    K = blur.transfer(y.shape, y.device) if not isinstance(blur, Denoising) else torch.ones(1, dtype=torch.complex128, device=y.device)
    den = K.abs() ** 2 + lam * R2
    X = K.conj() * torch.fft.rfft2(y.to(torch.float64)) / torch.where(den > 0, den, torch.ones_like(den))
    return torch.fft.irfft2(X, s=(H, W)).to(y.dtype)


def _cg(apply, b: torch.Tensor, x0: torch.Tensor, tol: float = 1e-7, iters: int = 1000) -> torch.Tensor:
    """Conjugate gradients for a symmetric positive definite ``apply``, one system per batch item."""
    x = x0.clone()
    r = b - apply(x)
    p = r.clone()
    dims = tuple(range(1, b.ndim))
    rr = (r * r).sum(dims, keepdim=True)
    stop = (tol**2) * (b * b).sum(dims, keepdim=True).clamp(min=1e-300)
    for _ in range(iters):
        if bool((rr <= stop).all()):
            break
        Ap = apply(p)
        alpha = rr / (p * Ap).sum(dims, keepdim=True).clamp(min=1e-300)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = (r * r).sum(dims, keepdim=True)
        p = r + (rr_new / rr.clamp(min=1e-300)) * p
        rr = rr_new
    return x


def tikhonov(y: torch.Tensor, physics, lam: float, reg: str = "gradient", x0=None) -> torch.Tensor:
    """``argmin ||A x - y||^2 / 2 + lam ||R x||^2 / 2`` for any operator (see the module docstring);
    ``x0`` warm-starts conjugate gradients."""
    check_image(y, "y")
    lam = _check_lam(lam)
    if reg not in ("gradient", "identity"):
        raise ValueError(f"reg must be 'gradient' or 'identity', got {reg!r}.")
    if isinstance(physics, Denoising) or (isinstance(physics, PeriodicBlur) and not isinstance(physics, Downsampling)):
        return tikhonov_deconvolution(y, physics, lam, reg)
    if reg == "identity" and hasattr(physics, "prox_l2"):  # (A^T A + lam I)^{-1} A^T y = prox_{f / lam}(0)
        aty = physics.A_adjoint(y)
        return physics.prox_l2(torch.zeros_like(aty), y, 1.0 / lam)
    yd = y.to(torch.float64)
    b = physics.A_adjoint(yd)
    x0 = physics.init(yd) if x0 is None and hasattr(physics, "init") else (b if x0 is None else x0.to(torch.float64))
    x = _cg(lambda u: physics.A_adjoint(physics.A(u)) + lam * _RtR(u), b, x0)
    return x.to(y.dtype)


def tikhonov_oracle(y, physics, x_true, lams=None, reg: str = "gradient"):
    """The best :func:`tikhonov` over a grid of ``lam`` *chosen with the truth* (an upper bound on what
    this linear method can do: a generous baseline); default grid :data:`LAMS`. Returns
    ``(x, lam, psnr)``; the PSNR is the batch mean."""
    check_image(x_true, "x_true")
    best, x = None, None
    for lam in (LAMS if lams is None else lams):
        x = tikhonov(y, physics, lam, reg, x0=x)
        p = float(_psnr(x, x_true).mean())
        if best is None or p > best[2]:
            best = (x, float(lam), p)
    return best


def tikhonov_discrepancy(y, physics, noise_level: float, reg: str = "gradient", iters: int = 40):
    """:func:`tikhonov` with ``lam`` from Morozov's discrepancy principle: the largest lam with
    ``||A x_lam - y||^2 <= m nu^2`` (m measurements), the smoothest solution that explains y up to the
    noise; truth-free, it knows nu as PnP does. The residual grows with lam, so a bisection on
    log10(lam) in [-8, 2] finds it (``iters`` halvings: lam to a factor 10^(10 / 2^iters)); one lam per
    image. Returns ``(x, lams)``. Known to over-smooth (measured: docs/restoration_notes.md)."""
    check_image(y, "y")
    nu = float(noise_level)
    if not (nu > 0 and math.isfinite(nu)):
        raise ValueError(f"noise_level must be finite and > 0 ([0, 1] units), got {noise_level!r}.")
    xs, lams = [], []
    for yb in y.split(1):
        aty = physics.A_adjoint(yb)  # m = number of measurements (a missing pixel is no measurement)
        target = int((physics.A(torch.ones_like(aty)) != 0).sum()) * nu**2
        lo, hi = -8.0, 2.0
        x = None
        for _ in range(iters):
            mid = (lo + hi) / 2
            x = tikhonov(yb, physics, 10**mid, reg, x0=x)
            r = physics.A(x) - yb
            lo, hi = (mid, hi) if float(r.double().pow(2).sum()) <= target else (lo, mid)
        xs.append(tikhonov(yb, physics, 10**lo, reg, x0=x))
        lams.append(10**lo)
    return torch.cat(xs), lams
