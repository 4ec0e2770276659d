"""Restoration on 14 photographs, four tasks, every algorithm of :mod:`inrd.restoration` beside
deepinv's own DPIR and DiffPIR with the same denoiser (the pretrained FFDNet) and the Tikhonov
baselines; PSNR, SSIM, seconds and denoiser evaluations per image.

Tasks (each observation seeded, the same for every method; images are centre crops at full
resolution, :data:`inrd.experiments.pnp_table.IMAGES`):

* ``deblur``: periodic Gaussian blur of std 1.6 pixels, nu = 0.01;
* ``inpaint``: half of the pixels missing (a seeded Bernoulli(1/2) mask), nu = 0.01;
* ``super-resolution``: Gaussian blur of std 1.0 then x2 decimation, nu = 0.01;
* ``denoise``: nu = 0.1 (about 25/255).

Methods: ``tikhonov-oracle`` (gradient Tikhonov, weight chosen with the truth over 49 values),
``tikhonov-discrepancy`` (truth-free), ``pnp-pgd`` (the paper's raw scheme, sigma = 2 nu, tau = 1/L),
``gs-pnp``, ``hqs`` (DPIR-style, per-task levels and weight: `inrd.restoration.HQS_TASK_OPTIONS`),
``inrd-posterior`` (mean of the samples), each through :func:`inrd.restoration.restore` at its defaults.
deepinv's methods run as a deepinv user runs them: deepinv's own operators (``BlurFFT``,
``Downsampling(padding="circular")``, ``Inpainting``, ``Denoising``: the same A as ours, to rounding),
the raw denoiser (no padding) and each method's own start: ``deepinv-dpir`` (``deepinv.optim.DPIR``,
its 8 levels), ``deepinv-dpir-levels`` (DPIR's level and step rule, ``get_DPIR_params``, with as many
levels as ``hqs`` uses, on the tasks where that is more than 8, built with ``optim_builder`` as
deepinv's DPIR example does) and ``deepinv-diffpir`` (``deepinv.sampling.DiffPIR`` at its defaults:
100 steps, zeta = 0.1, lambda = 7). ``calls``: images denoised per observed image.
SSIM is scikit-image's ``structural_similarity`` (7x7 uniform window, data range 1).

Resumable: every (task, image) row is cached in ``restore_table_cache.json`` as soon as it is done;
a rerun with the same settings continues where the last one stopped (other settings: an error).
``inrd reproduce restore-table`` writes ``restore_table.json`` and ``restore_table.md``.
"""

from __future__ import annotations

import json
import math
import time
import warnings

import numpy as np
import torch

from .. import io
from .. import restoration as R
from ..denoisers import load
from ..metrics import psnr, ssim
from .common import out_paths
from .pnp_table import IMAGES, _crop

TASKS = {
    "deblur": {"kernel": "gaussian:1.6", "noise_level": 0.01},
    "inpaint": {"missing": 0.5, "noise_level": 0.01},
    "super-resolution": {"factor": 2, "kernel": "gaussian:1.0", "noise_level": 0.01},
    "denoise": {"noise_level": 0.1},
}
METHODS = ("tikhonov-oracle", "tikhonov-discrepancy", "pnp-pgd", "gs-pnp", "hqs", "inrd-posterior",
           "deepinv-dpir", "deepinv-dpir-levels", "deepinv-diffpir")
#: the images HQS_TASK_OPTIONS were swept on (docs/restoration_notes.md); the summary also holds the others'
SWEPT = ("camera", "astronaut", "coffee", "brick", "moon", "text")


def make_physics(task: str, shape, seed: int):
    """The operator of ``task`` for (H, W) images; the inpainting mask is drawn from ``seed``."""
    spec = TASKS[task]
    if task == "deblur":
        return R.PeriodicBlur(R.load_kernel(spec["kernel"]))
    if task == "super-resolution":
        return R.Downsampling(R.load_kernel(spec["kernel"]), spec["factor"])
    if task == "inpaint":
        g = torch.Generator().manual_seed(10_000 + seed)
        return R.Inpainting((torch.rand(1, 1, *shape, generator=g) >= spec["missing"]).float())
    return R.Denoising()


def deepinv_physics(op, shape, nu: float, dtype=torch.float32):
    """deepinv's own operator for our ``op`` on (C, H, W) images of ``dtype``, with its Gaussian noise model nu."""
    import deepinv as dinv

    noise = dinv.physics.GaussianNoise(sigma=nu)
    if isinstance(op, R.Downsampling):
        return dinv.physics.Downsampling(img_size=shape, filter=_filter(op, dtype), factor=op.factor, padding="circular", noise_model=noise)
    if isinstance(op, R.PeriodicBlur):
        return dinv.physics.BlurFFT(img_size=shape, filter=_filter(op, dtype), noise_model=noise)
    if isinstance(op, R.Inpainting):
        return dinv.physics.Inpainting(img_size=shape, mask=op.mask[0].to(dtype), noise_model=noise)
    return dinv.physics.Denoising(noise_model=noise)


def _filter(op, dtype) -> torch.Tensor:
    k = op.kernel.to(dtype)
    return k[None, None] if k.ndim == 2 else k


class Counted(torch.nn.Module):
    """``denoiser`` that counts the images it denoises (``calls``), for the table's cost column."""

    def __init__(self, denoiser):
        super().__init__()
        self.denoiser, self.calls = denoiser, 0
        self.sigma_range = getattr(denoiser, "sigma_range", None)
        self.sampling_defaults = getattr(denoiser, "sampling_defaults", None)

    def forward(self, x, sigma, *args, **kwargs):
        self.calls += x.shape[0]
        return self.denoiser(x, sigma, *args, **kwargs)


def dpir_levels(task: str) -> int:
    """The levels ``deepinv-dpir-levels`` runs: as many as ``hqs`` on ``task`` (0: not above DPIR's 8)."""
    n = R.HQS_TASK_OPTIONS[task]["iters"]
    return n if n > 8 else 0


def _deepinv(name, phys, D, y, nu, seed, task):
    import deepinv as dinv

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FFDNet's extrapolation warning at DiffPIR's large levels
        if name == "deepinv-dpir":
            return dinv.optim.DPIR(sigma=nu, denoiser=D, device=y.device)(y, phys)
        if name == "deepinv-dpir-levels":
            n = dpir_levels(task)
            levels = torch.logspace(math.log10(49 / 255), math.log10(nu), n)  # get_DPIR_params with n levels
            stepsize = (levels / max(0.01, nu)) ** 2 / 0.23
            model = dinv.optim.optim_builder(iteration="HQS", prior=dinv.optim.PnP(denoiser=D), data_fidelity=dinv.optim.L2(),
                                             early_stop=False, max_iter=n, params_algo={"stepsize": stepsize, "g_param": levels})
            return model(y, phys)
        torch.manual_seed(seed)
        model = dinv.sampling.DiffPIR(model=D, data_fidelity=dinv.optim.data_fidelity.L2(), sigma=nu, device=y.device)
        return model(y, phys)


def _one(method, op, D, y, x, nu, task, seed, iters, samples):
    t0 = time.perf_counter()
    extra = {}
    D = Counted(D)
    if method == "tikhonov-oracle":
        out, lam, _ = R.tikhonov_oracle(y, op, x)
        extra["lam"] = lam
    elif method == "tikhonov-discrepancy":
        out, lams = R.tikhonov_discrepancy(y, op, nu)
        extra["lam"] = lams[0]
    elif method.startswith("deepinv-"):
        out = _deepinv(method, deepinv_physics(op, tuple(x.shape[1:]), nu), D, y, nu, seed, task)
    else:
        opts = {"pnp-pgd": {"iters": iters}, "gs-pnp": {"iters": max(1, iters // 3)}, "hqs": {},
                "inrd-posterior": {"samples": samples, "seed": seed}}[method]
        res = R.restore(y, op, D, nu, method, task=task, **opts)
        out = res.x
        extra.update(verdict=res.verdict, iters_run=res.params["iters_run"])
    seconds = time.perf_counter() - t0
    return {"psnr": float(psnr(out, x)[0]), "ssim": ssim(out, x), "seconds": seconds, "calls": D.calls, **extra}


def run(out_dir="figures", images=None, size=96, iters=60, samples=3, seed=0, device="cpu", progress=False,
        tasks=None, methods=None, **_) -> dict:
    """Run the table (module docstring); ``tasks`` / ``methods`` select a subset. Default runtime: about
    25 minutes on one CPU core for 14 images x 4 tasks at 96x96."""
    png, js = out_paths(out_dir, "restore_table")
    images = tuple(images) if images else IMAGES
    tasks = tuple(tasks) if tasks else tuple(TASKS)
    methods = tuple(methods) if methods else METHODS
    for t in tasks:
        if t not in TASKS:
            raise ValueError(f"unknown task {t!r}; choose from {', '.join(TASKS)}.")
    settings = {"size": size, "iters": iters, "samples": samples, "seed": seed, "tasks": TASKS,
                "deepinv": "own operators, raw denoiser, own start", "defaults": "hqs/posterior unpadded, inpainting posterior from hqs"}
    cache_path = png.with_name("restore_table_cache.json")
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {"settings": settings, "rows": {}}
    if json.loads(json.dumps(cache["settings"])) != json.loads(json.dumps(settings)):
        raise ValueError(f"{cache_path} holds a run with other settings ({cache['settings']}); delete it or use another --out.")
    nets = {}
    for task in tasks:
        nu = TASKS[task]["noise_level"]
        for idx, spec in enumerate(images):
            key = f"{task}|{spec}"
            row = cache["rows"].setdefault(key, {})
            todo = [m for m in methods if m not in row and (m != "deepinv-dpir-levels" or dpir_levels(task))]
            if not todo:
                continue
            x = _crop(spec, size).to(device)
            c = x.shape[1]
            if c not in nets:
                nets[c] = load("ffdnet", channels=c, device=device)
            op = make_physics(task, x.shape[-2:], seed + idx)
            y = R.observe(x, op, nu, seed=seed + idx)
            if y.shape == x.shape:
                row["observed"] = {"psnr": float(psnr(y, x)[0]), "ssim": ssim(y, x)}
            for m in todo:
                row[m] = _one(m, op, nets[c], y, x, nu, task, seed + idx, iters, samples)
                if progress:
                    print(f"restore-table {task} {spec} {m}: {row[m]['psnr']:.2f} dB, {row[m]['seconds']:.1f} s", flush=True)
            io.write_json(cache_path, cache)
    summary = {task: _summary(task, [cache["rows"][f"{task}|{s}"] for s in images], images, methods) for task in tasks}
    io.write_text(png.with_name("restore_table.md"), _markdown(summary, cache["rows"], images, tasks, methods, size))
    result = {"figure": "restore-table", "denoiser": "ffdnet", "stand_in": False, "images": list(images),
              "settings": settings, "summary": summary, "results": cache["rows"], "versions": io.versions()}
    io.write_json(js, result)
    return result


def _summary(task: str, rows: list[dict], images, methods) -> dict:
    """Per method: mean PSNR / SSIM / seconds / calls over ``rows``, the images above each deepinv DPIR, and
    the mean PSNR over the images the HQS options were not swept on (``held_out_psnr``)."""
    held = [r for r, spec in zip(rows, images) if spec not in SWEPT]
    out = {}
    for m in methods:
        if not all(m in r for r in rows):
            continue
        out[m] = {k: float(np.mean([r[m][k] for r in rows])) for k in ("psnr", "ssim", "seconds", "calls")}
        if held:
            out[m]["held_out_psnr"] = float(np.mean([r[m]["psnr"] for r in held]))
        for ref in ("deepinv-dpir", "deepinv-dpir-levels"):
            if all(ref in r for r in rows):
                out[m]["wins_over_" + ref.replace("-", "_")] = int(sum(r[m]["psnr"] > r[ref]["psnr"] for r in rows))
    return out


def _markdown(summary, rows, images, tasks, methods, size) -> str:
    out = []
    held = len([s for s in images if s not in SWEPT])
    for task in tasks:
        spec = ", ".join(f"{k} {v}" for k, v in TASKS[task].items())
        levels = dpir_levels(task)
        out += [f"### {task} ({spec}; {len(images)} images, {size}x{size} crops)", "",
                f"| method | PSNR (dB) | PSNR on the {held} held-out images | SSIM | s / image | denoiser calls / image | images above deepinv DPIR |"
                + (f" images above DPIR with {levels} levels |" if levels else ""),
                "| --- " * (7 + bool(levels)) + "|"]
        for m, s in summary[task].items():
            line = (f"| {m} | {s['psnr']:.2f} | {s.get('held_out_psnr', float('nan')):.2f} | {s['ssim']:.4f} | {s['seconds']:.2f} "
                    f"| {s['calls']:.0f} | {s.get('wins_over_deepinv_dpir', '')} |")
            out.append(line + (f" {s.get('wins_over_deepinv_dpir_levels', '')} |" if levels else ""))
        shown = [m for m in methods if m in summary[task]]
        out += ["", "| image | " + " | ".join(shown) + " |", "| --- " * (len(shown) + 1) + "|"]
        for spec_i in images:
            r = rows[f"{task}|{spec_i}"]
            out.append(f"| {spec_i} | " + " | ".join(f"{r[m]['psnr']:.2f}" for m in shown) + " |")
        out.append("")
    return "\n".join(out)
