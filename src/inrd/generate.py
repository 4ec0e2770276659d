"""The generation workflow behind ``inrd sample``: options -> :func:`prepare` (the denoiser loaded and
checked, the :class:`~inrd.plan.SamplingPlan` decided) -> :func:`generate` (images on disk, each with a
JSON sidecar holding every parameter, the sigmas, seeds, versions and timing).

Everything that can fail before sampling (options, schedule, relaxation, shape, memory, device, output
folder) is checked by :func:`prepare` and at the top of :func:`generate`, before a file is written.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from . import io, runs
from .plan import SampleOptions, SamplingPlan, plan_sampling

__all__ = ["Prepared", "prepare", "generate", "display_scale", "output_bytes", "sample_plan"]


@dataclass(frozen=True)
class Prepared:
    """A denoiser ready to run a plan: loaded, in eval mode, in the plan's dtype, probed on the plan's image
    shape and sped up as asked; ``fast`` records the fast-path settings (:func:`inrd.fast.speed_up`)."""

    denoiser: Callable
    plan: SamplingPlan
    fast: dict


def display_scale(size: int, display: int) -> int:
    """Integer nearest-neighbour zoom that shows a ``size``-pixel sample at least ``display`` pixels wide."""
    return max(1, math.ceil(display / size)) if display else 1


def prepare(opts: SampleOptions, batch: Optional[int] = None, device=None,
            outputs: Callable[[SamplingPlan], int] = lambda plan: 0) -> Prepared:
    """Load ``opts.denoiser`` and plan the run (:func:`inrd.plan.plan_sampling`; ``batch`` / ``device``
    override the options', as sample-many does per process), then, before anything is written: refuse a
    run that would not fit in memory (the sampler's buffers, the network's feature maps, and
    ``outputs(plan)`` bytes for what the outputs hold at once, :func:`output_bytes`), cast to the plan's dtype, probe one
    network call on the plan's image shape, and apply the fast path."""
    from . import denoisers
    from .fast import speed_up
    from .guards import check_memory, match_dtype, probe_shape

    device = str(device or opts.device)
    name, weights = denoisers.identify(opts.denoiser, opts.weights)
    D = denoisers.load(name, weights=weights, device=device, **opts.denoiser_options)
    if hasattr(D, "eval"):
        D.eval()
    plan = plan_sampling(opts, D, name=name, weights=weights, batch=batch)
    if device != plan.device:
        plan = _on_device(plan, device)
    check_memory(D, plan.shape, plan.torch_dtype, opts.chunk, device, outputs(plan))
    D = match_dtype(D, plan.torch_dtype)
    probe_shape(D, plan.shape, plan.scheme.sigmas, device, plan.torch_dtype, name)
    D, fast = speed_up(D, opts.fast, opts.chunk, compile=opts.compile, cuda_graphs=opts.cuda_graphs)
    return Prepared(D, plan, fast)


def _on_device(plan: SamplingPlan, device: str) -> SamplingPlan:
    from dataclasses import replace

    init = plan.start.init.to(device) if torch.is_tensor(plan.start.init) else plan.start.init
    return replace(plan, device=device, start=replace(plan.start, init=init))


def sample_plan(run: Prepared, callback=None, progress: bool = False) -> torch.Tensor:
    """Execute a plan with :func:`inrd.sample`: V_0 as a (B, C, H, W) tensor."""
    from .sampler import sample

    p = run.plan
    return sample(run.denoiser, p.scheme, shape=p.shape, init=p.start.init, init_std=p.start.init_std, seed=p.seed,
                  callback=callback, progress=progress, device=p.device, dtype=p.torch_dtype, clip=p.clip)


def output_bytes(display: int, snapshots: int = 0) -> Callable[[SamplingPlan], int]:
    """What the outputs of :func:`generate` hold at once for a plan (bytes): the float32 zoom of the grid, its
    tiled copy and the 8-bit image; with ``snapshots``, the trajectory's frames and their zoom."""
    def need(plan: SamplingPlan) -> int:
        B, C, H, W = plan.shape
        z = display_scale(W, display)
        frames = (plan.scheme.T // snapshots + 2) if snapshots else 0
        return (B + 2 * B * frames) * C * (H * z + 2) * (W * z + 2) * (4 + 4 + 1) + frames * B * C * H * W * 4
    return need


def generate(run: Prepared, out_dir, snapshots: int = 0, display: int = 256, progress: bool = True) -> dict:
    """Sample the plan's batch and write ``grid.png`` (zoomed for display), ``sample_XXX.png`` (native
    resolution, each with a JSON sidecar), ``stability.png`` and, with ``snapshots``, ``trajectory.png``.
    Returns the grid's sidecar dict. The folder is claimed by :func:`inrd.runs.start_run` (a folder holding
    another run is refused). On divergence no image is written: ``diverged.json`` and ``stability.png``
    record the error, and :class:`~inrd.sampler.SamplingDiverged` is raised."""
    from .diagnostics import StabilityRecorder
    from .noise import sample_seed
    from .sampler import SamplingDiverged

    if snapshots < 0 or display < 0:
        raise ValueError("--snapshots and --display must be >= 0.")
    io.check_output(out_dir)
    plan = run.plan
    T = plan.scheme.T
    stab = StabilityRecorder(every=max(1, T // 200))
    frames: list[torch.Tensor] = []

    def callback(step):
        stab(step)
        if snapshots and (step.t % snapshots == 0 or step.t == 1):
            frames.append(step.x.detach().float().cpu().clamp(0, 1))

    zoom = display_scale(plan.shape[-1], display)
    params = {
        **plan.record(),
        "sample_seeds": [sample_seed(plan.seed, i) for i in range(plan.shape[0])],
        "grid_display_scale": zoom,
        **run.fast,
        "config": {**plan.options.record(), "snapshots": snapshots, "display": display},  # what determines the outputs
    }
    title = f"{plan.denoiser}, {plan.schedule} {T} steps, rho={plan.scheme.rho}, init={plan.start.desc}"
    with runs.start_run(out_dir, params) as out:
        t0 = time.perf_counter()
        try:
            x = sample_plan(run, callback, progress)
        except SamplingDiverged as e:
            io.write_json(out / "diverged.json", {**params, "error": str(e), "stability": {"summary": stab.summary(), "steps": stab.rows}})
            stab.plot(out / "stability.png", title=f"{plan.denoiser}: diverged at t={e.t}")
            raise SamplingDiverged(f"{e} Nothing sampled was written; diagnostics in {out}/stability.png.", e.t, e.last) from None
        elapsed = time.perf_counter() - t0
        params["timing"] = {"seconds": elapsed, "seconds_per_step": elapsed / T}
        params["stability"] = {"summary": stab.summary(), "steps": stab.rows}
        for i in range(plan.shape[0]):
            io.save_with_sidecar(out / f"sample_{i:03d}.png", x[i : i + 1].clamp(0, 1), {**params, "index": i, "stability": None})
        shown = F.interpolate(x.float().clamp(0, 1), scale_factor=zoom, mode="nearest") if zoom > 1 else x.clamp(0, 1)
        io.save_with_sidecar(out / "grid.png", shown, params)
        stab.plot(out / "stability.png", title=title)
        if frames:
            strip = torch.stack(frames, 1).reshape(-1, *plan.shape[1:])  # row i: trajectory of sample i
            strip = F.interpolate(strip, scale_factor=zoom, mode="nearest") if zoom > 1 else strip
            io.save_grid(out / "trajectory.png", strip, nrow=len(frames))
    return params
