"""Noise schedules and relaxations compared in closed form on Gaussian data (:mod:`inrd.gaussian`).

For each schedule (DDPM pruned from its 1000 training levels; affine, geometric, super-geometric and
Karras built with n levels on the DDPM range [sigma_1, sigma_T] = [0.005, 78.7], [0, 1] units), each
relaxation ``rho`` (canonical = DDPM, paper eq. 21; IND, ``rho_t = 1``; DDIM-like) and each number of
steps n, the criterion is the exact W2 distance between the law of INRD's output V_0, driven by the
exact MMSE denoiser (paper eq. 16), and the data law; reported relative to the data's total std
(``W2 / sqrt(tr C)``: 0 = exact, 1 = as far as outputting the mean).

Every run starts from the paper's ``V_T = 0.5`` with ``gamma_T = sigma_T`` (``init_std = start_noise = 0``),
so ``U_T = V_T + gamma_T Z_T ~ N(0.5, sigma_T^2 I)`` for all three relaxations; DDIM-like
(``rho_t = 1 - sigma_{t-1} / sigma_t``, ``gamma_t = 0`` for t < T) is then deterministic after that
first noise, i.e. DDIM started from pure noise.

Then :func:`inrd.gaussian.best_subgrid` searches the best n-level subgrid of the 1000 DDPM levels and
compares it with uniform pruning (:func:`inrd.schedules.prune`).

``inrd analyze`` prints the tables for one spectrum; ``inrd reproduce analysis``
(:func:`inrd.experiments.analysis.run`) writes them for the power-law and patch spectra.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import io, memory
from .. import schedules as S
from .spectrum import Spectrum
from .subgrid import best_subgrid

__all__ = ["STEPS", "SCHEDULES", "RHOS", "SEARCH_STEPS", "make_spectrum", "spectrum_bytes", "subgrid_bytes", "compute", "format_report", "plot"]

STEPS = (5, 10, 20, 50, 100, 250, 1000)
SCHEDULES = ("ddpm", "affine", "geometric", "super-geometric", "karras")
RHOS = ("canonical", "ind", "ddim")
SEARCH_STEPS = (10, 20, 50)
_LABEL = {"canonical": "canonical (DDPM)", "ind": "IND", "ddim": "DDIM-like"}


# Peak memory, measured with ru_maxrss on this code (float64 numpy): building and compressing a power-law
# spectrum took 219, 193 and 182 bytes per pixel at sizes 512, 1024 and 2048; the patch covariance held the
# patch rows twice and their centred copy twice (4 N d floats; 1.68 GB measured for 8 N d = 1.63 GB at patch
# 32, stride 4), then the covariance, its symmetrised and LAPACK copies and the eigenvectors (4 d^2 floats);
# the subgrid search held about 12 (candidates x coordinates) arrays (18.5 KB per coordinate measured at n = 10,
# 5.3 KB at n = 50). The estimates below stay under every measurement: a refusal is never wrong.
_POWER_LAW_BYTES_PER_PIXEL = 160
_SUBGRID_ARRAYS = 10


def _patch_count(images: Sequence[str], patch: int, stride: int) -> int:
    """Number of ``patch`` x ``patch`` patches every ``stride`` pixels of the photographs (their shapes only)."""
    from ..io import load_image

    count = 0
    for name in images:
        H, W = load_image(name, channels=1).shape[-2:]
        count += max(0, (H - patch) // stride + 1) * max(0, (W - patch) // stride + 1)
    return count


def spectrum_bytes(kind: str, size=64, patch: int = 8, stride: int = 4, images: Sequence[str] = ()) -> int:
    """Peak bytes :func:`make_spectrum` needs (a lower bound, see the measurements above)."""
    if kind == "power-law":
        H, W = (size, size) if np.ndim(size) == 0 else tuple(size)
        return _POWER_LAW_BYTES_PER_PIXEL * int(H) * int(W)
    d, n = int(patch) ** 2, _patch_count(images, int(patch), int(stride))
    return 8 * max(4 * n * d, 2 * n * d + 4 * d * d)


def subgrid_bytes(spectrum: Spectrum, fine_levels: int, steps: int) -> int:
    """Peak bytes of :func:`inrd.gaussian.best_subgrid` searching ``steps`` of ``fine_levels`` levels: the
    candidate positions of one level (the gap between its neighbours) scored at once for every coordinate."""
    idx = S.prune_indices(fine_levels, int(steps))
    gap = int((idx[2:] - idx[:-2]).max()) - 1 if idx.numel() > 2 else fine_levels
    return 8 * int(spectrum.eigenvalues.size) * (_SUBGRID_ARRAYS * gap + 2 * int(steps))


def make_spectrum(
    kind: str = "power-law", size: int = 64, alpha: float = 2.0, std: float = 0.25, mean: float = 0.5,
    patch: int = 8, stride: int = 4, images: Sequence[str] = ("camera", "astronaut", "coffee", "chelsea"),
) -> Spectrum:
    """``"power-law"``: stationary ``1/f^alpha`` field, ``size`` x ``size``, per-pixel std ``std``;
    ``"patches"``: covariance of ``patch`` x ``patch`` grey patches of scikit-image photographs.
    Compressed (equal eigenvalues merged): W2 is unchanged, the arithmetic much smaller. A spectrum that
    would need more memory than is available is refused first, in one line (:func:`inrd.memory.require`)."""
    key = kind.lower().replace("_", "-")
    if key in ("power-law", "powerlaw"):
        if np.ndim(size) == 0 and (int(size) != size or size < 1):
            raise ValueError(f"--size must be a positive integer, got {size!r}.")
        memory.require(spectrum_bytes("power-law", size), f"a power-law spectrum of size {size}", "lower --size")
        return Spectrum.power_law(size, alpha=alpha, std=std, mean=mean).compress()
    if key in ("patches", "patch"):
        if int(patch) != patch or patch < 1 or int(stride) != stride or stride < 1:
            raise ValueError(f"--patch and --stride must be positive integers, got {patch!r} and {stride!r}.")
        images = [images] if isinstance(images, str) else list(images)
        memory.require(spectrum_bytes("patches", patch=patch, stride=stride, images=images),
                       f"the covariance of {patch}x{patch} patches (stride {stride})", "lower --patch or raise --stride")
        return Spectrum.patches(tuple(images), patch=patch, stride=stride).compress()
    raise ValueError(f"unknown spectrum {kind!r}; use 'power-law' or 'patches'.")


def _schedule(name: str, steps: int):
    """DDPM/cosine: the 1000 training levels pruned to ``steps``; others: ``steps`` levels on the DDPM range."""
    return S.make(name, steps)


def _check_list(values, allowed, what):
    for v in values:
        if v not in allowed:
            raise ValueError(f"unknown {what} {v!r}; choose among {', '.join(allowed)}.")


def compute(
    spectrum: Spectrum,
    steps: Sequence[int] = STEPS,
    schedules: Sequence[str] = SCHEDULES,
    rhos: Sequence[str] = RHOS,
    search_steps: Sequence[int] = SEARCH_STEPS,
    search_rhos: Sequence[str] = RHOS,
    search_schedule: str = "ddpm",
) -> dict:
    """All numbers of the analysis, as a JSON-ready dict (see the module docstring): W2 for every
    relaxation in ``rhos``, schedule and number of steps, the ranking per number of steps, and the best
    ``search_steps``-level subgrid of the ``search_schedule`` grid (1000 levels) for each of ``search_rhos``."""
    schedules = [S.schedule_name(name) or name for name in schedules]  # "super_geometric" is "super-geometric"
    search_schedule = S.schedule_name(search_schedule) or search_schedule
    _check_list([*schedules, search_schedule], tuple(S.SCHEDULES), "schedule")
    _check_list(rhos, RHOS, "rho")
    _check_list(search_rhos, RHOS, "rho")
    for n in list(steps) + list(search_steps):
        if int(n) != n or not 1 <= n <= 1000:
            raise ValueError(f"steps must be integers in 1..1000 (the DDPM grid has 1000 levels), got {n!r}.")
    fine = S.make(search_schedule) if search_schedule in ("ddpm", "cosine") else S.make(search_schedule, 1000)
    if search_rhos:
        for n in search_steps:
            memory.require(subgrid_bytes(spectrum, fine.numel() - 1, n),
                           f"the best {n}-level subgrid search on {spectrum.eigenvalues.size} distinct coordinates",
                           "lower --size or --patch, or search more levels with --search-steps ('none' skips it)")
    t0 = time.perf_counter()
    table = {}
    for rho in rhos:
        table[rho] = {}
        for name in schedules:
            rows = []
            for n in steps:
                sig = _schedule(name, int(n))
                r = spectrum.w2(sig, rho)
                rows.append({"steps": int(n), "sigma_1": float(sig[1]), "sigma_T": float(sig[-1]), **r.as_dict()})
            table[rho][name] = rows
    winners = []  # who wins at each n
    for i, n in enumerate(steps):
        ranked = sorted(
            ((table[rho][name][i]["relative"], name, rho) for rho in rhos for name in schedules), key=lambda x: x[0]
        )
        winners.append({"steps": int(n), "ranking": [{"schedule": s, "rho": r, "relative": v} for v, s, r in ranked]})
    subgrids = [_subgrid(spectrum, fine, search_schedule, int(n), rho) for rho in search_rhos for n in search_steps]
    return {
        "criterion": "W2(law of V_0, data law) for Gaussian data and the exact MMSE denoiser; relative = W2 / sqrt(trace C), "
        "rms = W2 / sqrt(d) in [0, 1] units",
        "start": {"init": 0.5, "init_std": 0.0, "start_noise": 0.0, "note": "gamma_T = sigma_T for every relaxation"},
        "spectrum": {"name": spectrum.name, "d": spectrum.d, "distinct_eigenvalues": int(spectrum.eigenvalues.size),
                     "total_std": spectrum.total_std, "rms_std": spectrum.total_std / np.sqrt(spectrum.d),
                     "eigenvalue_min": float(spectrum.eigenvalues.min()), "eigenvalue_max": float(spectrum.eigenvalues.max())},
        "steps": [int(n) for n in steps],
        "schedules": list(schedules),
        "rhos": list(rhos),
        "table": table,
        "winners": winners,
        "subgrid": subgrids,
        "seconds": time.perf_counter() - t0,
    }


def _subgrid(spectrum: Spectrum, fine, fine_name: str, n: int, rho: str) -> dict:
    """The best ``n``-level subgrid of the ``fine`` grid against uniform pruning, as a JSON-ready dict."""
    t1 = time.perf_counter()
    res = best_subgrid(spectrum, fine, n, rho)
    return {
        "rho": rho, "steps": n, "fine_schedule": fine_name, "fine_levels": fine.numel() - 1,
        "uniform": res.uniform.as_dict(), "best": res.w2.as_dict(),
        "improvement": 1.0 - res.w2.w2 / res.uniform.w2,
        "indices": res.indices.tolist(), "sigmas": res.sigmas.tolist(),
        "uniform_indices": S.prune_indices(fine.numel() - 1, n).tolist(),
        "sweeps": res.sweeps, "moves": res.moves, "seconds": time.perf_counter() - t1,
    }


def format_report(result: dict) -> str:
    """The tables as text: relative W2 in % for every (relaxation, schedule) and n, winners, subgrids."""
    steps = result["steps"]
    sp = result["spectrum"]
    lines = [
        f"spectrum: {sp['name']} (d = {sp['d']}, per-pixel std {sp['rms_std']:.4g})",
        "relative W2 = W2(law of V_0, data law) / sqrt(trace C), in %  (exact MMSE denoiser, V_T = 0.5)",
        "",
        f"{'relaxation':18s} {'schedule':16s} " + " ".join(f"{n:>8d}" for n in steps),
    ]
    for rho, rows in result["table"].items():
        for name, cells in rows.items():
            lines.append(f"{_LABEL[rho]:18s} {name:16s} " + " ".join(f"{100 * c['relative']:8.3f}" for c in cells))
    lines += ["", "best (schedule, relaxation) per number of steps:"]
    for w in result["winners"]:
        top = w["ranking"][:3]
        lines.append(f"  n = {w['steps']:4d}: " + ",  ".join(f"{t['schedule']}/{_LABEL[t['rho']]} {100 * t['relative']:.3f}%" for t in top))
    if result["subgrid"]:
        lines += ["", f"best n-level subgrid of the {result['subgrid'][0]['fine_schedule']} grid vs uniform pruning (relative W2, %):"]
        for g in result["subgrid"]:
            lines.append(
                f"  {_LABEL[g['rho']]:18s} n = {g['steps']:3d}: uniform {100 * g['uniform']['relative']:7.3f}  "
                f"best {100 * g['best']['relative']:7.3f}  (W2 -{100 * g['improvement']:.1f}%, {g['sweeps']} sweeps)"
            )
    return "\n".join(lines)


def plot(results, path) -> Path:
    """W2 against n: one row per result (spectrum), one panel per relaxation, one line per schedule; best
    subgrids as stars. ``results`` is a dict from :func:`compute` or a list of them. Atomic write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [results] if isinstance(results, dict) else list(results)
    rhos = list(results[0]["table"])
    fig, axes = plt.subplots(len(results), len(rhos), figsize=(4.2 * len(rhos), 3.8 * len(results)), sharey="row", squeeze=False)
    for row, result in zip(axes, results):
        for ax, rho in zip(row, rhos):
            for name, cells in result["table"].get(rho, {}).items():
                ax.loglog([c["steps"] for c in cells], [100 * c["relative"] for c in cells], "o-", ms=3, label=name)
            best = [g for g in result["subgrid"] if g["rho"] == rho]
            if best:
                ax.loglog([g["steps"] for g in best], [100 * g["best"]["relative"] for g in best], "k*", ms=9,
                          label=f"best subgrid of {best[0]['fine_schedule']}")
            ax.set_title(f"{_LABEL[rho]}\n{result['spectrum']['name']}", fontsize=8)
            ax.set_xlabel("number of steps n")
            ax.grid(True, which="both", lw=0.3)
        row[0].set_ylabel("relative W2 (%)")
        row[0].legend(fontsize=7)
    fig.suptitle("Exact W2 between INRD's output law and Gaussian data (exact MMSE denoiser, V_T = 0.5)", fontsize=9)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=110)
    return Path(path)
