"""A photograph blurred as a whole, then cropped: the periodic blur model against the boundary models of
:class:`inrd.restoration.blur.Blur`, all restored by the same HQS (FFDNet, the deblurring options of
``inrd restore``).

For each image a ``size + kernel - 1`` square is cut from the photograph (not from its edge), blurred
with the kernel keeping only the ``size`` part that the kernel computes from real pixels (the camera's
view of a larger scene) and noised with ``nu``. The ground truth is the central ``size`` square.
Restored with :func:`inrd.restoration.restore` (``algorithm="hqs"``), with as ``physics``:

* ``periodic``: :class:`~inrd.restoration.physics.PeriodicBlur`, FFDNet on circularly padded input
  (restore()'s default for a periodic operator: what ``inrd restore`` does today);
* ``valid``, ``reflect``, ``replicate``: :class:`~inrd.restoration.blur.Blur` (no padding); the
  ``valid`` estimate covers the margin too and is cropped back to the field of view;
* ``exact-periodic``, a reference: the ground truth blurred *periodically* (same kernel, same noise)
  and restored with the periodic model, which is then exact. Its border band is below its interior
  by what the image's content alone costs there: the gap a boundary model cannot remove.

PSNR (estimates clamped to [0, 1], as saved images are) of the whole crop, of the ``band``-pixel
border band and of the interior, the seconds of each restoration and the CG iterations of the data
steps. Results: docs/real_photographs.md.

    python benchmarks/real_blur.py                       # astronaut, coffee, chelsea; 256 px; blur 1.6; nu 0.01
    python benchmarks/real_blur.py --std 3.0 --images coffee --size 128
    python benchmarks/real_blur.py --factor 2 --std 1.0      # x2 super-resolution (the CLI's kernel for x2)
"""

from __future__ import annotations

import argparse
import time

import torch

from inrd.denoisers import load
from inrd.io import load_image
from inrd.restoration import Downsampling, PeriodicBlur, gaussian_kernel, restore
from inrd.restoration.blur import Blur, BlurDownsampling

MODELS = ("periodic", "valid", "reflect", "replicate")


def scene(name: str, size: int, margin: tuple[int, int, int, int]) -> torch.Tensor:
    """A float64 (1, 3, size + top + bottom, size + left + right) region from the centre of a photograph."""
    img = load_image(name, channels=3).double()
    top, bottom, left, right = margin
    H, W = img.shape[-2:]
    i, j = (H - size) // 2, (W - size) // 2
    return img[..., i - top:i + size + bottom, j - left:j + size + right]


def band_psnr(x: torch.Tensor, truth: torch.Tensor, band: int) -> tuple[float, float, float]:
    """PSNR of the whole image, of its ``band``-pixel border and of the interior, dB."""
    err = (x.clamp(0, 1) - truth).double().pow(2).mean(dim=1)[0]  # (H, W) squared error, channel-averaged
    inner = torch.zeros_like(err, dtype=torch.bool)
    inner[band:-band, band:-band] = True

    def db(mse):
        return float(10 * torch.log10(1 / mse))

    return db(err.mean()), db(err[~inner].mean()), db(err[inner].mean())


def operator(k, factor: int, model: str, tol: float):
    """The forward operator of ``model``: blur (factor 1) or blur + downsampling by ``factor``."""
    if factor == 1:
        return PeriodicBlur(k) if model == "periodic" else Blur(k, model, tol=tol)
    return Downsampling(k, factor) if model == "periodic" else BlurDownsampling(k, factor, model, tol=tol)


def run(name, size, std, nu, band, denoiser, tol, factor=1, seed=0):
    k = gaussian_kernel(std)
    task = "deblur" if factor == 1 else "super-resolution"
    valid = operator(k, factor, "valid", tol)
    big = scene(name, size, valid.margin)
    truth = valid.crop(big)
    y = valid.A(big)
    y = (y + nu * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)).float()
    seen = y if factor == 1 else valid.crop(valid.init(y))  # super-resolution: bicubic upsampling
    rows = [("observed", *band_psnr(seen, truth, band), 0.0, "" if factor == 1 else "(bicubic)")]
    # reference: the crop itself blurred periodically, where the periodic model is exact; its band
    # is as far below its interior as the content of this image makes it, whatever the boundary
    exact = operator(k, factor, "periodic", tol)
    clean = exact.A(truth)
    w = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    t0 = time.perf_counter()
    ref = restore((clean + nu * w).float(), exact, denoiser, nu, "hqs", task=task).x
    rows.append(("exact-periodic", *band_psnr(ref, truth, band), time.perf_counter() - t0, "(periodic data)"))
    for model in MODELS:
        physics = operator(k, factor, model, tol)
        iters: list = []
        if model != "periodic":  # count the CG iterations of every data step
            prox = physics.prox_l2

            def counted(z, yy, gamma, prox=prox, physics=physics, iters=iters):
                out = prox(z, yy, gamma)
                iters.append(physics.cg_info["iters"])
                return out

            physics.prox_l2 = counted
        t0 = time.perf_counter()
        res = restore(y, physics, denoiser, nu, "hqs", task=task)
        seconds = time.perf_counter() - t0
        x = physics.crop(res.x) if model == "valid" else res.x
        cg = f"CG {sum(iters)} ({'/'.join(map(str, iters))})" if iters else ""
        rows.append((model, *band_psnr(x, truth, band), seconds, cg))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", nargs="+", default=["astronaut", "coffee", "chelsea"])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--std", type=float, default=1.6, help="Gaussian blur std, pixels")
    p.add_argument("--nu", type=float, default=0.01, help="noise std, [0, 1] units")
    p.add_argument("--band", type=int, default=16, help="width of the border band, pixels")
    p.add_argument("--factor", type=int, default=1, help="1: deblurring (default); 2, 3, 4: super-resolution "
                   "(--size is then the high-resolution size)")
    p.add_argument("--tol", type=float, default=None, help="CG relative tolerance (default: Blur's)")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    denoiser = load("ffdnet", channels=3)
    from inrd.restoration.blur import CG_TOL

    tol = a.tol or CG_TOL
    what = "deblurring" if a.factor == 1 else f"x{a.factor} super-resolution"
    print(f"{what}, Gaussian blur {a.std:g}, nu = {a.nu:g}, {a.size} px, band {a.band} px, HQS (FFDNet), CG tol {tol:g}")
    print(f"{'image':<10} {'model':<14} {'whole':>7} {'band':>7} {'inner':>7} {'seconds':>8}  data steps")
    mean: dict = {}
    for name in a.images:
        for model, whole, edge, inner, sec, cg in run(name, a.size, a.std, a.nu, a.band, denoiser, tol, a.factor):
            print(f"{name:<10} {model:<14} {whole:7.2f} {edge:7.2f} {inner:7.2f} {sec:8.1f}  {cg}", flush=True)
            mean.setdefault(model, []).append((whole, edge, inner, sec))
    for model, v in mean.items():
        m = [sum(c) / len(c) for c in zip(*v)]
        print(f"{'mean':<10} {model:<14} {m[0]:7.2f} {m[1]:7.2f} {m[2]:7.2f} {m[3]:8.1f}")


if __name__ == "__main__":
    main()
