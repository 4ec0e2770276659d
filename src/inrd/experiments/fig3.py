"""Figure 3 of the paper: diffusion with off-the-shelf denoisers.

Rows 1-2: IND (``rho_t = 1``) with DRUNet (FFDNet when no DRUNet weights are given), samples after
iterations 60 and 120 of 400 (as in the paper, which shows only intermediate samples), on the
super-geometric schedule in the denoiser's trained range [0.002, 0.2] ([0, 1] units), from the
Gaussian start ``V_T = 0.5 + s_T Z`` with ``s_T = 1 = 5 sigma_T`` (the paper's ad-hoc ``s_T >> sigma_T``).
Row 3: INRD with the canonical relaxation (paper eq. 21) and the TV denoiser (``lambda = sigma``) on a
geometric schedule [0.002, 1] from the constant 0.5: on [0.002, 0.2] TV samples collapse to the mean,
and on the DDPM range the TV solver cannot remove sigma ~ 78 noise.

A third run, IND from the constant 0.5 (``s_T = 0``), tests the paper's remark that it "degenerates
immediately to the mean value". Every run records per-step statistics (:class:`StabilityRecorder`):
the estimated noise in ``V_t + gamma_t Z_t`` against the intended sigma_t tells whether the denoiser
keeps the iterate on the schedule; ``summary`` holds the headline numbers that ``inrd reproduce fig3``
prints.
"""

from __future__ import annotations

import time

from .. import denoisers, io
from .. import schedules as S
from ..diagnostics import StabilityRecorder
from ..sampler import SamplingDiverged, sample
from .common import out_paths, save_figure_grid

KEEP = (60, 120)  # iterations shown, counted from the start (iteration k is step t = T - k + 1)


def _run(D, sigmas, rho, shape, seed, init_std, keep=(), device="cpu", progress=False):
    """One sampling run from ``0.5 + init_std Z``: final iterate, kept frames, recorder and a record."""
    stab, frames = StabilityRecorder(every=max(1, (sigmas.numel() - 1) // 200)), {}
    T = sigmas.numel() - 1

    def cb(st):
        stab(st)
        if T - st.t + 1 in keep:
            frames[T - st.t + 1] = st.x.detach().cpu()

    t0 = time.perf_counter()
    try:
        x, err, diverged = sample(D, sigmas, rho, shape=shape, init=0.5, init_std=init_std, seed=seed, callback=cb,
                                  device=device, progress=progress), None, None
    except SamplingDiverged as e:
        x, err, diverged = e.last, str(e), T - e.t + 1
    return x, frames, stab, {"seconds": time.perf_counter() - t0, "error": err, "diverged_at_iteration": diverged,
                             "summary": stab.summary()}


def headline(record: dict, rows: list[dict], T: int) -> dict:
    """The numbers the README quotes for one run: iteration of divergence (None: none), mean std of the
    iterate over the first quarter of the iterations, and the range of estimated / intended noise."""
    first = [r["std"] for r in rows if T - r["t"] + 1 <= T // 4]
    ratios = [r["noise_in"] / r["sigma"] for r in rows if r["sigma"] > 0]
    final = record["summary"].get("final_std")
    return {
        "diverged_at_iteration": record["diverged_at_iteration"],
        "std_first_quarter": _round(sum(first) / len(first)) if first else None,
        "noise_in_over_sigma": [_round(min(ratios)), _round(max(ratios))] if ratios else None,
        "final_std": None if final is None else _round(final),
    }


def _round(x: float) -> float:
    """4 significant digits: what the statistics mean (the full per-step record is in ``stability_steps``)."""
    return float(f"{x:.4g}")


def run(out_dir="figures", weights=None, n=3, size=64, steps=400, s_T=1.0, seed=0, device="cpu", progress=False) -> dict:
    """Write ``fig3.png``, three ``fig3_stability_*.png`` plots and ``fig3.json`` for ``n`` samples of
    ``size`` x ``size`` pixels and ``steps`` iterations; ``weights`` is a DRUNet checkpoint."""
    if int(steps) != steps or steps < max(KEEP):
        raise ValueError(f"fig3 shows iterations {KEEP}: steps must be an integer >= {max(KEEP)}, got {steps!r}.")
    png, js = out_paths(out_dir, "fig3")
    if weights:
        name, D = "drunet", denoisers.load("drunet", weights=weights, device=device)
    else:
        name, D = "ffdnet", denoisers.load("ffdnet", device=device)
    tv = denoisers.load("tv", device=device, iters=100)
    shape = (n, 3, size, size)
    sg = S.super_geometric(steps, 0.002, 0.2)
    geo = S.geometric(steps, 0.002, 1.0)

    x_ind, frames, stab_ind, rec_ind = _run(D, sg, "ind", shape, seed, s_T, KEEP, device, progress)
    _, _, stab_flat, rec_flat = _run(D, sg, "ind", shape, seed, 0.0, (), device, progress)
    x_tv, _, stab_tv, rec_tv = _run(tv, geo, "canonical", shape, seed, 0.0, (), device, progress)

    stab_ind.plot(png.with_name("fig3_stability_ind.png"), f"IND-{name}, super-geometric {steps}, s_T={s_T}")
    stab_flat.plot(png.with_name("fig3_stability_ind_no_start_noise.png"), f"IND-{name}, super-geometric {steps}, s_T=0")
    stab_tv.plot(png.with_name("fig3_stability_tv.png"), f"INRD-TV, geometric [0.002, 1] {steps}, constant start")
    rows = [[frames.get(k, x_ind)[i : i + 1] for i in range(n)] for k in KEEP] + [[x_tv[i : i + 1] for i in range(n)]]
    labels = [f"IND-{name} it. {k}/{steps}" for k in KEEP] + [f"INRD-TV {steps}/{steps}"]
    stand_in = "" if name == "drunet" else " (FFDNet: offline stand-in for DRUNet)"
    save_figure_grid(png, rows, labels, [f"sample {i}" for i in range(n)],
                     f"Fig. 3: IND-{name}{stand_in} at intermediate iterations, INRD-TV (lambda = sigma)")
    result = {
        "figure": "fig3", "png": str(png), "denoiser": name, "weights": weights, "shape": list(shape), "seed": seed, "s_T": s_T,
        "schedules": {"ind": sg.tolist(), "tv": geo.tolist()},
        "runs": {"ind": rec_ind, "ind_without_start_noise": rec_flat, "tv": rec_tv},
        "stability_steps": {"ind": stab_ind.rows, "ind_without_start_noise": stab_flat.rows, "tv": stab_tv.rows},
        "summary": {"ind": headline(rec_ind, stab_ind.rows, steps), "ind_without_start_noise": headline(rec_flat, stab_flat.rows, steps),
                    "tv": headline(rec_tv, stab_tv.rows, steps)},
        "versions": io.versions(),
    }
    io.write_json(js, result)
    return result
