"""Figure 3 of the paper: diffusion with off-the-shelf denoisers.

Rows 1-2: IND with DRUNet (FFDNet when DRUNet weights are absent), samples after 60 and 120 of 400
iterations, super-geometric schedule in the denoiser's trained range [0.002, 0.2] and a Gaussian start
0.5 + s_T Z with s_T = 1 = 5 sigma_T (the paper's ad-hoc "s_T >> sigma_T"). Measured with FFDNet at
48x48: structures at iterations 60 and 120, then the estimated noise in the iterate grows to ~100x the
intended sigma_t at the low end of the schedule and the run diverges near iteration 285: the paper's
DRUNet instability, reproduced (hence intermediate samples only, as in the paper).
Row 3: INRD (canonical) with the TV denoiser, lambda = sigma, geometric schedule [0.002, 1] from the
constant 0.5 (on [0.002, 0.2] TV samples collapse to the mean; with the DDPM range the TV solver cannot
remove sigma ~ 78 noise and iterates leave [0, 1]: both measured). Also measured (JSON + stability
plots): the IND run started from the constant 0.5 (s_T = 0), which the paper says "degenerates
immediately to the mean value".
"""

from __future__ import annotations

import time


from .. import denoisers, io, schedules as S
from ..diagnostics import StabilityRecorder
from ..sampler import SamplingDiverged, sample
from .common import out_paths, save_figure_grid


def _run(D, sigmas, relax, shape, seed, init_std, keep=(), device="cpu", progress=False):
    stab, frames = StabilityRecorder(every=max(1, (sigmas.numel() - 1) // 200)), {}
    T = sigmas.numel() - 1

    def cb(st):
        stab(st)
        if T - st.t + 1 in keep:  # iteration number counted from the start
            frames[T - st.t + 1] = st.x.detach().cpu()

    t0 = time.perf_counter()
    try:
        x, err = sample(D, sigmas, relax, shape=shape, init=0.5, init_std=init_std, seed=seed, callback=cb,
                        device=device, progress=progress), None
    except SamplingDiverged as e:
        x, err = e.last, str(e)
    return x, frames, stab, {"seconds": time.perf_counter() - t0, "error": err, "summary": stab.summary()}


def run(out_dir="figures", weights=None, n=3, size=64, steps=400, s_T=1.0, seed=0, device="cpu", progress=False, **_) -> dict:
    png, js = out_paths(out_dir, "fig3")
    if weights:
        name, D = "drunet", denoisers.load("drunet", weights=weights, device=device)
    else:
        name, D = "ffdnet", denoisers.load("ffdnet", device=device)
    tv = denoisers.load("tv", device=device, max_iter=100)
    shape = (n, 3, size, size)
    keep = (60, 120)
    sg = S.super_geometric(steps, 0.002, 0.2)
    geo = S.geometric(steps, 0.002, 1.0)

    x_ind, frames, stab_ind, rec_ind = _run(D, sg, "ind", shape, seed, s_T, keep, device, progress)
    _, _, stab_flat, rec_flat = _run(D, sg, "ind", shape, seed, 0.0, (), device, progress)
    x_tv, _, stab_tv, rec_tv = _run(tv, geo, "canonical", shape, seed, 0.0, (), device, progress)

    stab_ind.plot(png.with_name("fig3_stability_ind.png"), f"IND-{name}, super-geometric {steps}, s_T={s_T}")
    stab_flat.plot(png.with_name("fig3_stability_ind_no_start_noise.png"), f"IND-{name}, super-geometric {steps}, s_T=0")
    stab_tv.plot(png.with_name("fig3_stability_tv.png"), f"INRD-TV, geometric [0.002, 1] {steps}, constant start")
    rows = [[frames.get(k, x_ind)[i : i + 1] for i in range(n)] for k in keep] + [[x_tv[i : i + 1] for i in range(n)]]
    labels = [f"IND-{name} it. {k}/{steps}" for k in keep] + [f"INRD-TV {steps}/{steps}"]
    stand_in = "" if name == "drunet" else " (FFDNet: offline stand-in for DRUNet)"
    save_figure_grid(png, rows, labels, [f"sample {i}" for i in range(n)],
                     f"Fig. 3: IND-{name}{stand_in} at intermediate iterations, INRD-TV (lambda = sigma)")
    result = {
        "figure": "fig3", "png": str(png), "denoiser": name, "weights": weights, "shape": list(shape), "seed": seed, "s_T": s_T,
        "schedules": {"ind": sg.tolist(), "tv": geo.tolist()},
        "runs": {"ind": rec_ind, "ind_without_start_noise": rec_flat, "tv": rec_tv},
        "stability_steps": {"ind": stab_ind.rows, "ind_without_start_noise": stab_flat.rows, "tv": stab_tv.rows},
        "versions": io.versions(),
    }
    io.write_json(js, result)
    return result
