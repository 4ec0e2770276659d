"""The curves of a restoration run (PSNR and relative residual per iteration); matplotlib is imported when drawing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .. import io


def plot_diagnostics(path, runs: dict, title: str = "", reference: Optional[dict] = None) -> Path:
    """PSNR (if recorded) and relative residual per iteration of several runs ``{label: PnPResult}``,
    with horizontal reference PSNR lines ``{label: dB}`` (e.g. observation, Tikhonov); PNG, atomic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_psnr = any(r.psnr for r in runs.values())
    fig, axes = plt.subplots(1, 2 if has_psnr else 1, figsize=(10 if has_psnr else 5.5, 3.6), squeeze=False)
    ax_r = axes[0][-1]
    for label, r in runs.items():
        n = np.arange(1, len(r.residual) + 1)
        line = ax_r.semilogy(n, np.maximum(r.residual, 1e-12), label=f"{label} ({r.verdict})")[0]
        if has_psnr and r.psnr:
            axes[0][0].plot(n, r.psnr, color=line.get_color(), label=label)
    tol = next(iter(runs.values())).evidence.get("tol") if runs else None
    if tol:
        ax_r.axhline(tol, color="gray", ls=":", lw=1, label=f"tol {tol:g}")
    ax_r.set_xlabel("iteration n")
    ax_r.set_ylabel("||v_n - v_{n-1}|| / ||v_{n-1}||")
    ax_r.legend(fontsize=7)
    if has_psnr:
        ax = axes[0][0]
        for (label, value), ls in zip((reference or {}).items(), ("--", ":", "-.")):
            ax.axhline(value, color="k", ls=ls, lw=1, label=f"{label} {value:.2f} dB")
        ax.set_xlabel("iteration n")
        ax.set_ylabel("PSNR (dB)")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=110)
    return Path(path)
