"""The generation workflow behind ``inrd sample``: denoiser + schedule + start -> images on disk,
each with a JSON sidecar holding every parameter, the sigmas, seeds, versions and timing.

The CLI only parses flags into :class:`SampleConfig`; experiments and users call :func:`generate`.
Everything that can fail (settings, shapes, memory, device) is checked before a file is written.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Optional, Union

import torch
import torch.nn.functional as F

from . import denoisers, io, runs
from .diagnostics import StabilityRecorder
from .fast import speed_up
from .guards import check_device, check_memory, match_dtype, probe_shape
from .noise import sample_seed
from .sampler import SamplingDiverged, sample
from .settings import DTYPES, resolve

__all__ = ["SampleConfig", "generate", "display_scale"]


@dataclass
class SampleConfig:
    """Every choice of ``inrd sample``; ``None`` means the denoiser's :class:`SamplingDefaults`."""

    denoiser: str = "default"
    weights: Optional[str] = None
    schedule: Optional[str] = None  # "training", a named schedule, or a text file of sigmas
    steps: Optional[int] = None
    sigma_min: Optional[float] = None
    sigma_max: Optional[float] = None
    power: Optional[float] = None  # spacing of a pruned grid, see inrd.schedules.prune_indices
    first: Optional[int] = None  # its lowest kept level a_1
    rho: Union[str, float, None] = None  # canonical | ind | ddim | a number
    clip: Optional[str] = None  # none | denoised | x0, see inrd.sampler.Clip
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
    display: int = 256  # the grid shows each sample at least this many pixels wide (nearest neighbour)
    options: dict = field(default_factory=dict)  # extra keyword options for the denoiser


def display_scale(size: int, display: int) -> int:
    """Integer nearest-neighbour zoom that shows a ``size``-pixel sample at least ``display`` pixels wide."""
    return max(1, math.ceil(display / size)) if display else 1


def generate(cfg: SampleConfig, out_dir) -> dict:
    """Sample ``cfg.batch`` images and write ``grid.png`` (zoomed for display), ``sample_XXX.png`` (native
    resolution, each with a JSON sidecar), ``stability.png`` and, with ``snapshots``, ``trajectory.png``.
    Returns the grid's sidecar dict. The folder is claimed by :func:`inrd.runs.start_run` (a folder holding
    another run is refused). On divergence no image is written: ``diverged.json`` and ``stability.png``
    record the error, and :class:`SamplingDiverged` is raised."""
    if cfg.dtype not in DTYPES:
        raise ValueError(f"--dtype {cfg.dtype!r}: choose one of {', '.join(DTYPES)}.")
    if cfg.snapshots < 0 or cfg.display < 0:
        raise ValueError("--snapshots and --display must be >= 0.")
    check_device(cfg.device)
    name, weights = denoisers.resolve(cfg.denoiser, cfg.weights)
    D = denoisers.load(name, weights=weights, device=cfg.device, **cfg.options)
    if hasattr(D, "eval"):
        D.eval()
    st = resolve(D, cfg, batch=cfg.batch)
    dtype = DTYPES[cfg.dtype]
    check_memory(D, st.shape, dtype, cfg.chunk, cfg.device)
    D = match_dtype(D, dtype)
    probe_shape(D, st.shape, st.sigmas, cfg.device, dtype, name)
    D, fast_settings = speed_up(D, cfg.fast, cfg.chunk, compile=cfg.compile)

    T = st.sigmas.numel() - 1
    stab = StabilityRecorder(every=max(1, T // 200))
    frames: list[torch.Tensor] = []
    K = int(cfg.snapshots or 0)

    def callback(step):
        stab(step)
        if K and (step.t % K == 0 or step.t == 1):
            frames.append(step.x.detach().float().cpu().clamp(0, 1))

    zoom = display_scale(st.shape[-1], cfg.display)
    params = {
        "denoiser": name,
        "weights": weights,
        "denoiser_options": cfg.options,
        **st.record(),
        "batch": cfg.batch,
        "shape": list(st.shape),
        "seed": cfg.seed,
        "sample_seeds": [sample_seed(cfg.seed, i) for i in range(cfg.batch)],
        "device": str(cfg.device),
        "dtype": cfg.dtype,
        "grid_display_scale": zoom,
        **fast_settings,
        "config": {k: v for k, v in asdict(cfg).items() if k != "progress"},  # what determines the outputs
    }
    with runs.start_run(out_dir, params) as out:
        t0 = time.perf_counter()
        try:
            x = sample(
                D, st.sigmas, st.rho, shape=st.shape, init=st.init, init_std=st.init_std, seed=cfg.seed, callback=callback,
                progress=cfg.progress, device=cfg.device, dtype=dtype, clip=st.clip,
            )
        except SamplingDiverged as e:
            io.write_json(out / "diverged.json", {**params, "error": str(e), "stability": {"summary": stab.summary(), "steps": stab.rows}})
            stab.plot(out / "stability.png", title=f"{name}: diverged at t={e.t}")
            raise SamplingDiverged(f"{e} Nothing sampled was written; diagnostics in {out}/stability.png.", e.t, e.last) from None
        elapsed = time.perf_counter() - t0
        params["timing"] = {"seconds": elapsed, "seconds_per_step": elapsed / T}
        params["stability"] = {"summary": stab.summary(), "steps": stab.rows}

        for i in range(cfg.batch):
            io.save_with_sidecar(out / f"sample_{i:03d}.png", x[i : i + 1].clamp(0, 1), {**params, "index": i, "stability": None})
        shown = F.interpolate(x.float().clamp(0, 1), scale_factor=zoom, mode="nearest") if zoom > 1 else x.clamp(0, 1)
        io.save_with_sidecar(out / "grid.png", shown, params)
        stab.plot(out / "stability.png", title=f"{name}, {st.schedule} {T} steps, rho={st.rho}, init={st.init_desc}")
        if frames:
            strip = torch.stack(frames, 1).reshape(-1, *st.shape[1:])  # row i: trajectory of sample i
            strip = F.interpolate(strip, scale_factor=zoom, mode="nearest") if zoom > 1 else strip
            io.save_grid(out / "trajectory.png", strip, nrow=len(frames))
    return params
