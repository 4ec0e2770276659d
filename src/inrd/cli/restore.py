"""``inrd restore``: restore one's own observation (deblurring, inpainting, super-resolution, denoising)
with a plug-and-play algorithm or INRD posterior sampling; no ground truth needed."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

TASKS = ("deblur", "inpaint", "super-resolution", "denoise")


def register(sub) -> None:
    from ..restoration import ALGORITHMS, DEFAULT_ALGORITHM

    p = sub.add_parser(
        "restore",
        help="restore your own blurred / masked / low-resolution / noisy image (y = A v + w)",
        description="Restore an observation y = A v + w, w ~ N(0, nu^2). Writes, into a new folder --out: "
        "restored.png, observed.png, restore.json (every parameter, versions, seed, timing, per-iteration curves), "
        "curves.png, and for sampling algorithms samples.png (the posterior samples), std.png (per-pixel std) with "
        "restored.png their mean. Default algorithm per task: "
        + ", ".join(f"{t}: {a}" for t, a in DEFAULT_ALGORITHM.items()) + " (the best of docs/restoration.md's table).",
    )
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--observed", required=True, help="the observation: an image file (PNG 8/16-bit, gray or RGB)")
    p.add_argument("--noise-level", default="auto", metavar="NU", help="std nu of the observation noise in [0, 1] units, or 'auto': estimated as "
                   "median(|HH|)/0.6745 of the finest Haar diagonal coefficients (biased up on textured images) (default: auto)")
    p.add_argument("--kernel", help="deblur / super-resolution: gaussian:STD[:SIZE] or a .npy / .txt kernel "
                   "(super-resolution default: gaussian:F/2 for factor F)")
    p.add_argument("--normalize-kernel", action="store_true", help="divide a kernel that does not sum to 1 by its sum "
                   "(without it such a kernel is an error)")
    p.add_argument("--mask", help="inpaint: mask image of the observation's size, white = observed pixel")
    p.add_argument("--factor", type=int, choices=(2, 4), default=2, help="super-resolution factor (default: 2)")
    p.add_argument("--truth", help="optional ground truth, to report PSNR and SSIM")
    p.add_argument("--algorithm", choices=ALGORITHMS, help="default: the task's best (see above)")
    p.add_argument("--denoiser", default="ffdnet", help="registry name (default: ffdnet, the only denoiser measured "
                   "in docs/restoration.md's table)")
    p.add_argument("--weights", help="checkpoint for denoisers that need one")
    p.add_argument("--iters", type=int, help="iterations (steps for inrd-posterior); default: the algorithm's")
    p.add_argument("--samples", type=int, default=3, help="inrd-posterior: posterior samples (default: 3)")
    p.add_argument("--sigma-denoiser", type=float, help="pnp-pgd / gs-pnp: fixed denoiser level (default: 2 nu / 5 nu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling noise (inrd-posterior)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="restore", help="output folder; must not exist or be empty (default: ./restore)")
    p.set_defaults(func=run)


def denoiser_for_channels(name, channels, weights, device):
    """The denoiser for ``channels``-channel images, and the channel count it works on (a denoiser
    fixed to another count, e.g. inrd-small to gray, gets the image converted)."""
    from ..denoisers import load
    from ..restoration import denoiser_channels

    D = load(name, weights=weights, device=device)
    fixed = denoiser_channels(D)
    if fixed is not None and fixed != channels:
        try:  # a builder with a channels option (ffdnet, drunet, tv, bm3d)
            D = load(name, weights=weights, device=device, channels=channels)
        except (TypeError, ValueError):
            return D, fixed
        fixed = denoiser_channels(D) or channels
    return D, fixed or channels


def _new_run_dir(out: Path) -> Path:
    """Everything is written into a hidden sibling folder, renamed onto ``out`` at the end: a run is
    all there or not at all, and never mixed with another one."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} exists and is not an empty folder (it may hold another run); choose a new folder.")
    parent = out.parent if str(out.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.tmp-"))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes a 0700 folder; give the run the usual permissions
        return tmp
    except OSError as e:
        raise ValueError(f"cannot write to {parent}: {e.strerror}; choose a writable --out.") from None


@contextmanager
def fresh_run_dir(out: Path):
    """Yield a new hidden folder beside ``out``; on success rename it onto ``out``, else delete it."""
    tmp = _new_run_dir(out)
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # empty (checked by _new_run_dir)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def run(args) -> int:

    from .. import io
    from .. import restoration as R
    from ..experiments.plots import plot_diagnostics
    from ..experiments.restore_table import ssim
    from ..metrics import psnr

    if args.iters is not None and args.iters < 1:
        raise ValueError(f"--iters must be >= 1, got {args.iters}.")
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}.")
    y = io.load_image(args.observed)
    h, w = y.shape[-2:]
    spec = args.kernel
    if args.task == "inpaint":
        if not args.mask:
            raise ValueError("--task inpaint needs --mask (white = observed pixels, the observation's size).")
        op = R.Inpainting(R.load_mask(args.mask, shape=(h, w)))
    elif args.task == "deblur":
        if not args.kernel:
            raise ValueError("--task deblur needs --kernel (gaussian:STD or a .npy / .txt file).")
        op = R.PeriodicBlur(R.check_kernel_sum(R.load_kernel(args.kernel, max_size=(h, w)), args.normalize_kernel))
    elif args.task == "super-resolution":
        spec = args.kernel or f"gaussian:{args.factor / 2:g}"
        k = R.check_kernel_sum(R.load_kernel(spec, max_size=(h * args.factor, w * args.factor)), args.normalize_kernel)
        op = R.Downsampling(k, args.factor)
    else:
        op = R.Denoising()
    for bad, flag in ((args.mask and args.task != "inpaint", "--mask"), (args.kernel and args.task in ("inpaint", "denoise"), "--kernel")):
        if bad:
            raise ValueError(f"{flag} does not apply to --task {args.task}.")
    if str(args.noise_level).lower() == "auto":
        nu = R.estimate_noise(y, op.mask if args.task == "inpaint" else None)
        level_method = R.NOISE_ESTIMATOR
        if not nu > 0:
            raise ValueError("the estimated noise level is 0 (a noiseless or quantised image?); give --noise-level NU > 0.")
    else:
        try:
            nu = float(args.noise_level)
        except ValueError:
            raise ValueError(f"--noise-level must be a number > 0 or 'auto', got {args.noise_level!r}.") from None
        if not (nu > 0 and math.isfinite(nu)):
            raise ValueError(f"--noise-level must be finite and > 0 (nu appears as 1/nu^2 in the data term), got {args.noise_level}.")
        level_method = "given"
    D, channels = denoiser_for_channels(args.denoiser, y.shape[1], args.weights, args.device)
    if channels != y.shape[1]:
        y = io.load_image(args.observed, channels=channels)
    truth = None
    if args.truth:
        truth = io.load_image(args.truth, channels=channels).to(args.device)
        want = (h * args.factor, w * args.factor) if args.task == "super-resolution" else (h, w)
        if tuple(truth.shape[-2:]) != want:
            raise ValueError(f"--truth is {truth.shape[-2]}x{truth.shape[-1]} but the restored image will be {want[0]}x{want[1]}.")
    y = y.to(args.device)
    algorithm = args.algorithm or R.DEFAULT_ALGORITHM[args.task]
    options = {}
    if args.iters is not None:
        options["steps" if algorithm == "inrd-posterior" else "iters"] = args.iters
    if algorithm == "inrd-posterior":
        options.update(samples=args.samples, seed=args.seed)
    if args.sigma_denoiser is not None:
        if algorithm not in ("pnp-pgd", "gs-pnp"):
            raise ValueError("--sigma-denoiser is for pnp-pgd and gs-pnp (the other algorithms vary the level).")
        options["sigma_denoiser"] = args.sigma_denoiser
    out = Path(args.out)
    with fresh_run_dir(out) as tmp:
        t0 = time.perf_counter()
        res = R.restore(y, op, D, nu, algorithm, task=args.task, x_true=truth, **options)
        seconds = time.perf_counter() - t0
        io.save_image(tmp / "restored.png", res.x)
        io.save_image(tmp / "observed.png", y)
        log = {"task": args.task, "observed": args.observed, "observed_shape": list(y.shape), "noise_level": nu,
               "noise_level_method": level_method, "operator": repr(op), "kernel": spec, "factor": args.factor,
               "mask": args.mask, "normalize_kernel": args.normalize_kernel, "algorithm": algorithm,
               "denoiser": args.denoiser, "weights": args.weights, "channels": channels, "seed": args.seed,
               "device": args.device, "seconds": seconds, **res.to_dict(), "versions": io.versions()}
        if truth is not None:
            log.update(psnr_restored=float(psnr(res.x, truth)[0]), ssim_restored=ssim(res.x, truth))
        if res.samples is not None:
            io.save_grid(tmp / "samples.png", res.samples)
            scale = float(res.std.max()) or 1.0
            io.save_image(tmp / "std.png", res.std / scale)
            log.update(std_png_scale=scale, std_mean=float(res.std.mean()))
        title = f"{args.task}, {algorithm}, {args.denoiser}, nu={nu:.4g}: {res.verdict}"
        plot_diagnostics(tmp / "curves.png", {algorithm: res}, title)
        io.write_json(tmp / "restore.json", log)
    extra = f", PSNR {log['psnr_restored']:.2f} dB, SSIM {log['ssim_restored']:.4f}" if truth is not None else ""
    print(f"{args.task} with {algorithm} ({args.denoiser}, nu={nu:.4g} {'estimated' if level_method != 'given' else 'given'}) "
          f"in {seconds:.1f} s{extra} -> {out}/restored.png")
    return 0
