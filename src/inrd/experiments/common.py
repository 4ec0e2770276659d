"""Helpers shared by the figure scripts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch

from .. import io


def save_figure_grid(path, rows: list[list[torch.Tensor]], row_labels, col_labels, title: str) -> None:
    """A labelled matplotlib grid of images: rows[i][j] is a (B, C, H, W) batch shown as a tile."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nr, nc = len(rows), len(rows[0])
    fig, axes = plt.subplots(nr, nc, figsize=(2.2 * nc, 2.3 * nr + 0.5), squeeze=False, layout="constrained")
    for i, row in enumerate(rows):
        for j, batch in enumerate(row):
            img = io.grid(batch.detach().float().cpu().clamp(0, 1), pad=1)
            a = img.permute(1, 2, 0).numpy()
            ax = axes[i][j]
            ax.imshow(a[..., 0] if a.shape[-1] == 1 else a, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col_labels[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=9)
    # wrapped to the figure's width (about 5 points per character at 9 pt), so a long title is never cut off
    fig.suptitle(textwrap.fill(title, width=max(30, int(2.2 * nc * 72 / 5))), fontsize=9)
    io.save_figure(fig, path, dpi=110)


def out_paths(out_dir, name: str) -> tuple[Path, Path]:
    """``(out_dir/name.png, out_dir/name.json)``, after checking that ``out_dir`` can be written."""
    out = io.ensure_writable_dir(out_dir)
    return out / f"{name}.png", out / f"{name}.json"
