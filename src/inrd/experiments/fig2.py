"""Figure 2 of the paper: IND (row 1) vs INRD with the canonical relaxation (row 2) on pruned grids of
the diffusion model's training schedule, from 1000 down to 20 steps (the paper: "both produce
convincing samples, even for 20 steps, 50x less than DDPM").

The denoiser is DiffUNet FFHQ when its weights are given (``weights=``), otherwise the best offline
stand-in: our own trained diffusion model ``inrd-small`` when installed, else FFDNet on a geometric
grid inside its trained range (not a diffusion model: the title says so).
"""

from __future__ import annotations

import time

import torch

from .. import denoisers, io, schedules as S
from ..diagnostics import StabilityRecorder
from ..sampler import SamplingDiverged, sample
from .common import out_paths, save_figure_grid

STEPS = (1000, 250, 100, 50, 20)


def pick_denoiser(weights=None, device="cpu"):
    if weights:
        return "diffunet", denoisers.load("diffunet", weights=weights, device=device)
    for name in ("inrd-small", "ffdnet"):
        try:
            return name, denoisers.load(name, device=device)
        except (ValueError, FileNotFoundError, ImportError, ModuleNotFoundError):
            continue
    raise ValueError("no offline denoiser available for fig2 (neither inrd-small nor ffdnet could be loaded).")


def base_grid(D) -> tuple[torch.Tensor, dict]:
    """The 1000-level grid to prune: the training grid of a diffusion model, else a geometric grid."""
    d = getattr(D, "sampling_defaults", {})
    if d.get("schedule", "ddpm") == "ddpm":
        return S.ddpm(), {"init": 0.5, "init_std": 0.0}
    init_std = float(str(d.get("init", "gaussian:1.0")).split(":")[1]) if str(d.get("init", "")).startswith("gaussian:") else 0.0
    return S.geometric(1000, d.get("sigma_min", 0.002), d.get("sigma_max", 0.2)), {"init": 0.5, "init_std": init_std}


def run(out_dir="figures", weights=None, steps=STEPS, n=2, size=None, seed=0, device="cpu", progress=False, **_) -> dict:
    png, js = out_paths(out_dir, "fig2")
    name, D = pick_denoiser(weights, device)
    base, start = base_grid(D)
    d = getattr(D, "sampling_defaults", {})
    size = size or d.get("size", 64)
    shape = (n, d.get("channels", 3), size, size)
    rows, record = [[], []], []
    for r, relax in enumerate(("ind", "canonical")):
        for k in steps:
            sigmas = S.prune(base, k)
            stab = StabilityRecorder(every=max(1, k // 100))
            t0 = time.perf_counter()
            try:
                x = sample(D, sigmas, relax, shape=shape, seed=seed, callback=stab, progress=progress, device=device, **start)
                err = None
            except SamplingDiverged as e:
                x, err = e.last, str(e)
            rows[r].append(x)
            record.append({"relax": relax, "steps": k, "seconds": time.perf_counter() - t0, "error": err,
                           "final_std": stab.summary().get("final_std"), "sigmas": sigmas.tolist()})
    stand_in = "" if name == "diffunet" else " (offline stand-in for DiffUNet FFHQ)"
    title = f"Fig. 2: IND (top) vs INRD canonical (bottom), {name}{stand_in}, same seed {seed} in every cell"
    save_figure_grid(png, rows, ["IND", "INRD"], [f"{k} steps" for k in steps], title)
    for r, relax in enumerate(("ind", "canonical")):
        io.save_grid(png.with_name(f"fig2_{relax}_samples.png"), torch.cat(rows[r]), nrow=n)
    result = {"figure": "fig2", "png": str(png), "denoiser": name, "weights": weights, "stand_in": name != "diffunet", "steps": list(steps),
              "shape": list(shape), "seed": seed, "start": start, "runs": record, "versions": io.versions()}
    io.write_json(js, result)
    return result
