"""``inrd sample-many``: large sample sets, one PNG per sample named by its global index; torchrun-able.

    torchrun --nproc_per_node=8 -m inrd sample-many -n 50000 --denoiser diffunet --device cuda --out DIR

Every rank samples its share of the batches (see :mod:`inrd.distributed`) and writes
``sample_<index>.png`` as it goes; rank 0 claims the folder first (:func:`inrd.runs.start_run`: a
``run.json`` manifest and a lock) and writes ``sample_many.json`` (all parameters, the sigmas, seeds,
world size, per-rank timing, versions) at the end. Sample i of seed s is the same image whatever the
number of processes. The sampling flags are those of ``inrd sample``, with the same defaults.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from .sample import add_sampling_arguments


def register(sub) -> None:
    p = sub.add_parser(
        "sample-many",
        help="sample a large set of images (one PNG per index), on one or many processes (torchrun)",
        description="Sample images 0..N-1 of a seed with INRD and write DIR/sample_<index>.png plus DIR/sample_many.json. "
        "Launch with `torchrun --nproc_per_node=G -m inrd sample-many ...` to share the work among G processes/GPUs: "
        "the images are the same as with one process.",
    )
    # not "--n": under torchrun, its own parser would take --n as an abbreviation of --nnodes / --nproc-per-node
    p.add_argument("-n", "--num-samples", dest="n", type=int, required=True, metavar="N", help="number of samples (indices 0..N-1)")
    p.add_argument("--out", required=True, help="output folder; a folder holding another run is refused")
    p.add_argument("--batch", type=int, default=16, help="samples per sampler call (default 16)")
    add_sampling_arguments(p)
    p.add_argument("--cuda-graphs", action="store_true", help="with --fast on CUDA: replay the network from CUDA graphs")
    p.add_argument("--skip-existing", action="store_true",
                   help="resume: skip batches whose PNGs are all present (only in a folder of the same run: same run.json)")
    p.set_defaults(func=run)


def _claim(out, params: dict, resume: bool, rank: int, world: int) -> contextlib.ExitStack:
    """Rank 0 claims ``out`` with :func:`inrd.runs.start_run`; every rank gets its verdict (the same one-line
    error on every rank, instead of ranks writing into a folder that rank 0 refused)."""
    from .. import runs

    stack = contextlib.ExitStack()
    error = None
    if rank == 0:
        try:
            stack.enter_context(runs.start_run(out, params, resume=resume))
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


def run(args) -> int:
    import torch

    from .. import denoisers, io
    from ..distributed import batches, dist_env, init_distributed, rank_device, sample_distributed
    from ..fast import speed_up
    from ..generate import SampleConfig
    from ..guards import check_device, check_memory, match_dtype, probe_shape
    from ..noise import sample_seed
    from ..sampler import SamplingDiverged
    from ..settings import DTYPES, resolve

    if args.n < 1:
        raise ValueError(f"--num-samples must be >= 1, got {args.n}.")
    if args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}.")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0 (it seeds one generator per sample), got {args.seed}.")
    if args.fast is None and (args.no_compile or args.cuda_graphs):
        raise ValueError("--no-compile and --cuda-graphs modify --fast; add --fast.")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {out} exists and is not a folder; choose another --out.")
    rank, world, _ = dist_env()
    check_device(args.device)
    device = rank_device(args.device)
    cfg = SampleConfig(
        denoiser=args.denoiser, weights=args.weights, schedule=args.schedule, steps=args.steps, sigma_min=args.sigma_min,
        sigma_max=args.sigma_max, power=args.power, first=args.first, rho=args.rho, clip=args.clip, init=args.init, batch=args.batch, size=args.size,
        channels=args.channels, seed=args.seed, device=str(device), dtype=args.dtype, fast=args.fast, chunk=args.chunk,
    )
    name, weights = denoisers.resolve(cfg.denoiser, cfg.weights)
    D = denoisers.load(name, weights=weights, device=device)
    if hasattr(D, "eval"):
        D.eval()
    st = resolve(D, cfg, batch=1)  # one start image (1, C, H, W) shared by all samples; the same defaults as `inrd sample`
    _, channels, size, _ = st.shape
    dtype = DTYPES[args.dtype]
    batch_shape = (min(args.batch, args.n), channels, size, size)
    check_memory(D, batch_shape, dtype, args.chunk, device)
    D = match_dtype(D, dtype)
    probe_shape(D, batch_shape, st.sigmas, device, dtype, name)
    D, fast_settings = speed_up(D, args.fast, args.chunk, compile=not args.no_compile, cuda_graphs=args.cuda_graphs)
    T = st.sigmas.numel() - 1

    # what determines the pixels of sample i: a resumed run must match it (n may grow, timing may change).
    # shape: (B, C, H, W) of one sampler call, as in `inrd sample`; the last batch may be smaller (n % batch)
    identity = {
        "denoiser": name, "weights": weights, **st.record(), "shape": [args.batch, channels, size, size], "batch": args.batch,
        "seed": args.seed, "device": args.device, "dtype": args.dtype, "fast": fast_settings["fast"],
    }
    init_distributed(device)
    width = max(6, len(str(args.n - 1)))
    path = lambda i: out / f"sample_{i:0{width}d}.png"  # noqa: E731
    written = [0]

    def write(idx, x):
        for j, i in enumerate(idx):
            io.save_image(path(i), x[j : j + 1].clamp(0, 1))
        written[0] += len(idx)

    skip = (lambda idx: all(path(i).is_file() for i in idx)) if args.skip_existing else None
    with _claim(out, identity, args.skip_existing, rank, world):
        t0 = time.perf_counter()
        try:
            sample_distributed(
                D, st.sigmas, st.rho, n=args.n, shape=(channels, size, size), batch=args.batch, seed=args.seed,
                init=st.init, init_std=st.init_std, clip=st.clip, device=device, dtype=dtype, on_batch=write,
                gather=False, skip=skip, progress=args.progress,
            )
        except SamplingDiverged as e:
            raise ValueError(f"{e} (rank {rank}; samples written so far are kept in {out})") from None
        elapsed = time.perf_counter() - t0
        timing = {"rank": rank, "device": str(device), "seconds": elapsed, "samples": written[0]}
        timings = [timing]
        if world > 1:
            import torch.distributed as dist

            timings = [None] * world
            dist.all_gather_object(timings, timing)
            dist.destroy_process_group()
        if rank != 0:
            return 0
        total = sum(t["samples"] for t in timings)
        params = {
            **identity,
            "n": args.n,
            "sample_seeds": "inrd.noise.sample_seed(seed, index)",
            "first_sample_seeds": [sample_seed(args.seed, i) for i in range(min(args.n, 4))],
            "files": f"sample_{{index:0{width}d}}.png",
            "batches": len(batches(args.n, args.batch)),
            "world_size": world,
            **fast_settings,
            "timing": {"ranks": timings, "seconds": max(t["seconds"] for t in timings), "samples_written": total},
            "versions": io.versions(),
            "torch_threads": torch.get_num_threads(),
        }
        io.write_json(out / "sample_many.json", params)
    print(
        f"{total} samples ({args.n} requested) with {name}, {st.schedule} {T} steps, on {world} process(es): "
        f"{params['timing']['seconds']:.1f} s -> {out}/sample_*.png"
    )
    return 0
