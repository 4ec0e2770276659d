"""``inrd reproduce analysis``: the closed-form comparison of schedules and relaxations of
:mod:`inrd.gaussian.analysis` for the power-law field and for photograph patches, written as
``analysis.png`` and ``analysis.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .. import io
from ..gaussian import Spectrum
from ..gaussian.analysis import RHOS, SCHEDULES, SEARCH_STEPS, STEPS, compute, make_spectrum, plot

__all__ = ["run"]


def run(
    out_dir="figures",
    spectra: Sequence = ("power-law", "patches"),
    name: str = "analysis",
    steps: Sequence[int] = STEPS,
    schedules: Sequence[str] = SCHEDULES,
    rhos: Sequence[str] = RHOS,
    search_steps: Sequence[int] = SEARCH_STEPS,
    search_rhos: Sequence[str] = RHOS,
    search_schedule: str = "ddpm",
) -> dict:
    """Compute the analysis (:func:`compute`, same options) for each of ``spectra`` (:class:`Spectrum`
    objects or kinds for :func:`make_spectrum`), write ``<out_dir>/<name>.png`` and
    ``<out_dir>/<name>.json`` (atomically) and return ``{"results": [...], "png": ..., "json": ...}``.
    Deterministic: no seed, no device (float64 numpy on the CPU)."""
    out = io.ensure_writable_dir(out_dir)
    if isinstance(spectra, (str, Spectrum)):
        spectra = [spectra]
    kw = dict(steps=steps, schedules=schedules, rhos=rhos, search_steps=search_steps, search_rhos=search_rhos,
              search_schedule=search_schedule)
    results = [compute(sp if isinstance(sp, Spectrum) else make_spectrum(sp), **kw) for sp in spectra]
    png, js = Path(out) / f"{name}.png", Path(out) / f"{name}.json"
    plot(results, png)
    io.write_json(js, {"analysis": "closed-form W2 of INRD on Gaussian data", "results": results, "versions": io.versions()})
    return {"results": results, "png": str(png), "json": str(js)}
