"""Resolving what to sample: the user's choices over the denoiser's :class:`SamplingDefaults`.

``inrd sample``, ``inrd sample-many`` and the experiments resolve their settings here, so a flag means the
same thing everywhere. Nothing generic is merged under a denoiser's defaults: a value is the user's, or the
denoiser's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from . import io, relaxations, schedules
from .denoisers import defaults_of

__all__ = ["SampleSettings", "resolve", "build_schedule", "parse_init", "DTYPES", "MAX_STEPS"]

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}

#: more steps than any schedule needs (DDPM has 1000); a larger number is a typo, and its sigma table alone
#: would take gigabytes
MAX_STEPS = 100_000


@dataclass
class SampleSettings:
    """Resolved sampling settings: the schedule ``sigmas`` (ascending, [0, 1] units), the relaxation ``rho``,
    the shape ``(B, C, H, W)`` and the start ``V_T = init + init_std * Z``."""

    schedule: str
    sigmas: torch.Tensor
    rho: Union[str, float]
    shape: tuple[int, int, int, int]
    init: Union[float, torch.Tensor]
    init_std: float
    init_desc: str
    clip: str

    def record(self) -> dict:
        """The JSON-ready part that every sidecar records."""
        return {
            "schedule": self.schedule,
            "steps": self.sigmas.numel() - 1,
            "sigmas": self.sigmas.tolist(),
            "rho": self.rho,
            "rhos": relaxations.relaxation(self.sigmas, self.rho).tolist(),
            "clip": self.clip,
            "init": self.init_desc,
            "init_std": self.init_std,
        }


def _positive_int(name: str, value, upper: Optional[int] = None) -> Optional[int]:
    if value is None:
        return None
    if int(value) != value or value < 1 or (upper is not None and value > upper):
        bound = f" and <= {upper}" if upper else ""
        raise ValueError(f"--{name} must be an integer >= 1{bound}, got {value}.")
    return int(value)


def build_schedule(spec: str, steps: Optional[int], sigma_min, sigma_max, denoiser=None,
                   power: Optional[float] = None, first: Optional[int] = None) -> torch.Tensor:
    """A named schedule (see :data:`inrd.schedules.SCHEDULES`), ``"training"`` (the denoiser's own grid) or a
    text file of sigmas. Grids (ddpm, cosine, a file) are pruned to ``steps`` when given, spaced by ``power``
    and ``first`` (:func:`inrd.schedules.prune_indices`; None: diffusers' trailing spacing); the parametric
    schedules span [sigma_min, sigma_max], by default the denoiser's trained range when it is finite.
    A diffusion network (one with a training grid) cannot leave its trained range: grids are cut at its top
    and any level outside it is refused here, before any network call. Other denoisers may extrapolate."""
    d = getattr(denoiser, "sampling_defaults", None)
    lo, hi = getattr(denoiser, "sigma_range", (0.0, float("inf")))
    strict = d is not None and d.train_sigmas is not None
    key = "training" if spec.strip().lower() == "training" else (schedules.schedule_name(spec) or spec)
    spaced = power is not None or first is not None
    spacing = (1.0 if power is None else float(power), first)
    parametric = key in schedules.SCHEDULES and key not in ("ddpm", "cosine")
    if spaced and (parametric or (steps is None and key != "training")):
        raise ValueError(f"--power/--first space a grid pruned to --steps (training, ddpm, cosine or a file of sigmas), "
                         f"not {spec!r}" + ("" if parametric else " without --steps") + ".")
    if key == "training":
        if d is None or d.train_sigmas is None:
            raise ValueError(f"{type(denoiser).__name__} has no training grid; choose a named schedule or a file of sigmas.")
        own = d.with_(schedule="training")
        if spaced:
            own = own.with_(power=d.power if power is None else float(power), first=d.first if first is None else first, subgrid=None)
        sigmas = own.sigmas(steps)
    elif key in schedules.SCHEDULES:
        if key in ("ddpm", "cosine"):
            sigmas = schedules.make(key, None)
            top = sigma_max if sigma_max is not None else (hi if strict else None)
            if top is not None:  # a grid is cut at the top of the range, then pruned
                sigmas = sigmas[sigmas <= top * (1 + 1e-9)]
            sigmas = sigmas if steps is None else schedules.prune(sigmas, steps, *spacing)
        else:
            own = d is not None and d.schedule == key
            pick = lambda given, mine, edge: given if given is not None else (mine if own and mine is not None else edge)  # noqa: E731
            sigma_min = pick(sigma_min, d.sigma_min if d else None, lo if lo > 0 else None)
            sigma_max = pick(sigma_max, d.sigma_max if d else None, hi if hi < float("inf") else None)
            sigmas = schedules.make(key, steps, sigma_min, sigma_max)
    elif Path(spec).is_file():
        sigmas = schedules.load_sigmas(spec)
        sigmas = sigmas if steps is None else schedules.prune(sigmas, steps, *spacing)
    else:
        raise ValueError(f"unknown schedule {spec!r}: choose training, {', '.join(schedules.SCHEDULES)} or a text file of sigmas.")
    positive = sigmas[sigmas > 0]
    if strict and positive.numel() and (float(positive[0]) < lo * (1 - 1e-6) or float(positive[-1]) > hi * (1 + 1e-6)):
        raise ValueError(
            f"schedule {spec!r} spans sigma {float(positive[0]):.4g}..{float(positive[-1]):.4g}, outside the denoiser's "
            f"trained range [{lo:.4g}, {hi:.4g}]; set --sigma-min/--sigma-max inside it or use its training grid."
        )
    return sigmas


def parse_init(spec, shape, device, dtype, default_std: float = 0.0) -> tuple[Union[float, torch.Tensor], float, str]:
    """``"0.5"`` (constant, plus Gaussian noise of std ``default_std``), ``"gaussian:STD"`` or
    ``"gaussian:STD:MEAN"`` (mean 0.5 by default), or an image file (resized to the sample size).
    Returns (init, init_std, description)."""
    spec = str(spec)
    if spec.startswith("gaussian:"):
        parts = spec.split(":")
        try:
            std = float(parts[1])
            mean = float(parts[2]) if len(parts) > 2 else 0.5
        except (ValueError, IndexError):
            raise ValueError(f"--init {spec!r}: write gaussian:STD or gaussian:STD:MEAN with numbers.") from None
        if not (std >= 0 and std < float("inf")) or mean != mean or abs(mean) == float("inf"):
            raise ValueError(f"--init {spec!r}: the Gaussian start needs a finite STD >= 0 and a finite MEAN.")
        return mean, std, f"constant {mean} + N(0, {std}^2)"
    try:
        value = float(spec)
    except ValueError:
        value = None
    if value is not None:
        if value != value or abs(value) == float("inf"):
            raise ValueError(f"--init {spec!r}: the constant start must be a finite number.")
        return value, default_std, f"constant {value}" + (f" + N(0, {default_std}^2)" if default_std else "")
    if not Path(spec).is_file():
        raise ValueError(f"--init {spec!r} is neither a number, gaussian:STD, nor an image file.")
    img = io.load_image(spec, size=shape[-1], channels=shape[1]).to(device=device, dtype=dtype)
    return img.expand(shape).clone(), 0.0, f"image {spec}"


def resolve(denoiser, opts, batch: int) -> SampleSettings:
    """Sampling settings from ``opts`` (any object with the fields of :class:`inrd.generate.SampleConfig`;
    ``None`` means the denoiser's :class:`SamplingDefaults`)."""
    steps = _positive_int("steps", opts.steps, MAX_STEPS)
    d = defaults_of(denoiser)
    if steps is not None and opts.schedule is None:  # the denoiser's own setting for that step count, if it has one
        d = d.for_steps(steps)
    power, first = getattr(opts, "power", None), getattr(opts, "first", None)
    if (power is not None or first is not None) and d.schedule == "training":  # the user's spacing of the training grid
        d = d.with_(power=d.power if power is None else float(power), first=d.first if first is None else int(first), subgrid=None)
    batch = _positive_int("batch", batch)
    size = _positive_int("size", opts.size) or d.size
    channels = _positive_int("channels", opts.channels) or d.channels
    schedule = opts.schedule or d.schedule
    own = opts.schedule is None or (d.schedule == "training" and opts.schedule.strip().lower() == "training")
    if own and opts.sigma_min is None and opts.sigma_max is None and (d.schedule == "training" or (power is None and first is None)):
        sigmas = d.sigmas(steps)  # the denoiser's own grid
    else:
        sigmas = build_schedule(schedule, steps, opts.sigma_min, opts.sigma_max, denoiser, power, first)
    rho = opts.rho if opts.rho is not None else d.rho
    try:
        rho = float(rho)
    except (TypeError, ValueError):
        pass
    clip = getattr(opts, "clip", None) or d.clip
    shape = (batch, channels, size, size)
    if opts.dtype not in DTYPES:
        raise ValueError(f"--dtype {opts.dtype!r}: choose one of {', '.join(DTYPES)}.")
    dtype = DTYPES[opts.dtype]
    if opts.init is None:  # the denoiser's start: a constant plus its default Gaussian start noise
        init, init_std, desc = parse_init(d.init, shape, opts.device, dtype, d.init_std)
    else:
        init, init_std, desc = parse_init(opts.init, shape, opts.device, dtype)
    relaxations.gammas(sigmas, rho)  # gamma^2 < 0 and a bad rho fail here, before anything is loaded or written
    return SampleSettings(schedule, sigmas, rho, shape, init, init_std, desc, clip)
