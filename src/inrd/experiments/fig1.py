"""Figure 1 of the paper: noise schedules, log sigma_t against t.

Shown: the DDPM training grid (T = 1000) with the other schedules of :mod:`inrd.schedules` on the same
range [sigma_1, sigma_T] = [0.005, 78.7], and the low-noise schedules used with off-the-shelf
denoisers in Fig. 3 (range [0.002, 0.2], the noise range DRUNet/FFDNet were trained on).
"""

from __future__ import annotations

from pathlib import Path

from .. import io
from ..schedule_plot import plot_schedules as plot
from ..schedule_plot import schedule_table

__all__ = ["run", "schedule_table", "plot"]


def run(out_dir="figures") -> dict:
    """Write ``fig1.png`` (log sigma_t against t / T) and ``fig1.json`` (T, sigma_1, sigma_T of each schedule)."""
    out = io.ensure_writable_dir(out_dir)
    table = schedule_table()
    plot(table, Path(out) / "fig1.png")
    rows = {n: {"T": s.numel() - 1, "sigma_1": s[1].item(), "sigma_T": s[-1].item()} for n, s in table.items()}
    io.write_json(Path(out) / "fig1.json", {"figure": "fig1", "schedules": rows, "versions": io.versions()})
    return {"png": str(Path(out) / "fig1.png"), "schedules": rows}
