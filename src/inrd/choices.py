"""The named choices of inrd, each defined once: library arguments, CLI flags and JSON records spell them
the same way. Names are matched case-insensitively everywhere, with ``_`` and ``-`` equivalent
(:func:`choose`): ``"Super_Geometric"`` is ``"super-geometric"``, ``"PNP_PGD"`` is ``"pnp-pgd"``.

This module imports nothing from inrd and no backend (only torch, for the tensor form of a relaxation).
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Union, get_args

import torch

__all__ = [
    "RhoName", "Rho", "Clip", "ScheduleName", "Schedule", "GridName", "Algorithm", "Task", "Boundary", "NoiseEstimator", "FastMode", "DtypeName",
    "LrSchedule", "PosteriorStart", "choose", "maybe_choose", "parse_rho", "names_of",
]

#: named relaxations (paper eq. 13): ``canonical`` rho_t = 1 - sigma_{t-1}^2 / sigma_t^2 (eq. 21, DDPM),
#: ``ind`` rho_t = 1, ``ddim`` rho_t = 1 - sigma_{t-1} / sigma_t (the smallest admissible, gamma = 0)
RhoName = Literal["canonical", "ind", "ddim"]
#: a relaxation as a user gives it: a name, a number in [0, 1], or a per-step tensor (``rho[t]``, t = 1..T)
Rho = Union[RhoName, float, torch.Tensor]
#: what happens to the clean estimate D(u): ``none`` the paper's D; ``denoised`` clip D(u) to [0, 1]
#: inside the relaxation; ``x0`` diffusers' ``clip_sample``: clip D(u), keep the raw noise direction
Clip = Literal["none", "denoised", "x0"]
#: training grids of 1000 levels (pruned to a step count)
GridName = Literal["ddpm", "cosine"]
#: the schedules of :mod:`inrd.schedules` by name
ScheduleName = Literal["ddpm", "cosine", "affine", "geometric", "super-geometric", "karras"]
#: a schedule as a run names it: ``training`` is a network's own training grid, else one of :data:`ScheduleName`
Schedule = Literal["training", ScheduleName]
#: restoration algorithms (:mod:`inrd.restoration`)
Algorithm = Literal["pnp-pgd", "gs-pnp", "hqs", "inrd-posterior"]
#: restoration tasks: the forward operator A of y = A v + w
Task = Literal["deblur", "inpaint", "super-resolution", "denoise"]
#: how a blur treats the image border (what lies outside the observed field of view)
Boundary = Literal["valid", "reflect", "replicate", "periodic"]
#: estimators of an observation's noise level nu (:mod:`inrd.restoration.noise_level`)
NoiseEstimator = Literal["haar-mad", "wavelet", "pca"]
#: reduced-precision fast paths of :mod:`inrd.fast`
FastMode = Literal["auto", "bf16", "fp16", "fp32"]
#: floating dtypes by name
DtypeName = Literal["float32", "float64", "float16", "bfloat16"]
#: learning rate of `inrd train` after its warm-up
LrSchedule = Literal["constant", "cosine"]
#: where the posterior sampler starts: ``physics.init(y)``, or the result of HQS (a warm start)
PosteriorStart = Literal["init", "hqs"]


def names_of(options) -> tuple[str, ...]:
    """The spellings of a ``Literal`` choice, in their declared order."""
    return tuple(get_args(options))


def _key(text: str) -> str:
    return text.strip().replace("_", "-").lower()


def choose(value, options, what: str) -> str:
    """``value`` as the canonical spelling of one of the ``Literal`` ``options`` (case and ``_``/``-``
    ignored), else a one-line ``ValueError`` naming ``what`` and the valid choices."""
    allowed = names_of(options)
    if isinstance(value, str):
        key = _key(value)
        for name in allowed:
            if _key(name) == key:
                return name
    raise ValueError(f"{what} must be {', '.join(allowed[:-1])} or {allowed[-1]}, got {value!r}.")


def maybe_choose(value, options) -> Optional[str]:
    """The canonical spelling when ``value`` names one of ``options``, else None (no error)."""
    if not isinstance(value, str):
        return None
    key = _key(value)
    return next((name for name in names_of(options) if _key(name) == key), None)


def parse_rho(value) -> Union[str, float]:
    """A relaxation given as text or a number: a name of :data:`RhoName` or a finite number in [0, 1]
    (the per-step tensor form is for the library only). One-line ``ValueError`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"rho must be {', '.join(names_of(RhoName))} or a number in [0, 1], got {value!r}.")
    if isinstance(value, str):
        name = maybe_choose(value, RhoName)
        if name is not None:
            return name
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"rho must be {', '.join(names_of(RhoName))} or a number in [0, 1]; {value!r} is an unknown relaxation.") from None
    if isinstance(value, complex):
        raise ValueError(f"rho must be a real number in [0, 1], got the complex {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"rho must be {', '.join(names_of(RhoName))} or a number in [0, 1], got {type(value).__name__}.") from None
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ValueError(f"rho = {number!r} is outside [0, 1]; a relaxation interpolates Id (0) and the denoiser (1).")
    return number
