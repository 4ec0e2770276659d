"""The workflow behind ``inrd sample-many``: samples ``0..n-1`` of a plan, one PNG per global index, on one
or many processes (``torchrun``), identical to one process.

Every rank samples its share of the batches (:mod:`inrd.distributed`) and writes ``sample_<index>.png``
as it goes; rank 0 claims the folder first (:func:`inrd.runs.start_run`: a ``run.json`` manifest and a
lock) and writes ``sample_many.json`` (all parameters, the sigmas, seeds, world size, per-rank timing,
versions) at the end. Sample i of seed s is the same image whatever the number of processes.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

from . import io, runs
from .generate import Prepared

__all__ = ["sample_many"]


def _claim(out: Path, params: dict, resume: bool, rank: int, world: int) -> contextlib.ExitStack:
    """Rank 0 claims ``out`` with :func:`inrd.runs.start_run`; every rank gets its verdict (the same one-line
    error on every rank, instead of ranks writing into a folder that rank 0 refused)."""
    stack = contextlib.ExitStack()
    error = None
    if rank == 0:
        try:
            stack.enter_context(runs.start_run(out, params, resume=resume, resume_flag="--skip-existing"))
        except ValueError as e:
            error = str(e)
    if world > 1:
        import torch.distributed as dist

        verdict = [error]
        dist.broadcast_object_list(verdict, src=0)
        error = verdict[0]
    if error is not None:
        stack.close()
        raise ValueError(error)
    return stack


def _gather_timing(timing: dict, world: int) -> list[dict]:
    if world == 1:
        return [timing]
    import torch.distributed as dist

    timings: list = [None] * world
    dist.all_gather_object(timings, timing)
    dist.destroy_process_group()
    return timings


def sample_many(run: Prepared, out_dir, n: int, skip_existing: bool = False, progress: bool = True) -> dict:
    """Sample ``n`` images of ``run.plan`` (its batch is the images per sampler call, its start shared by all)
    into ``out_dir``; with ``skip_existing``, resume a folder of the same run, leaving out batches whose
    PNGs are all present and decode. Returns ``sample_many.json``'s dict on rank 0, None on the others."""
    from .distributed import batches, dist_env, init_distributed, sample_distributed
    from .noise import sample_seed
    from .sampler import SamplingDiverged

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--num-samples must be an integer >= 1, got {n!r}.")
    out = io.check_output(out_dir)
    plan, rank, world = run.plan, *dist_env()[:2]
    _, C, H, W = plan.shape
    # what determines the pixels of sample i: a resumed run must match it (n may grow, timing may change)
    identity = {**plan.record(), "device": plan.options.device, "fast": run.fast["fast"]}
    init = plan.start.init[:1] if torch.is_tensor(plan.start.init) else plan.start.init  # one start image for all samples
    init_distributed(plan.device)
    width = max(6, len(str(n - 1)))
    path = lambda i: out / f"sample_{i:0{width}d}.png"  # noqa: E731
    written = [0]

    def write(idx, x):
        for j, i in enumerate(idx):
            io.save_image(path(i), x[j : j + 1].clamp(0, 1))
        written[0] += len(idx)

    skip = (lambda idx: all(io.is_readable_image(path(i)) for i in idx)) if skip_existing else None
    with _claim(out, identity, skip_existing, rank, world):
        t0 = time.perf_counter()
        try:
            sample_distributed(
                run.denoiser, plan.scheme, n=n, shape=(C, H, W), batch=plan.shape[0], seed=plan.seed, init=init,
                init_std=plan.start.init_std, clip=plan.clip, device=plan.device, dtype=plan.torch_dtype, on_batch=write,
                gather=False, skip=skip, progress=progress,
            )
        except SamplingDiverged as e:
            raise ValueError(f"{e} (rank {rank}; samples written so far are kept in {out})") from None
        timings = _gather_timing({"rank": rank, "device": plan.device, "seconds": time.perf_counter() - t0, "samples": written[0]}, world)
        if rank != 0:
            return None
        params = {
            **identity,
            "n": n,
            "sample_seeds": "inrd.noise.sample_seed(seed, index)",
            "first_sample_seeds": [sample_seed(plan.seed, i) for i in range(min(n, 4))],
            "files": f"sample_{{index:0{width}d}}.png",
            "batches": len(batches(n, plan.shape[0])),
            "world_size": world,
            **run.fast,
            "timing": {"ranks": timings, "seconds": max(t["seconds"] for t in timings), "samples_written": sum(t["samples"] for t in timings)},
            "versions": io.versions(),
            "torch_threads": torch.get_num_threads(),
        }
        io.write_json(out / "sample_many.json", params)
    return params
