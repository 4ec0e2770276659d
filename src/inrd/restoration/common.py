"""What the restoration algorithms share: argument checks, the data term, the denoiser's default
level, and :class:`CircularPad`.

Problem (paper, Sec. 3.3): ``y = A v + w``, ``w ~ N(0, nu^2 Id)``, images in [0, 1] and ``nu``
(``noise_level``) in the same units; data fidelity ``f(v) = ||A v - y||^2 / (2 nu^2)``,
``grad f(v) = A^T (A v - y) / nu^2``. ``physics`` is any object with ``A(x)`` and ``A_adjoint(y)``
(:mod:`inrd.restoration.physics`, or a deepinv ``LinearPhysics``); algorithms that take a proximal
step also need ``prox_l2(z, y, gamma)``. The measurements behind the defaults: docs/restoration_notes.md.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
import torch

from ..choices import Algorithm, choose
from ..metrics import psnr as _psnr
from ..validate import check_image
from .physics import PeriodicBlur

__all__ = ["CircularPad", "default_sigma", "NU_MIN", "check_noise_level"]

#: the smallest noise level ``nu`` ([0, 1] units) a restoration takes: float32's machine epsilon, the
#: rounding step of an image near 1 in the precision the algorithms run in. Noise below it is not carried
#: by the data, and the data term's weight ``1 / nu^2`` (and HQS's ``sigma^2 / (lam nu^2)``) would leave
#: float32's range, or float64's (nu = 1e-300: nu^2 = 0).
NU_MIN = float(torch.finfo(torch.float32).eps)


class CircularPad(torch.nn.Module):
    """``D'(x, sigma) = crop(D(pad_circular(x, pad), sigma))``: let a denoiser see the periodic image
    that a periodic blur A assumes. Without it a CNN treats the wrap-around seam (edges blurred into
    each other by A) as image content and, in raw PnP-PGD, the error there can grow (measured:
    docs/restoration_notes.md). Not part of the paper's raw scheme, hence off unless asked for."""

    def __init__(self, denoiser: Callable, pad: int = 16):
        super().__init__()
        if not isinstance(pad, (int, np.integer)) or pad < 0:
            raise ValueError(f"pad must be an integer >= 0 (pixels), got {pad!r}.")
        self.denoiser = denoiser
        self.pad = int(pad)
        for attr in ("sigma_range", "sampling_defaults"):
            if hasattr(denoiser, attr):
                setattr(self, attr, getattr(denoiser, attr))

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        p = self.pad
        if p == 0:
            return self.denoiser(x, sigma)
        if p > min(x.shape[-2:]):
            raise ValueError(f"pad {p} exceeds the image size {tuple(x.shape[-2:])}; use a smaller pad.")
        out = self.denoiser(torch.nn.functional.pad(x, (p, p, p, p), mode="circular"), sigma)
        return out[..., p:-p, p:-p]


def default_sigma(denoiser, noise_level: float, algorithm: Algorithm = "pnp-pgd") -> float:
    """Default ``sigma_denoiser`` for a fixed-level PnP scheme: the smallest trained level of a
    diffusion network (``sigma_range[0] > 0``: sigma_1 = 0.0050003 for DDPM, the paper's choice for
    DiffUNet), else ``2 * noise_level`` for ``pnp-pgd`` and ``5 * noise_level`` for ``gs-pnp``
    (``D^GS`` denoises less than N itself, hence the larger level; the sweeps that chose both factors
    are in docs/restoration_notes.md). The level is capped at the top of ``sigma_range`` (strong noise:
    5 nu may exceed what the network was trained for)."""
    name = choose(algorithm, Algorithm, "algorithm")
    if name not in ("pnp-pgd", "gs-pnp"):
        raise ValueError(f"a fixed denoiser level is for 'pnp-pgd' or 'gs-pnp', got {algorithm!r}.")
    lo, hi = (getattr(denoiser, "sigma_range", None) or (0.0, math.inf))[:2]
    if float(lo) > 0:
        return float(lo)
    return min((2.0 if name == "pnp-pgd" else 5.0) * float(noise_level), float(hi))


def positive(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0, got {value!r}.") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}.")
    return v


def check_noise_level(value, name: str = "noise_level") -> float:
    """``nu`` as a float in [:data:`NU_MIN`, 1], else a one-line ``ValueError`` naming ``name``."""
    if isinstance(value, (bool, complex)):
        raise ValueError(f"{name} must be a number > 0 ([0, 1] units), got {value!r}.")
    try:
        nu = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0 ([0, 1] units), got {value!r}.") from None
    if not (nu > 0 and math.isfinite(nu)):
        raise ValueError(f"{name} must be finite and > 0 (nu appears as 1/nu^2 in the data term), got {value!r}.")
    if nu < NU_MIN:
        raise ValueError(f"{name} = {nu:g} is below {NU_MIN:.4g}, float32's resolution of a [0, 1] image: such noise is "
                         f"not in the data; give a level >= {NU_MIN:.4g}.")
    if nu > 1:
        raise ValueError(f"{name} = {nu:g} exceeds 1: it is in [0, 1] image units, like the pixels (a level of "
                         f"{nu:g} in 8-bit units is {nu / 255:.4g}).")
    return nu


def setup(y, physics, iters, noise_level, init, x_true, prox: bool = False):
    """Check the common arguments; returns ``(v_0, nu)``. ``v_0`` defaults to ``physics.init(y)`` (y
    for a blur, the mean-filled or bicubic image for inpainting / super-resolution), else y when A is
    square, else A^T y."""
    check_image(y, "observation y")
    if not (hasattr(physics, "A") and hasattr(physics, "A_adjoint")):
        raise TypeError("physics must provide A(x) and A_adjoint(y) (e.g. inrd.restoration.PeriodicBlur or deepinv's BlurFFT).")
    if prox and not hasattr(physics, "prox_l2"):
        raise TypeError("this algorithm needs physics.prox_l2(z, y, gamma) (every inrd.restoration operator and deepinv's LinearPhysics have it).")
    if not isinstance(iters, (int, np.integer)) or iters < 1:
        raise ValueError(f"iters must be an integer >= 1, got {iters!r}.")
    nu = check_noise_level(noise_level)
    if init is None:
        if hasattr(physics, "init"):
            v = physics.init(y)
        else:
            aty = physics.A_adjoint(y)
            v = y.clone() if aty.shape == y.shape else aty
    else:
        v = check_image(init, "init").clone()
    if x_true is not None:
        check_image(x_true, "x_true")
        if x_true.shape[1:] != v.shape[1:]:
            raise ValueError(f"x_true has shape {tuple(x_true.shape)} but the iterates have {tuple(v.shape)}.")
    return v, nu


def fidelity(physics, v, y, nu):
    """``(A v, f(v))`` with ``f(v) = ||A v - y||^2 / (2 nu^2)`` pooled over the batch."""
    Av = physics.A(v)
    return Av, float((Av - y).double().pow(2).sum()) / (2 * nu**2)


def check_trained_range(nu: float, denoiser, algorithm: str) -> None:
    """Refuse a noise level above the top of the denoiser's trained range (``sigma_range[1]``) for an algorithm
    whose denoiser levels go down to nu (HQS, the posterior sampler): its last levels would leave the range."""
    rng = getattr(denoiser, "sigma_range", None)
    if rng is not None and nu > float(rng[1]) * (1 + 1e-6):
        raise ValueError(f"noise_level = {nu:.4g} is above the denoiser's trained range [{float(rng[0]):.4g}, {float(rng[1]):.4g}]: "
                         f"{algorithm} runs it at levels down to nu; use a denoiser trained for stronger noise.")


def sigma_check(sigma, denoiser) -> float:
    s = positive("sigma_denoiser", sigma)
    rng = getattr(denoiser, "sigma_range", None)
    if rng is not None and not (rng[0] * (1 - 1e-6) <= s <= rng[1] * (1 + 1e-6)):
        warnings.warn(f"sigma_denoiser = {s:g} is outside the denoiser's range [{rng[0]:g}, {rng[1]:g}].", stacklevel=3)
    return s


def record(res, v_new, v_prev_norm, fid, x_true) -> None:
    """Append one iteration's residual, norm, fidelity and PSNR to ``res`` (a PnPResult)."""
    res.residual.append(float((v_new - v_prev_norm[0]).double().norm() / max(v_prev_norm[1], 1e-300)))
    res.norm.append(float(v_new.double().norm()))
    res.fidelity.append(fid)
    if x_true is not None:
        res.psnr.append(float(_psnr(v_new, x_true).mean()))


def is_periodic(physics) -> bool:
    """True for operators that assume a periodic image (a CNN denoiser then wants :class:`CircularPad`):
    :class:`PeriodicBlur` and its subclasses, and a :class:`~inrd.restoration.blur.Blur` of boundary
    ``"periodic"``. The other boundary models assume no wrap-around, so their denoiser input is not padded."""
    return isinstance(physics, PeriodicBlur) or getattr(physics, "boundary", None) == "periodic"
