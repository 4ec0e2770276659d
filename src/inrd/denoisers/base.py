"""The denoiser contract and the sampling defaults every adapter declares.

A denoiser is anything callable as ``D(x, sigma) -> x_hat`` on ``(B, C, H, W)`` images in [0, 1], with
``sigma`` a float or a ``(B,)`` tensor: the standard deviation of the additive Gaussian noise, in the
same units (deepinv's ``Denoiser`` contract). inrd's adapters are ``deepinv.models.Denoiser`` modules
and also carry:

* ``sigma_range = (lo, hi)``: the noise levels it was trained or designed for;
* ``sampling_defaults``: a :class:`SamplingDefaults`, how to sample with it when the user says nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional, Protocol, Union, runtime_checkable

import torch

from .. import schedules
from ..choices import Clip, RhoName, Schedule, choose, parse_rho

__all__ = ["Denoiser", "SamplingDefaults", "StepSetting", "defaults_of", "carry_attributes", "pad_to_multiple"]

#: how many levels a parametric schedule gets when it is the fine grid that figures prune (DDPM's T)
FINE_LEVELS = 1000


@dataclass(frozen=True)
class StepSetting:
    """The best measured setting of a network for one step count: the fields of :class:`SamplingDefaults`
    of the same names (``subgrid`` or ``power``/``first`` choose the grid)."""

    rho: Union[RhoName, float]
    clip: Clip = "none"
    power: float = 1.0
    first: Optional[int] = None
    subgrid: Optional[tuple[int, ...]] = None


@runtime_checkable
class Denoiser(Protocol):
    """``D(x, sigma) -> x_hat``: x a (B, C, H, W) tensor in [0, 1], sigma a float or (B,) tensor, same units."""

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor: ...


@dataclass(frozen=True)
class SamplingDefaults:
    """How INRD samples with a denoiser when the user sets nothing (every field has a meaning; no
    generic defaults are merged underneath).

    Attributes:
        rho: the relaxation (paper eq. 13, 21): ``"canonical"`` (DDPM), ``"ind"``, ``"ddim"`` or a number.
        schedule: a named schedule of :mod:`inrd.schedules`, or ``"training"``: the network's own
            training grid ``train_sigmas`` pruned to ``steps`` (what every eps/v-network uses).
        steps: number of INRD steps T.
        sigma_min, sigma_max: range of parametric schedules (affine, geometric, ...), [0, 1] units.
        init, init_std: start V_T = init + init_std * Z (the paper: 0.5; s_T >> sigma_T for DRUNet).
        channels, size: image shape the denoiser expects or was trained on.
        train_sigmas: ascending training grid sigma_0 = 0 < sigma_1 < ... < sigma_T ([0, 1] units).
        subgrid: optional ascending 1-based indices t of ``train_sigmas`` to keep (a searched subgrid);
            ``steps`` is then its length.
        power, first: how ``train_sigmas`` is pruned to any other step count n
            (:func:`inrd.schedules.prune_indices`): ``a_1 = first``, ``a_n = T``, ``a_k`` spaced as
            ``((k - 1) / (n - 1))^power`` in between; ``power = 1, first = None`` is diffusers' "trailing".
        clip: ``"none"`` (the paper's D), ``"denoised"`` (clip D(u) inside the relaxation) or ``"x0"``
            (diffusers' semantics: clip D(u) but keep the raw noise direction), see :func:`inrd.sample`.
        by_steps: ``{n: StepSetting}``, other step counts with a setting of their own (what a user who
            only changes ``--steps`` gets, :meth:`for_steps`).
    """

    rho: Union[RhoName, float]
    schedule: Schedule
    steps: int
    sigma_min: Optional[float] = None
    sigma_max: Optional[float] = None
    init: float = 0.5
    init_std: float = 0.0
    channels: int = 3
    size: int = 64
    train_sigmas: Optional[tuple[float, ...]] = field(default=None, repr=False)
    subgrid: Optional[tuple[int, ...]] = None
    power: float = 1.0
    first: Optional[int] = None
    clip: Clip = "none"
    by_steps: tuple[tuple[int, StepSetting], ...] = ()

    def __post_init__(self):
        try:  # one spelling: names are stored as the vocabulary writes them
            object.__setattr__(self, "rho", parse_rho(self.rho))
            object.__setattr__(self, "schedule", choose(self.schedule, Schedule, "schedule"))
            object.__setattr__(self, "clip", choose(self.clip, Clip, "clip"))
        except ValueError as e:
            raise ValueError(f"sampling defaults: {e}") from None
        if self.schedule == "training" and not self.train_sigmas:
            raise ValueError("sampling defaults: schedule 'training' needs the network's train_sigmas.")
        if int(self.steps) < 1:
            raise ValueError(f"sampling defaults: steps must be >= 1, got {self.steps}.")
        if not (self.init_std >= 0 and math.isfinite(self.init_std)):
            raise ValueError(f"sampling defaults: init_std must be finite and >= 0, got {self.init_std}.")

    def with_(self, **changes) -> "SamplingDefaults":
        """A copy with some fields changed (e.g. ``channels`` of a gray model)."""
        return replace(self, **changes)

    def for_steps(self, steps: int) -> "SamplingDefaults":
        """The defaults for ``steps`` INRD steps: the setting recorded for that count in ``by_steps`` if
        any, else these with ``steps`` changed (the grid pruned by the same rule)."""
        if steps == self.steps:
            return self
        own = dict(self.by_steps).get(int(steps))
        if own is None:
            return replace(self, steps=int(steps))
        return replace(self, steps=int(steps), rho=own.rho, clip=own.clip, power=own.power, first=own.first, subgrid=own.subgrid)

    def sigmas(self, steps: Optional[int] = None) -> torch.Tensor:
        """The default schedule as an ascending float64 tensor sigma_0..sigma_T: the training grid pruned
        by :func:`inrd.schedules.prune_grid` (its subgrid, or its power-law spacing), else the named schedule."""
        n = int(steps or self.steps)
        if self.schedule == "training":
            return schedules.prune_grid(self.train_sigmas, n, self.power, self.first, self.subgrid)
        return schedules.make(self.schedule, n, self.sigma_min, self.sigma_max)

    def fine_grid(self) -> torch.Tensor:
        """The grid that pruning to fewer steps starts from: the training grid, DDPM's or the cosine's 1000
        levels, or the default parametric schedule built with :data:`FINE_LEVELS` levels on its range."""
        if self.schedule == "training":
            return torch.tensor(self.train_sigmas, dtype=torch.float64)
        if self.schedule in ("ddpm", "cosine"):
            return schedules.make(self.schedule)
        return schedules.make(self.schedule, FINE_LEVELS, self.sigma_min, self.sigma_max)


def defaults_of(denoiser) -> SamplingDefaults:
    """The :class:`SamplingDefaults` of a denoiser, or a one-line error saying what to pass instead."""
    d = getattr(denoiser, "sampling_defaults", None)
    if isinstance(d, SamplingDefaults):
        return d
    raise ValueError(
        f"{type(denoiser).__name__} declares no sampling defaults; give the schedule (sigmas), the relaxation rho "
        f"and the start explicitly (inrd.sample(D, sigmas, rho, shape=..., init=..., init_std=...))."
    )


def carry_attributes(src, dst) -> None:
    """Carry the adapter attributes (``sigma_range``, ``sampling_defaults``) over to a wrapper."""
    for key in ("sigma_range", "sampling_defaults"):
        try:
            value = getattr(src, key)
        except AttributeError:
            continue
        if isinstance(getattr(type(dst), key, None), property):
            continue
        setattr(dst, key, value)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` padded at the bottom and right to sides that are multiples of ``multiple`` (reflect, replicate
    where a side is too small to mirror), for networks that downsample; the caller crops the output back
    with ``[..., :H, :W]``. Sides already multiples are returned as they are."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return x
    return torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
