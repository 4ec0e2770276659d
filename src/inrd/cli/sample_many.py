"""``inrd sample-many``: large sample sets, one PNG per sample named by its global index; torchrun-able.

    torchrun --nproc_per_node=8 -m inrd sample-many -n 50000 --denoiser diffunet-ffhq --device cuda --out DIR

Every rank samples its share of the batches (see :mod:`inrd.distributed`) and writes
``sample_<index>.png`` as it goes; rank 0 writes ``sample_many.json`` (all parameters, the sigmas,
seeds, world size, per-rank timing, versions) at the end. Sample i of seed s is the same image whatever
the number of processes.
"""

from __future__ import annotations

import time
from pathlib import Path

from .sample import _relax

_HELP_FAST = ("fast path for neural denoisers: the network in reduced precision (auto: fp16 on CUDA, bf16 on CPU; "
              "or bf16, fp16, fp32 = full precision), channels_last, torch.compile")


def register(sub) -> None:
    from ..generate import DTYPES

    p = sub.add_parser(
        "sample-many",
        help="sample a large set of images (one PNG per index), on one or many processes (torchrun)",
        description="Sample images 0..N-1 of a seed with INRD and write DIR/sample_<index>.png plus DIR/sample_many.json. "
        "Launch with `torchrun --nproc_per_node=G -m inrd sample-many ...` to share the work among G processes/GPUs: "
        "the images are the same as with one process.",
    )
    # not "--n": under torchrun, its own parser would take --n as an abbreviation of --nnodes / --nproc-per-node
    p.add_argument("-n", "--num-samples", dest="n", type=int, required=True, metavar="N", help="number of samples (indices 0..N-1)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--batch", type=int, default=16, help="samples per sampler call (default 16)")
    p.add_argument("--denoiser", default="default", help="registry name or checkpoint, as for `inrd sample`")
    p.add_argument("--weights", help="checkpoint path or registry name for the denoiser's weights")
    p.add_argument("--schedule", help="ddpm, cosine, affine, geometric, super-geometric, karras, or a text file of sigmas")
    p.add_argument("--steps", type=int, help="number of steps (pruning for ddpm/cosine/files)")
    p.add_argument("--sigma-min", type=float)
    p.add_argument("--sigma-max", type=float)
    p.add_argument("--relax", type=_relax, help="canonical | ind | ddim | a number in [0, 1] (default: the denoiser's)")
    p.add_argument("--init", help="start V_T: a constant (0.5), gaussian:STD[:MEAN], or an image file")
    p.add_argument("--size", type=int)
    p.add_argument("--channels", type=int, choices=(1, 3))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda (under torchrun: cuda:LOCAL_RANK), ...")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="dtype of the iterates")
    p.add_argument("--fast", nargs="?", const="auto", choices=("auto", "bf16", "fp16", "fp32"), help=_HELP_FAST)
    p.add_argument("--no-compile", action="store_true", help="with --fast: do not torch.compile the network")
    p.add_argument("--cuda-graphs", action="store_true", help="with --fast on CUDA: replay the network from CUDA graphs")
    p.add_argument("--chunk", type=int, metavar="K", help="denoise at most K images per network call (0: adapt to memory)")
    p.add_argument("--skip-existing", action="store_true", help="skip batches whose PNGs are all present (resume)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from .. import io
    from ..distributed import batches, dist_env, init_distributed, rank_device, sample_distributed
    from ..fast import speed_up
    from ..generate import DTYPES, load_denoiser, settings, settings_record
    from ..sampler import SamplingDiverged, sample_seed

    if args.n < 1:
        raise ValueError(f"--num-samples must be >= 1, got {args.n}.")
    if args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}.")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}.")
    if args.fast is None and (args.no_compile or args.cuda_graphs):
        raise ValueError("--no-compile and --cuda-graphs modify --fast; add --fast.")
    out = io.ensure_writable_dir(args.out)
    rank, world, _ = dist_env()
    device = rank_device(args.device)
    dtype = DTYPES[args.dtype]

    name, D = load_denoiser(args.denoiser, args.weights, device)
    if hasattr(D, "eval"):
        D.eval()
    st = settings(D, args, batch=1)  # the same defaults as `inrd sample`
    sigmas, rho, init, init_std = st["sigmas"], st["rho"], st["init"], st["init_std"]
    _, channels, size, _ = st["shape"]
    T = sigmas.numel() - 1
    D, fast_settings = speed_up(D, args.fast, args.chunk, compile=not args.no_compile, cuda_graphs=args.cuda_graphs)

    width = max(6, len(str(args.n - 1)))
    path = lambda i: out / f"sample_{i:0{width}d}.png"  # noqa: E731
    written = [0]

    def write(idx, x):
        for j, i in enumerate(idx):
            io.save_image(path(i), x[j : j + 1].clamp(0, 1))
        written[0] += len(idx)

    skip = (lambda idx: all(path(i).is_file() for i in idx)) if args.skip_existing else None
    init_distributed(device)
    t0 = time.perf_counter()
    try:
        sample_distributed(
            D, sigmas, rho, n=args.n, shape=(channels, size, size), batch=args.batch, seed=args.seed, init=init,
            init_std=init_std, device=device, dtype=dtype, on_batch=write, gather=False, skip=skip,
            progress=not args.no_progress,
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
        "denoiser": name,
        "weights": args.weights,
        **settings_record(st),
        "n": args.n,
        "batch": args.batch,
        "shape": [channels, size, size],
        "seed": args.seed,
        "sample_seeds": "inrd.sampler.sample_seed(seed, index)",
        "first_sample_seeds": [sample_seed(args.seed, i) for i in range(min(args.n, 4))],
        "files": f"sample_{{index:0{width}d}}.png",
        "batches": len(batches(args.n, args.batch)),
        "world_size": world,
        "device": args.device,
        "dtype": args.dtype,
        **fast_settings,
        "timing": {"ranks": timings, "seconds": max(t["seconds"] for t in timings), "samples_written": total},
        "versions": io.versions(),
        "torch_threads": torch.get_num_threads(),
    }
    io.write_json(Path(out) / "sample_many.json", params)
    print(
        f"{total} samples ({args.n} requested) with {name}, {st['schedule']} {T} steps, on {world} process(es): "
        f"{params['timing']['seconds']:.1f} s -> {out}/sample_*.png"
    )
    return 0
