"""``inrd deblur``: plug-and-play deblurring (PnP-PGD, paper Sec. 3.3) of a simulated observation,
with per-iteration PSNR / residual diagnostics and a stability verdict (argparse -> DeblurOptions ->
prepare_deblur -> run_deblur -> print)."""

from __future__ import annotations

from .restore import FFDNET_NOTE


def register(sub) -> None:
    p = sub.add_parser(
        "deblur",
        help="PnP-PGD deblurring of a simulated blurred, noisy image, with stability diagnostics",
        description="Simulate y = k * x + nu w (periodic blur), restore it with PnP-PGD "
        "v <- D_sigma(v - tau grad f(v)), f(v) = ||Av - y||^2 / (2 nu^2) (or the convergent GS-PnP), and write "
        "observed.png, restored.png, ground_truth.png, curves.png (PSNR and residual per iteration) and deblur.json. "
        f"The default denoiser, {FFDNET_NOTE}.",
    )
    p.add_argument("--image", default="astronaut", help="scikit-image sample name or image file (default: astronaut)")
    p.add_argument("--kernel", default="gaussian:1.6", help="gaussian:STD[:SIZE] or a .npy / .txt kernel file (default: gaussian:1.6)")
    p.add_argument("--normalize-kernel", action="store_true", help="divide a kernel that does not sum to 1 by its sum "
                   "(without it such a kernel is an error)")
    p.add_argument("--noise-level", type=float, default=0.01, metavar="NU",
                   help="std nu of the Gaussian observation noise, [0, 1] units (default: 0.01)")
    p.add_argument("--denoiser", default="ffdnet", help=f"registry name (default: ffdnet, the offline pretrained network; {FFDNET_NOTE})")
    p.add_argument("--weights", help="checkpoint for denoisers that need one (drunet, diffunet)")
    p.add_argument("--sigma-denoiser", type=float, help="sigma given to D (default: 2 nu for pnp-pgd, 5 nu "
                   "for gs-pnp, or the smallest trained level of a diffusion network, ~0.005)")
    p.add_argument("--iters", type=int, default=100, help="iterations (default: 100)")
    p.add_argument("--stepsize", type=float, help="tau in units of nu^2 (f carries 1/nu^2); default nu^2 / ||A||^2 = 1/L")
    p.add_argument("--algorithm", default="pnp-pgd", metavar="{pnp-pgd,gs-pnp}",
                   help="pnp-pgd: the paper's raw scheme; gs-pnp: convergent proximal-gradient variant (Hurault et al. 2022)")
    p.add_argument("--pad", type=int, default=16, help="circular padding (pixels) of the denoiser's input, matching "
                   "the periodic blur; 0 = the raw scheme, with wrap-around artifacts at the border (default: 16)")
    p.add_argument("--size", type=int, default=256, help="centre-crop and resize the image to SIZE x SIZE (default: 256; 0 keeps it)")
    p.add_argument("--seed", type=int, default=0, help="seed of the observation noise")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="deblur", help="output folder, new or empty; a folder holding another run is refused (default: ./deblur)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import io
    from ..restoration.plan import DeblurOptions
    from ..restoration.workflow import prepare_deblur, run_deblur

    io.check_output(args.out)
    opts = DeblurOptions(
        image=args.image, kernel=args.kernel, normalize_kernel=args.normalize_kernel, noise_level=args.noise_level,
        denoiser=args.denoiser, weights=args.weights, sigma_denoiser=args.sigma_denoiser, iters=args.iters,
        stepsize=args.stepsize, algorithm=args.algorithm, pad=args.pad, size=args.size, seed=args.seed, device=args.device,
    )
    log = run_deblur(prepare_deblur(opts), args.out)
    print(
        f"{log['algorithm']} with {log['denoiser']} (sigma={log['sigma_denoiser']:.4g}), {log['params']['iters_run']} iterations "
        f"in {log['seconds']:.1f} s: PSNR {log['psnr_observed']:.2f} dB observed -> {log['psnr_restored']:.2f} dB restored "
        f"(Tikhonov: {log['psnr_tikhonov_discrepancy']:.2f} dB with the discrepancy principle, {log['psnr_tikhonov_oracle']:.2f} dB "
        f"with the oracle weight)"
    )
    print(f"verdict: {log['verdict']} ({log['evidence'].get('reason', '')}) -> {args.out}/restored.png")
    return 0
