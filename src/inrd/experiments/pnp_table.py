"""Does raw PnP-PGD with a light pretrained denoiser beat a linear deconvolution?

On full-resolution crops of scikit-image photographs, periodic Gaussian blur, nu = 0.01, the same
seeded observation for every method, and PSNR against the truth:

* ``tikhonov_oracle``: the best gradient-Tikhonov (Wiener with a 1/|w|^2 spectrum) over 49 weights
  chosen *with the truth* (an upper bound for that linear filter);
* ``tikhonov_discrepancy``: the same filter, its weight from Morozov's discrepancy principle (truth-free,
  it knows nu as PnP does);
* ``pnp_pgd``: the paper's raw scheme with this library's defaults (sigma = 2 nu, tau = 1/L);
* ``pnp_pgd_tuned``: sigma = 1.5 nu, tau = 1.9/L (the best pair of a sweep over sigma in {1, 1.5, 2,
  3} nu and tau in {1, 1.9}/L on three 128x128 crops; 1.9/L keeps the gradient step non-expansive);
* ``gs_pnp``: the convergent alternative (Hurault et al. 2022) with the same network, sigma = 5 nu.

All PnP runs use the denoiser on circularly padded input (:class:`inrd.restoration.CircularPad`, 16
pixels). ``inrd reproduce pnp-table`` writes ``pnp_table.json`` (every number and verdict),
``pnp_table.md`` (the table) and ``pnp_table.png`` (PSNR gain over the oracle Tikhonov per image).
"""

from __future__ import annotations

import time

import numpy as np

from .. import io
from .. import restoration as R
from ..denoisers import load
from ..metrics import psnr
from .common import out_paths

#: scikit-image photographs (and micrographs) large enough for a 128x128 crop at full resolution
IMAGES = ("camera", "astronaut", "coffee", "chelsea", "moon", "immunohistochemistry", "text", "page",
          "rocket", "coins", "retina", "brick", "grass", "gravel")
METHODS = ("tikhonov_oracle", "tikhonov_discrepancy", "pnp_pgd", "pnp_pgd_tuned", "gs_pnp")


def _crop(spec, size):
    x = io.load_image(spec)
    h, w = x.shape[-2:]
    if min(h, w) < size:
        x = io.load_image(spec, size=size)  # too small for a full-resolution crop: resize
        h, w = x.shape[-2:]
    i, j = (h - size) // 2, (w - size) // 2
    return x[..., i : i + size, j : j + size].contiguous()


def run(out_dir="figures", images=None, size=128, iters=100, noise_level=0.01, kernel="gaussian:1.6", pad=16, seed=0,
        device="cpu", progress=False) -> dict:
    """Run the comparison above with the pretrained FFDNet; about 17 minutes (1010 s measured) on 2 shared CPU cores for the
    14 default images (three PnP runs of ``iters`` iterations, GS-PnP with ``iters // 3``).
    ``noise_level`` is the std nu of the Gaussian observation noise ([0, 1] units)."""
    png, js = out_paths(out_dir, "pnp_table")
    images = tuple(images) if images else IMAGES
    op = R.PeriodicBlur(R.load_kernel(kernel))
    nets = {}
    rows = {}
    for idx, spec in enumerate(images):
        x = _crop(spec, size).to(device)
        c = x.shape[1]
        if c not in nets:
            nets[c] = R.CircularPad(load("ffdnet", channels=c, device=device), pad)
        D = nets[c]
        y = R.observe(x, op, noise_level, seed=seed + idx)
        _, lam_o, p_o = R.tikhonov_oracle(y, op, x)
        x_d, lam_d = R.tikhonov_discrepancy(y, op, noise_level)
        row = {"channels": c, "observed": float(psnr(y, x)[0]),
               "tikhonov_oracle": {"psnr": p_o, "lam": lam_o},
               "tikhonov_discrepancy": {"psnr": float(psnr(x_d, x)[0]), "lam": lam_d[0]}}
        for name, kw in (("pnp_pgd", dict(sigma_denoiser=2 * noise_level)),
                         ("pnp_pgd_tuned", dict(sigma_denoiser=1.5 * noise_level, stepsize=1.9 * noise_level**2))):
            t0 = time.perf_counter()
            res = R.pnp_pgd(y, op, D, iters=iters, x_true=x, noise_level=noise_level, **kw)
            row[name] = {"psnr": res.psnr[-1], "verdict": res.verdict, "psnr_peak": res.evidence["psnr_peak"],
                         "final_residual": res.evidence["final_residual"], "seconds": time.perf_counter() - t0, **kw}
        res = R.gs_pnp(y, op, D, 5 * noise_level, iters=max(1, iters // 3), x_true=x, noise_level=noise_level)
        row["gs_pnp"] = {"psnr": res.psnr[-1], "verdict": res.verdict, "sigma_denoiser": 5 * noise_level,
                         "backtracking_failures": res.params["backtracking_failures"]}
        rows[str(spec)] = row
        if progress:
            print(f"pnp-table {spec}: " + ", ".join(f"{m} {row[m]['psnr']:.2f}" for m in METHODS), flush=True)

    def gain(m):  # dB over the oracle Tikhonov, per image
        return [r[m]["psnr"] - r["tikhonov_oracle"]["psnr"] for r in rows.values()]

    summary = {m: {"mean_gain_over_tikhonov_oracle": float(np.mean(gain(m))),
                   "wins_over_tikhonov_oracle": int(sum(g > 0 for g in gain(m))),
                   "wins_over_tikhonov_discrepancy": int(sum(r[m]["psnr"] > r["tikhonov_discrepancy"]["psnr"]
                                                             for r in rows.values()))}
               for m in METHODS[1:]}
    _plot(png, rows, summary, f"FFDNet, {size}x{size} crops, {kernel}, nu={noise_level}, {iters} it., pad={pad}")
    md = ["| image | observed | Tikhonov oracle | Tikhonov discrepancy | PnP-PGD 2nu, 1/L | PnP-PGD 1.5nu, 1.9/L | GS-PnP 5nu |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        cells = [f"{r['observed']:.2f}", f"{r['tikhonov_oracle']['psnr']:.2f}", f"{r['tikhonov_discrepancy']['psnr']:.2f}"]
        cells += [f"{r[m]['psnr']:.2f} ({r[m]['verdict']})" for m in ("pnp_pgd", "pnp_pgd_tuned", "gs_pnp")]
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    md.append("| mean gain over the oracle (dB) | | 0 | " + " | ".join(
        f"{summary[m]['mean_gain_over_tikhonov_oracle']:+.2f}" for m in METHODS[1:]) + " |")
    io.write_text(png.with_name("pnp_table.md"), "\n".join(md) + "\n")
    result = {"figure": "pnp-table", "denoiser": "ffdnet", "stand_in": False, "png": str(png), "images": list(rows),
              "size": size, "iters": iters, "noise_level": noise_level, "kernel": kernel, "pad": pad, "seed": seed,
              "results": rows, "summary": summary, "versions": io.versions()}
    io.write_json(js, result)
    return result


def _plot(path, rows, summary, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(names) + 2), 3.8))
    width = 0.8 / (len(METHODS) - 1)
    for k, m in enumerate(METHODS[1:]):
        g = [rows[n][m]["psnr"] - rows[n]["tikhonov_oracle"]["psnr"] for n in names]
        ax.bar(np.arange(len(names)) + (k - 1.5) * width, g, width,
               label=f"{m} (mean {summary[m]['mean_gain_over_tikhonov_oracle']:+.2f} dB)")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("PSNR - Tikhonov oracle (dB)")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=110)
