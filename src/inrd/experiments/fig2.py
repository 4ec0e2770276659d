"""Figure 2 of the paper: IND (row 1) vs INRD with the canonical relaxation (row 2, paper eq. 21 =
DDPM) on grids pruned from the diffusion model's training schedule, from 1000 down to 20 steps (the
paper: "both produce convincing samples, even for 20 steps, 50x less than DDPM").

The denoiser is DiffUNet FFHQ when its weights are given (``weights=``), otherwise the best offline
stand-in: our own trained diffusion model ``inrd-small`` when installed, else FFDNet, which is not a
diffusion model (the title says so). The fine grid and the start ``V_T = init + init_std Z`` are the
denoiser's own sampling defaults (:class:`inrd.denoisers.base.SamplingDefaults`): a diffusion network's
training grid, or for FFDNet its default schedule built with 1000 levels on its trained range.
"""

from __future__ import annotations

import time

import torch

from .. import denoisers, io
from .. import schedules as S
from ..denoisers.base import defaults_of
from ..diagnostics import StabilityRecorder
from ..guards import probe_shape
from ..sampler import SamplingDiverged, sample
from .common import out_paths, save_figure_grid

STEPS = (1000, 250, 100, 50, 20)


def pick_denoiser(weights=None, device="cpu"):
    """``(name, D)``: DiffUNet with ``weights``, else inrd-small, else FFDNet (both offline)."""
    if weights:
        return "diffunet", denoisers.load("diffunet", weights=weights, device=device)
    for name in ("inrd-small", "ffdnet"):
        try:
            return name, denoisers.load(name, device=device)
        except (ValueError, FileNotFoundError, ImportError):
            continue
    raise ValueError("no offline denoiser available for fig2 (neither inrd-small nor ffdnet could be loaded); pass --weights.")


def base_grid(D) -> tuple[torch.Tensor, dict]:
    """The fine grid to prune (ascending float64 sigmas, [0, 1] units) and the start ``{init, init_std}``,
    both from ``D.sampling_defaults``: its training grid (``schedule="training"``, or DDPM/cosine's 1000
    levels), else its default schedule with 1000 levels on ``[sigma_min, sigma_max]``."""
    d = defaults_of(D)
    return d.fine_grid(), {"init": float(d.init), "init_std": float(d.init_std)}


def run(out_dir="figures", weights=None, steps=STEPS, n=2, size=None, seed=0, device="cpu", progress=False) -> dict:
    """Write ``fig2.png`` (the grid), ``fig2_{ind,canonical}_samples.png`` and ``fig2.json``; ``size``
    defaults to the denoiser's training size. Every cell starts from the same seed."""
    png, js = out_paths(out_dir, "fig2")
    name, D = pick_denoiser(weights, device)
    base, start = base_grid(D)
    d = defaults_of(D)
    size = size or d.size
    shape = (n, d.channels, size, size)
    probe_shape(D, shape, base, device, torch.float32, name)  # a size the network cannot take: one line, before any run
    rows, record = [[], []], []
    for r, rho in enumerate(("ind", "canonical")):
        for k in steps:
            sigmas = S.prune(base, k)
            stab = StabilityRecorder(every=max(1, k // 100))
            t0 = time.perf_counter()
            try:
                x = sample(D, sigmas, rho, shape=shape, seed=seed, callback=stab, progress=progress, device=device, **start)
                err = None
            except SamplingDiverged as e:
                x, err = e.last, str(e)
            rows[r].append(x)
            record.append({"rho": rho, "steps": k, "seconds": time.perf_counter() - t0, "error": err,
                           "final_std": stab.summary().get("final_std"), "sigmas": sigmas.tolist()})
    stand_in = "" if name == "diffunet" else " (offline stand-in for DiffUNet FFHQ)"
    title = f"Fig. 2: IND (top) vs INRD canonical (bottom), {name}{stand_in}, same seed {seed} in every cell"
    save_figure_grid(png, rows, ["IND", "INRD"], [f"{k} steps" for k in steps], title)
    for r, rho in enumerate(("ind", "canonical")):
        io.save_grid(png.with_name(f"fig2_{rho}_samples.png"), torch.cat(rows[r]), nrow=n)
    result = {"figure": "fig2", "png": str(png), "denoiser": name, "weights": weights, "stand_in": name != "diffunet", "steps": list(steps),
              "shape": list(shape), "seed": seed, "start": start, "runs": record, "versions": io.versions()}
    io.write_json(js, result)
    return result
