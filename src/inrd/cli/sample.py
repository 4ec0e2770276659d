"""``inrd sample``: generate images with INRD and any denoiser (argparse -> SampleOptions -> prepare ->
generate -> print)."""

from __future__ import annotations

from ..choices import Clip, DtypeName, FastMode, names_of
from . import CliError, add_progress_flag


def add_sampling_arguments(p) -> None:
    """The flags that choose a denoiser, a schedule, a relaxation and a start (shared by sample and sample-many);
    their values are checked by :class:`inrd.plan.SampleOptions` (names case-insensitively, as everywhere in inrd)."""
    p.add_argument("--denoiser", default="default", help="registry name (see `inrd weights list`) or a checkpoint "
                   "(file: DiffUNet, folder: diffusers UNet2DModel); default: the best offline model")
    p.add_argument("--weights", help="checkpoint path or registry name for the denoiser's weights")
    p.add_argument("--schedule", help="training (the network's own grid), ddpm, cosine, affine, geometric, "
                   "super-geometric, karras, or a text file of sigmas (default: the denoiser's)")
    p.add_argument("--steps", type=int, help="number of steps (grids and files are pruned)")
    p.add_argument("--sigma-min", type=float, help="smallest noise level ([0, 1] units) of parametric schedules")
    p.add_argument("--sigma-max", type=float, help="largest noise level of parametric schedules; ddpm/cosine are cut there")
    p.add_argument("--power", type=float, help="spacing of a pruned grid (training, ddpm, cosine, a file): levels a_k spaced as "
                   "((k-1)/(n-1))^POWER from --first to the top; 1 with no --first: diffusers' trailing (default: the denoiser's)")
    p.add_argument("--first", type=int, help="lowest kept level a_1 (1-based index in the grid) of a pruned grid")
    p.add_argument("--rho", "--relax", dest="rho", help="relaxation: canonical | ind | ddim | a number in [0, 1] (default: the denoiser's)")
    p.add_argument("--clip", metavar="{" + ",".join(names_of(Clip)) + "}",
                   help="none: the paper's D; denoised: clip D(u) to [0, 1]; x0: diffusers' clip_sample (clip D(u), keep the noise direction)")
    p.add_argument("--init", help="start V_T: a constant (0.5), gaussian:STD[:MEAN], or an image file")
    p.add_argument("--size", type=int, help="image side in pixels")
    p.add_argument("--channels", type=int, choices=(1, 3))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", metavar="{" + ",".join(names_of(DtypeName)) + "}", help="dtype of the iterates (default: float32)")
    p.add_argument("--fast", nargs="?", const="auto", metavar="{" + ",".join(names_of(FastMode)) + "}",
                   help="fast path for neural denoisers: the network in reduced precision (auto: fp16 on CUDA, bf16 on "
                   "CPU), channels_last, torch.compile; accuracy in benchmarks/README.md")
    p.add_argument("--no-compile", action="store_true", help="with --fast: do not torch.compile the network")
    p.add_argument("--chunk", type=int, metavar="K", help="denoise at most K images per network call (0: adapt to memory)")
    add_progress_flag(p)


def sample_options(args, **extra):
    """The :class:`inrd.plan.SampleOptions` of parsed sampling flags."""
    from ..plan import SampleOptions

    return SampleOptions(
        denoiser=args.denoiser, weights=args.weights, schedule=args.schedule, steps=args.steps, sigma_min=args.sigma_min,
        sigma_max=args.sigma_max, power=args.power, first=args.first, rho=args.rho, clip=args.clip, init=args.init,
        batch=args.batch, size=args.size, channels=args.channels, seed=args.seed, device=args.device, dtype=args.dtype,
        fast=args.fast, chunk=args.chunk, compile=not args.no_compile, **extra,
    )


def register(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="generate images with INRD (offline by default)",
        description="Generate images with INRD: V_{t-1} = D^{rho_t}_{sigma_t}(V_t + gamma_t Z_t). "
        "Writes grid.png, sample_XXX.png with JSON sidecars, stability.png (and trajectory.png).",
    )
    add_sampling_arguments(p)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--snapshots", type=int, default=0, metavar="K", help="save the iterate every K steps (trajectory.png)")
    p.add_argument("--display", type=int, default=256, metavar="PX",
                   help="grid.png shows each sample at least PX pixels wide, nearest-neighbour (0: native size)")
    p.add_argument("--out", default="samples", help="output folder (default: ./samples); a folder holding another run is refused")
    p.set_defaults(func=run)


def stability_line(summ: dict, batch: int) -> str:
    """One line on whether the iterates carried the noise the schedule intends (inrd.diagnostics.StabilityRecorder.summary;
    the corrected ratio removes the content's own HH level)."""
    rng = lambda lo, hi: "n/a" if lo is None else f"[{lo:.2f}, {hi:.2f}]"  # noqa: E731
    return (
        f"stability: estimated/intended noise, content-corrected {rng(summ['noise_in_over_sigma_min'], summ['noise_in_over_sigma_max'])} "
        f"(raw {rng(summ['noise_in_over_sigma_raw_min'], summ['noise_in_over_sigma_raw_max'])}"
        + ("" if summ["content_level"] is None else f"; content level {summ['content_level']:.3f}, "
           f"excluded below it: {summ['steps_excluded']}/{summ['steps_recorded']} steps, "
           f"{summ['images_excluded']}/{summ['steps_recorded'] * batch} step-images")
        + f"), final std {summ['final_std']:.3f}" + (" (collapsed to the mean value)" if summ["collapsed_to_mean"] else "")
    )


def run(args) -> int:
    from .. import io
    from ..generate import generate, output_bytes, prepare
    from ..sampler import SamplingDiverged

    opts = sample_options(args)
    if args.snapshots < 0 or args.display < 0:
        raise ValueError("--snapshots and --display must be >= 0.")
    io.check_output(args.out)
    try:
        params = generate(prepare(opts, outputs=output_bytes(args.display, args.snapshots)), args.out, args.snapshots, args.display, args.progress)
    except SamplingDiverged as e:
        raise CliError(str(e)) from None
    print(
        f"{params['batch']} samples with {params['denoiser']}, {params['schedule']} {params['steps']} steps, "
        f"rho={params['rho']}, init={params['init']}: {params['timing']['seconds']:.1f} s -> {args.out}/grid.png"
    )
    print(stability_line(params["stability"]["summary"], params["batch"]))
    return 0
