"""``inrd sample-many``: large sample sets, one PNG per sample named by its global index; torchrun-able
(argparse -> SampleOptions -> prepare -> :func:`inrd.sample_many.sample_many` -> print).

    torchrun --nproc_per_node=8 -m inrd sample-many -n 50000 --denoiser diffunet --device cuda --out DIR

The sampling flags are those of ``inrd sample``, with the same defaults.
"""

from __future__ import annotations

from .sample import add_sampling_arguments, sample_options


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
                   help="resume: skip batches whose PNGs are all present and readable (only in a folder of the same run: same run.json)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import io
    from ..distributed import rank_device
    from ..generate import prepare
    from ..sample_many import sample_many

    if args.n < 1:
        raise ValueError(f"--num-samples must be >= 1, got {args.n}.")
    if args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}.")
    opts = sample_options(args, cuda_graphs=args.cuda_graphs)
    io.check_output(args.out)
    params = sample_many(prepare(opts, device=str(rank_device(opts.device))), args.out, args.n, args.skip_existing, args.progress)
    if params is not None:
        print(
            f"{params['timing']['samples_written']} samples ({args.n} requested) with {params['denoiser']}, {params['schedule']} "
            f"{params['steps']} steps, on {params['world_size']} process(es): {params['timing']['seconds']:.1f} s -> {args.out}/sample_*.png"
        )
    return 0
