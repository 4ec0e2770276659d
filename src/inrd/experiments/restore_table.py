"""Restoration on 14 photographs, four tasks, every algorithm of :mod:`inrd.restoration` beside
deepinv's own DPIR and DiffPIR with the same denoiser (the pretrained FFDNet) and the Tikhonov
baselines; PSNR, SSIM and seconds per image.

Tasks (each observation seeded, the same for every method; images are centre crops at full
resolution, :data:`inrd.experiments.pnp_table.IMAGES`):

* ``deblur``: periodic Gaussian blur of std 1.6 pixels, nu = 0.01;
* ``inpaint``: half of the pixels missing (a seeded Bernoulli(1/2) mask), nu = 0.01;
* ``super-resolution``: Gaussian blur of std 1.0 then x2 decimation, nu = 0.01;
* ``denoise``: nu = 0.1 (about 25/255).

Methods: ``tikhonov-oracle`` (gradient Tikhonov, weight chosen with the truth over 49 values),
``tikhonov-discrepancy`` (truth-free), ``pnp-pgd`` (the paper's raw scheme, sigma = 2 nu, tau = 1/L),
``gs-pnp``, ``hqs`` (DPIR-style, per-task levels and weight: `inrd.restoration.HQS_TASK_OPTIONS`), ``inrd-posterior`` (mean of the samples),
``deepinv-dpir`` (``deepinv.optim.DPIR``, 8 levels) and ``deepinv-diffpir`` (``deepinv.sampling.DiffPIR``,
its defaults: 100 steps, zeta = 0.1, lambda = 7). deepinv's methods get our operators through a
``LinearPhysics`` wrapper with the same exact ``prox_l2`` and start from the same ``physics.init(y)``.
SSIM is scikit-image's ``structural_similarity`` (7x7 uniform window, data range 1).

Resumable: every (task, image) row is cached in ``restore_table_cache.json`` as soon as it is done;
a rerun with the same settings continues where the last one stopped (other settings: an error).
``inrd reproduce restore-table`` writes ``restore_table.json`` and ``restore_table.md``.
"""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import torch

from .. import io
from .. import restoration as R
from ..denoisers import load
from ..metrics import psnr, ssim
from ..restoration.common import is_periodic
from .common import out_paths
from .pnp_table import IMAGES, _crop

TASKS = {
    "deblur": {"kernel": "gaussian:1.6", "noise_level": 0.01},
    "inpaint": {"missing": 0.5, "noise_level": 0.01},
    "super-resolution": {"factor": 2, "kernel": "gaussian:1.0", "noise_level": 0.01},
    "denoise": {"noise_level": 0.1},
}
METHODS = ("tikhonov-oracle", "tikhonov-discrepancy", "pnp-pgd", "gs-pnp", "hqs", "inrd-posterior",
           "deepinv-dpir", "deepinv-diffpir")


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


def as_deepinv_physics(op, nu: float):
    """Our operator as a deepinv ``LinearPhysics`` (same A, A^T and exact prox_l2; Gaussian noise nu)."""
    import deepinv as dinv

    class Physics(dinv.physics.LinearPhysics):
        def A(self, x, **kw):
            return op.A(x)

        def A_adjoint(self, v, **kw):
            return op.A_adjoint(v)

        def prox_l2(self, z, v, gamma, **kw):
            return op.prox_l2(z, v, gamma)

    return Physics(noise_model=dinv.physics.GaussianNoise(sigma=nu))


def _deepinv(name, op, D, y, nu, seed):
    import deepinv as dinv

    phys = as_deepinv_physics(op, nu)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FFDNet's extrapolation warning at DiffPIR's large levels
        if name == "deepinv-dpir":
            return dinv.optim.DPIR(sigma=nu, denoiser=D, device=y.device)(y, phys, init=op.init(y))
        torch.manual_seed(seed)
        model = dinv.sampling.DiffPIR(model=D, data_fidelity=dinv.optim.data_fidelity.L2(), sigma=nu, device=y.device)
        return model(y, phys, x_init=op.init(y))


def _one(method, op, D, y, x, nu, task, seed, iters, samples):
    t0 = time.perf_counter()
    extra = {}
    if method == "tikhonov-oracle":
        out, lam, _ = R.tikhonov_oracle(y, op, x)
        extra["lam"] = lam
    elif method == "tikhonov-discrepancy":
        out, lams = R.tikhonov_discrepancy(y, op, nu)
        extra["lam"] = lams[0]
    elif method.startswith("deepinv-"):
        out = _deepinv(method, op, R.CircularPad(D, 16) if is_periodic(op) else D, y, nu, seed)
    else:
        opts = {"pnp-pgd": {"iters": iters}, "gs-pnp": {"iters": max(1, iters // 3)}, "hqs": {},
                "inrd-posterior": {"samples": samples, "seed": seed}}[method]
        res = R.restore(y, op, D, nu, method, task=task, **opts)
        out = res.x
        extra.update(verdict=res.verdict, iters_run=res.params["iters_run"])
    seconds = time.perf_counter() - t0
    return {"psnr": float(psnr(out, x)[0]), "ssim": ssim(out, x), "seconds": seconds, **extra}


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
    settings = {"size": size, "iters": iters, "samples": samples, "seed": seed, "tasks": TASKS}
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
            todo = [m for m in methods if m not in row]
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
    summary = {}
    for task in tasks:
        rows = [cache["rows"][f"{task}|{s}"] for s in images]
        summary[task] = {m: {k: float(np.mean([r[m][k] for r in rows])) for k in ("psnr", "ssim", "seconds")}
                         for m in methods if all(m in r for r in rows)}
        if "deepinv-dpir" in summary[task]:
            for m, s in summary[task].items():
                s["wins_over_deepinv_dpir"] = int(sum(r[m]["psnr"] > r["deepinv-dpir"]["psnr"] for r in rows))
    io.write_text(png.with_name("restore_table.md"), _markdown(summary, cache["rows"], images, tasks, methods, size))
    result = {"figure": "restore-table", "denoiser": "ffdnet", "stand_in": False, "images": list(images),
              "settings": settings, "summary": summary, "results": cache["rows"], "versions": io.versions()}
    io.write_json(js, result)
    return result


def _markdown(summary, rows, images, tasks, methods, size) -> str:
    out = []
    for task in tasks:
        spec = ", ".join(f"{k} {v}" for k, v in TASKS[task].items())
        out += [f"### {task} ({spec}; {len(images)} images, {size}x{size} crops)", "",
                "| method | PSNR (dB) | SSIM | s / image | images above deepinv DPIR |", "| --- | --- | --- | --- | --- |"]
        for m, s in summary[task].items():
            out.append(f"| {m} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['seconds']:.2f} | {s.get('wins_over_deepinv_dpir', '')} |")
        out += ["", "| image | " + " | ".join(m for m in methods) + " |", "| --- " * (len(methods) + 1) + "|"]
        for spec_i in images:
            r = rows[f"{task}|{spec_i}"]
            out.append(f"| {spec_i} | " + " | ".join(f"{r[m]['psnr']:.2f}" if m in r else "" for m in methods) + " |")
        out.append("")
    return "\n".join(out)
