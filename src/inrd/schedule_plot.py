"""The schedules of the paper's Fig. 1 and their plot (log sigma_t against t / T), used by ``inrd schedules``
and ``inrd reproduce fig1``.

Shown: the DDPM training grid (T = 1000) with the other schedules of :mod:`inrd.schedules` on the same
range [sigma_1, sigma_T] = [0.005, 78.7], and the low-noise schedules used with off-the-shelf
denoisers in Fig. 3 (range [0.002, 0.2], the noise range DRUNet/FFDNet were trained on).
"""

from __future__ import annotations

from . import io
from . import schedules as S

__all__ = ["schedule_table", "plot_schedules"]


def schedule_table() -> dict:
    """Named schedules of the figure: name -> sigmas (float64 tensors, sigma_0 = 0)."""
    lo, hi = S.ddpm()[1].item(), S.ddpm()[-1].item()
    return {
        "ddpm (T=1000)": S.ddpm(),
        "cosine (T=1000)": S.cosine(),
        "karras rho=7 (T=1000)": S.karras(1000, lo, hi),
        "geometric (T=1000)": S.geometric(1000, lo, hi),
        "super-geometric p=2 (T=1000)": S.super_geometric(1000, lo, hi),
        "affine (T=1000)": S.affine(1000, lo, hi),
        "super-geometric [0.002, 0.2] (T=400)": S.super_geometric(400, 0.002, 0.2),
        "affine [0.002, 0.2] (T=400)": S.affine(400, 0.002, 0.2),
    }


def plot_schedules(table: dict, path) -> None:
    """Write the PNG of ``table`` (name -> sigmas) at ``path``, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, s in table.items():
        T = s.numel() - 1
        t = [k / T for k in range(1, T + 1)]
        ax.semilogy(t, s[1:].tolist(), label=name, ls="--" if "0.002" in name else "-")
    ax.axhline(1.0, color="gray", lw=0.5)
    ax.set_xlabel("t / T")
    ax.set_ylabel("sigma_t  ([0, 1] image units)")
    ax.set_title("Noise schedules (cf. paper Fig. 1)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=110)
