"""What a sampling run will do, decided once: the user's :class:`SampleOptions` over the denoiser's
:class:`~inrd.denoisers.SamplingDefaults` become a frozen :class:`SamplingPlan` (the scheme sigmas / rhos
/ gammas, the clip, the start, the shape, device, dtype, fast path).

``inrd sample``, ``inrd sample-many``, the figures and users resolve their settings here, so a flag means
the same thing everywhere. Nothing generic is merged under a denoiser's defaults: a value is the user's, or
the denoiser's own. Every check that needs no network call happens here, before anything is loaded onto a
device or written.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Union

import torch

from . import schedules
from .choices import Clip, DtypeName, FastMode, GridName, RhoName, Schedule, choose, maybe_choose, names_of, parse_rho
from .relaxations import Scheme, scheme
from .validate import check_count, check_device, check_index, check_positive

__all__ = ["SampleOptions", "Start", "SamplingPlan", "plan_sampling", "schedule_sigmas", "parse_init", "DTYPES", "MAX_STEPS"]

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}

#: more steps than any schedule needs (DDPM has 1000); a larger number is a typo, and its sigma table alone
#: would take gigabytes
MAX_STEPS = 100_000


def _count(name: str, value, upper: Optional[int] = None, zero: bool = False) -> Optional[int]:
    """An optional integer option >= 1 (>= 0 with ``zero``), at most ``upper``, named ``--name``."""
    return check_count(value, f"--{name}", 0 if zero else 1, upper)


def _level(name: str, value) -> Optional[float]:
    return check_positive(value, f"--{name}", "a finite noise level > 0 ([0, 1] units)")


@dataclass(frozen=True)
class SampleOptions:
    """Every choice of a sampling run; ``None`` means the denoiser's :class:`SamplingDefaults`.

    Fields are those of ``inrd sample`` (same names, same units: noise levels in [0, 1] image units).
    Construction checks each field on its own (types, ranges, names: case-insensitive, stored in the
    vocabulary's spelling); what depends on the denoiser is checked by :func:`plan_sampling`."""

    denoiser: str = "default"
    weights: Optional[str] = None
    schedule: Optional[str] = None  # "training", a named schedule, or a text file of sigmas
    steps: Optional[int] = None
    sigma_min: Optional[float] = None
    sigma_max: Optional[float] = None
    power: Optional[float] = None  # spacing of a pruned grid, see inrd.schedules.prune_indices
    first: Optional[int] = None  # its lowest kept level a_1
    rho: Union[RhoName, float, None] = None
    clip: Optional[Clip] = None
    init: Optional[str] = None  # "0.5", "gaussian:STD[:MEAN]" or an image file
    batch: int = 4
    size: Optional[int] = None
    channels: Optional[int] = None
    seed: int = 0
    device: str = "cpu"
    dtype: DtypeName = "float32"
    fast: Optional[FastMode] = None  # see inrd.fast.speed_up
    chunk: Optional[int] = None  # at most this many images per denoiser call (0: adapt to memory)
    compile: bool = True  # with fast: torch.compile the network
    cuda_graphs: bool = False  # with fast on CUDA: replay the network from CUDA graphs
    denoiser_options: Mapping = field(default_factory=dict)  # extra keyword options for the denoiser's builder

    def __post_init__(self):
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen: normalise in place once)
        put("steps", _count("steps", self.steps, MAX_STEPS))
        put("batch", _count("batch", self.batch))
        put("size", _count("size", self.size))
        put("channels", _count("channels", self.channels))
        put("chunk", _count("chunk", self.chunk, zero=True))
        put("first", _count("first", self.first))
        put("sigma_min", _level("sigma-min", self.sigma_min))
        put("sigma_max", _level("sigma-max", self.sigma_max))
        if self.power is not None:
            if isinstance(self.power, (bool, complex)) or not (isinstance(self.power, (int, float)) and 0 < self.power < math.inf):
                raise ValueError(f"--power must be a finite number > 0 (1: even spacing), got {self.power!r}.")
            put("power", float(self.power))
        if self.channels is not None and self.channels not in (1, 3):
            raise ValueError(f"--channels must be 1 (gray) or 3 (RGB), got {self.channels}.")
        put("seed", check_index(self.seed, "--seed"))
        put("rho", None if self.rho is None else parse_rho(self.rho))
        put("clip", None if self.clip is None else choose(self.clip, Clip, "--clip"))
        put("dtype", choose(self.dtype, DtypeName, "--dtype"))
        put("fast", None if self.fast is None else choose(self.fast, FastMode, "--fast"))
        if self.fast is None and (self.cuda_graphs or not self.compile):
            raise ValueError("--no-compile and --cuda-graphs modify --fast; add --fast.")
        if self.schedule is not None and not str(self.schedule).strip():
            raise ValueError("--schedule is empty; give a schedule name or a text file of sigmas.")
        check_device(self.device)

    def record(self) -> dict:
        """The options as given, JSON-ready (what determines the outputs, with the plan)."""
        return {**asdict(self), "denoiser_options": dict(self.denoiser_options)}


@dataclass(frozen=True)
class Start:
    """The start ``V_T = init + init_std * Z`` (init a constant or a (B, C, H, W) image) and how it was given."""

    init: Union[float, torch.Tensor]
    init_std: float
    desc: str


@dataclass(frozen=True)
class SamplingPlan:
    """Everything a sampling run does, decided: the denoiser (registry name and weights), the
    :class:`~inrd.relaxations.Scheme` (sigmas, rhos, gammas), the clip mode, the start, the shape
    ``(B, C, H, W)``, the seed, the device and dtype, and the fast path. Made by :func:`plan_sampling`."""

    denoiser: str
    weights: Optional[str]
    schedule: str
    scheme: Scheme
    clip: Clip
    start: Start
    shape: tuple[int, int, int, int]
    seed: int
    device: str
    dtype: DtypeName
    options: SampleOptions

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def record(self) -> dict:
        """The JSON-ready part that every sidecar records."""
        sch = self.scheme.record()
        return {
            "denoiser": self.denoiser, "weights": self.weights, "denoiser_options": dict(self.options.denoiser_options),
            "schedule": self.schedule, **sch, "clip": self.clip, "init": self.start.desc, "init_std": self.start.init_std,
            "batch": self.shape[0], "shape": list(self.shape), "seed": self.seed, "device": self.device, "dtype": self.dtype,
        }


def _grid_options(spec: str, key: Optional[str], steps, sigma_min, sigma_max, spaced: bool) -> None:
    """Options that do not apply to the schedule ``spec`` are errors, never silently ignored."""
    parametric = key in schedules.SCHEDULES and key not in names_of(GridName)
    if spaced and (parametric or (steps is None and key != "training")):
        raise ValueError(f"--power/--first space a grid pruned to --steps (training, ddpm, cosine or a file of sigmas), "
                         f"not {spec!r}" + ("" if parametric else " without --steps") + ".")
    if not parametric and sigma_min is not None:
        raise ValueError(f"--sigma-min sets the lowest level of a parametric schedule (affine, geometric, super-geometric, karras); "
                         f"{spec!r} is a grid with levels of its own: prune it with --steps instead.")
    if key not in (None, "ddpm", "cosine") and not parametric and sigma_max is not None:
        raise ValueError(f"--sigma-max cuts the ddpm/cosine grids or tops a parametric schedule; {spec!r} keeps its own levels.")


def schedule_sigmas(spec: str, steps: Optional[int], sigma_min, sigma_max, denoiser=None,
                    power: Optional[float] = None, first: Optional[int] = None) -> torch.Tensor:
    """The sigmas of a schedule named by the user: ``"training"`` (the denoiser's own grid), a named
    schedule (:data:`inrd.schedules.SCHEDULES`) or a text file of sigmas. Grids (training, ddpm, cosine, a
    file) are pruned to ``steps`` when given (:func:`inrd.schedules.prune_grid`, spaced by ``power`` and
    ``first``); the parametric schedules span [sigma_min, sigma_max], by default the denoiser's own or its
    trained range when finite. A diffusion network (one with a training grid) cannot leave its trained
    range: ddpm/cosine are cut at its top and any level outside it is refused. Other denoisers extrapolate."""
    d = getattr(denoiser, "sampling_defaults", None)
    lo, hi = getattr(denoiser, "sigma_range", (0.0, float("inf")))
    strict = d is not None and d.train_sigmas is not None
    key = maybe_choose(spec, Schedule)
    spaced = power is not None or first is not None
    if key is None and not Path(spec).is_file():
        raise ValueError(f"unknown schedule {spec!r}: choose {', '.join(names_of(Schedule))} or a text file of sigmas.")
    _grid_options(spec, key, steps, sigma_min, sigma_max, spaced)
    if key == "training":
        if d is None or d.train_sigmas is None:
            raise ValueError(f"{type(denoiser).__name__} has no training grid; choose a named schedule or a file of sigmas.")
        own = (d.power, d.first, d.subgrid) if not spaced else (d.power if power is None else power, d.first if first is None else first, None)
        sigmas = schedules.prune_grid(d.train_sigmas, steps or d.steps, *own)
    elif key in names_of(GridName):
        sigmas = schedules.make(key, None)
        top = sigma_max if sigma_max is not None else (hi if strict else None)
        if top is not None:  # a grid is cut at the top of the range, then pruned
            sigmas = sigmas[sigmas <= top * (1 + 1e-9)]
        sigmas = sigmas if steps is None else schedules.prune(sigmas, steps, 1.0 if power is None else power, first)
    elif key is not None:  # parametric
        own = d is not None and d.schedule == key
        pick = lambda given, mine, edge: given if given is not None else (mine if own and mine is not None else edge)  # noqa: E731
        sigma_min = pick(sigma_min, d.sigma_min if d else None, lo if lo > 0 else None)
        sigma_max = pick(sigma_max, d.sigma_max if d else None, hi if hi < float("inf") else None)
        sigmas = schedules.make(key, steps, sigma_min, sigma_max)
    else:
        sigmas = schedules.load_sigmas(spec)
        sigmas = sigmas if steps is None else schedules.prune(sigmas, steps, 1.0 if power is None else power, first)
    positive = sigmas[sigmas > 0]
    if strict and positive.numel() and (float(positive[0]) < lo * (1 - 1e-6) or float(positive[-1]) > hi * (1 + 1e-6)):
        raise ValueError(
            f"schedule {spec!r} spans sigma {float(positive[0]):.4g}..{float(positive[-1]):.4g}, outside the denoiser's "
            f"trained range [{lo:.4g}, {hi:.4g}]; set --sigma-min/--sigma-max inside it or use its training grid."
        )
    return sigmas


def parse_init(spec, shape, device, dtype, default_std: float = 0.0) -> Start:
    """``"0.5"`` (constant, plus Gaussian noise of std ``default_std``), ``"gaussian:STD"`` or
    ``"gaussian:STD:MEAN"`` (mean 0.5 by default), or an image file (resized to the sample size)."""
    spec = str(spec)
    if spec.strip().lower().startswith("gaussian:"):
        parts = spec.strip().split(":")
        if len(parts) > 3:
            raise ValueError(f"--init {spec!r}: write gaussian:STD or gaussian:STD:MEAN (at most two numbers).")
        try:
            std = float(parts[1])
            mean = float(parts[2]) if len(parts) > 2 else 0.5
        except (ValueError, IndexError):
            raise ValueError(f"--init {spec!r}: write gaussian:STD or gaussian:STD:MEAN with numbers.") from None
        if not (0 <= std < math.inf) or not math.isfinite(mean):
            raise ValueError(f"--init {spec!r}: the Gaussian start needs a finite STD >= 0 and a finite MEAN.")
        return Start(mean, std, f"constant {mean} + N(0, {std}^2)")
    try:
        value = float(spec)
    except ValueError:
        value = None
    if value is not None:
        if not math.isfinite(value):
            raise ValueError(f"--init {spec!r}: the constant start must be a finite number.")
        return Start(value, default_std, f"constant {value}" + (f" + N(0, {default_std}^2)" if default_std else ""))
    if not Path(spec).is_file():
        raise ValueError(f"--init {spec!r} is neither a number, gaussian:STD, nor an image file.")
    from .io import load_image

    img = load_image(spec, size=shape[-1], channels=shape[1]).to(device=device, dtype=dtype)
    return Start(img.expand(shape).clone(), 0.0, f"image {spec}")


def _own_grid(opts: SampleOptions, d) -> bool:
    """True when the run keeps the denoiser's own default grid (only its step count may change)."""
    own = opts.schedule is None or (d.schedule == "training" and maybe_choose(opts.schedule, Schedule) == "training")
    return own and opts.sigma_min is None and opts.sigma_max is None and (d.schedule == "training" or (opts.power is None and opts.first is None))


def plan_sampling(opts: SampleOptions, denoiser, name: Optional[str] = None, weights=None, batch: Optional[int] = None) -> SamplingPlan:
    """The :class:`SamplingPlan` of ``opts`` for ``denoiser`` (its :class:`SamplingDefaults` fill what the
    user left out). ``name`` / ``weights`` are recorded (default: those of ``opts``); ``batch`` overrides
    ``opts.batch`` (sample-many plans one start image shared by all samples). Checks every relaxation,
    schedule and start before anything runs: a bad rho or a gamma^2 < 0 fails here."""
    from .denoisers.base import defaults_of

    d = defaults_of(denoiser)
    if opts.steps is not None and opts.schedule is None:  # the denoiser's own setting for that step count, if it has one
        d = d.for_steps(opts.steps)
    if (opts.power is not None or opts.first is not None) and d.schedule == "training":  # the user's spacing of the training grid
        d = d.with_(power=d.power if opts.power is None else opts.power, first=d.first if opts.first is None else opts.first, subgrid=None)
    shape = (opts.batch if batch is None else batch, opts.channels or d.channels, opts.size or d.size, opts.size or d.size)
    schedule = d.schedule if opts.schedule is None else (maybe_choose(opts.schedule, Schedule) or opts.schedule)
    if _own_grid(opts, d):
        sigmas = d.sigmas(opts.steps)
    else:
        sigmas = schedule_sigmas(schedule, opts.steps, opts.sigma_min, opts.sigma_max, denoiser, opts.power, opts.first)
    dtype = DTYPES[opts.dtype]
    spec, std = (d.init, d.init_std) if opts.init is None else (opts.init, 0.0)  # the denoiser's start carries its own noise
    start = parse_init(spec, shape, opts.device, dtype, std)
    return SamplingPlan(
        denoiser=name or opts.denoiser, weights=opts.weights if weights is None else weights, schedule=schedule,
        scheme=scheme(sigmas, d.rho if opts.rho is None else opts.rho), clip=opts.clip or d.clip, start=start, shape=shape,
        seed=opts.seed, device=str(opts.device), dtype=opts.dtype, options=opts,
    )

