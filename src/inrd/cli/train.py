"""``inrd train``: train the small DDPM eps-network (inrd-small) on scikit-image textures, offline."""

from __future__ import annotations

from . import add_progress_flag


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train the small diffusion model (inrd-small) on bundled textures",
        description=(
            "Train an eps-predicting UNet with the DDPM objective (linear betas, T = 1000) on random 32x32 crops "
            "of the scikit-image textures brick, grass and gravel. Deterministic given --seed (on CPU, fixed "
            "--threads); checkpoints every --checkpoint-every iterations into --out and continues with --resume. "
            "The EMA weights are written as OUT/inrd_small.safetensors (+ .json); sample with "
            "`inrd sample --denoiser inrd-small --weights OUT/inrd_small.safetensors`. "
            "`inrd train --recipe inrd-small --out DIR` reruns every stage of the shipped weights and checks their sha256."
        ),
    )
    p.add_argument("--recipe", choices=("inrd-small",), default=None,
                   help="rerun the recorded stages of these shipped weights (each in OUT/<stage>, resumed if started) and "
                        "compare the result with the shipped sha256; takes only --out, --threads and --progress")
    p.add_argument("--iters", type=int, default=4000, help="total optimizer iterations (raise it with --resume to train longer)")
    p.add_argument("--batch", type=int, default=32, help="crops per iteration (default 32)")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate after the warm-up (default 5e-4)")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                   help="lr after warm-up: constant (default) or cosine-decayed to 0 at --iters")
    p.add_argument("--warmup", type=int, default=200, help="linear lr warm-up iterations (default 200)")
    p.add_argument("--init-weights", default=None, metavar="FILE",
                   help="start network and EMA from these inrd-small weights (.safetensors + .json), fresh Adam (fine-tuning)")
    p.add_argument("--size", type=int, default=32, help="crop size in pixels (default 32; divisible by 4)")
    p.add_argument("--channels", default="32,64,64", help="UNet channels per resolution level (default 32,64,64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation, crops, timesteps and noise")
    p.add_argument("--out", default="out/train", help="run folder (training state + exported weights)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out (same options; --iters may grow)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice; --recipe: 1)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--checkpoint-every", type=int, default=250, help="iterations between checkpoints (default 250)")
    add_progress_flag(p)
    p.set_defaults(func=run, parser=p)


def _run_recipe(args) -> int:
    from ..train_recipe import describe, run_recipe

    fixed = [a for a in ("iters", "batch", "lr", "lr_schedule", "warmup", "init_weights", "size", "channels", "seed", "resume",
                         "device", "checkpoint_every") if getattr(args, a) != args.parser.get_default(a)]
    if fixed:
        flags = ", ".join("--" + a.replace("_", "-") for a in fixed)
        raise ValueError(f"--recipe fixes every training option; drop {flags}.")
    results = run_recipe(args.recipe, args.out, threads=1 if args.threads is None else args.threads, progress=args.progress)
    print(describe(results))
    return 0 if all(r["matches"] for r in results) else 1


def run(args) -> int:
    from .. import io
    from ..train import train

    io.check_output(args.out)
    if args.recipe is not None:
        return _run_recipe(args)
    try:
        channels = tuple(int(c) for c in str(args.channels).split(","))
    except ValueError:
        raise ValueError(f"--channels must be comma-separated integers like 32,64,64, got {args.channels!r}.") from None
    r = train(
        args.out,
        resume=args.resume,
        progress=args.progress,
        iters=args.iters,
        batch=args.batch,
        lr=args.lr,
        size=args.size,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
        channels=channels,
        checkpoint_every=args.checkpoint_every,
        lr_schedule=args.lr_schedule,
        warmup=args.warmup,
        init_weights=args.init_weights,
    )
    print(
        f"trained {r['iters']} iterations in {r['train_seconds']:.0f} s ({r['iterations_per_second']} it/s): "
        f"train loss {r['final_train_loss']:.4f}, held-out loss {r['heldout_loss_ema']:.4f}; "
        f"weights {r['out']}/inrd_small.safetensors"
    )
    return 0
