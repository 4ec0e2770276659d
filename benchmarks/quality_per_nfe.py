"""Sample quality per network call: inrd's relaxations and grids against diffusers' samplers, on the
same network (inrd-small, a diffusers ``UNet2DModel``), at 5, 10, 20 and 50 network calls (NFE).

    python benchmarks/quality_per_nfe.py                 # ~20 min of one CPU thread (900 s sampling); resumable
    python benchmarks/quality_per_nfe.py --report-only   # rebuild the table from the cached results

inrd (``inrd.sample`` on ``EpsDenoiser(UNet2DModel)`` with ``timestep="interp"``, start V_T = 0.5 as in
the paper, one network call per step):

* relaxations ``canonical`` (= DDPM, eq. 21), ``ind`` (rho = 1), ``ddim`` (rho = 1 - sigma_{t-1}/sigma_t,
  deterministic after the first step);
* grids ``pruned`` (the 1000 DDPM levels pruned uniformly, :func:`inrd.schedules.prune`), ``karras``
  (rho = 7 on the DDPM range [sigma_1, sigma_1000]; off the DDPM levels, hence the fractional timesteps),
  ``subgrid``: :func:`inrd.gaussian.best_subgrid` of the DDPM levels for the default spectrum of
  ``inrd analyze`` (1/f^2 power law, 64x64, std 0.25), and ``datagrid``: the same search for the
  Gaussian law with the mean and covariance of 32x32 training crops (per relaxation and step count;
  both cached in ``subgrids.json``), and ``power``: the DDPM levels pruned by a power law
  (:func:`inrd.schedules.prune_indices` with ``--power`` and ``--first``, by default the rule in the
  shipped JSON's ``sampling`` section, chosen at 20 NFE by ``benchmarks/search_spacing.py`` on other
  seeds and another reference region);
* ``clip``: ``none`` (the paper's D) or ``x0`` (diffusers' semantics: the clean estimate clipped to
  [0, 1], the noise direction u - D(u) kept), for a few of them.

diffusers (every scheduler configured with the DDPM training betas, ``timestep_spacing=
"trailing"`` so that every run starts at the last training level, defaults otherwise): DDPM, DDIM
(clip_sample True, its default, and False), DPM-Solver++ 2M (with and without Karras sigmas), UniPC,
Euler, Euler ancestral and Heun (2 calls per step but the last: 2n - 1 calls for n steps; the number
of steps is chosen so that the calls do not exceed the budget, and the true count is recorded).

Quality (:func:`inrd.experiments.quality.sample_quality`, 32 samples of 32x32 against 32 held-out
crops): patch-SWD, radial-spectrum distance (and its top-frequency band), pixel W1, pixel std ratio,
out-of-range fraction; each with its real-vs-real floor over ``--floor-draws`` draws (5; crops of the held-out ``floor``
region), and the same numbers for real crops of the *training* region, the law the network learned; and
mode coverage (:mod:`inrd.experiments.texture_classes`): the share of samples whose texture is
ambiguous and the largest gap of a texture's share from 1/3, with the same real rows. Each (sampler, NFE, seed) result
is cached as one JSON file under ``--out/runs`` (written atomically), so a killed run resumes where it
stopped; ``quality_per_nfe.json`` and ``quality_per_nfe.md`` (the table: mean +- sd over seeds) are
rewritten at the end.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from inrd import io, sample
from inrd import schedules as S
from inrd.denoisers.small import BUNDLED, build
from inrd.experiments.quality import real_crops, real_floors, sample_quality
from inrd.experiments.texture_classes import fit_texture_classifier, texture_coverage
from inrd.gaussian import Spectrum, best_subgrid

NFES = (5, 10, 20, 50)
SEEDS = (0, 1, 2)
INRD = [(rho, grid, "none") for rho in ("canonical", "ind", "ddim") for grid in ("pruned", "karras", "subgrid")] + [
    ("canonical", "datagrid", "none"), ("ddim", "datagrid", "none"),
    ("canonical", "pruned", "x0"), ("canonical", "subgrid", "x0"), ("ddim", "pruned", "x0"), ("ddim", "subgrid", "x0"),
    ("canonical", "power", "none"), ("ddim", "power", "x0"),
]
DIFFUSERS = {  # name: (scheduler class, options on top of the DDPM config)
    "DDPM": ("DDPMScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
    "DDIM no clip": ("DDIMScheduler", {"clip_sample": False}),
    "DPM-Solver++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DPM-Solver++ 2M Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler ancestral": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
}
DDPM_CONFIG = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear",
               "prediction_type": "epsilon", "timestep_spacing": "trailing"}


def inrd_name(rho: str, grid: str, clip: str) -> str:
    return f"inrd {rho} {grid}" + ("" if clip == "none" else f" clip={clip}")


def training_spectrum(size: int = 32, n: int = 8192) -> Spectrum:
    """Gaussian law with the mean and covariance of ``n`` seeded 32x32 training crops ([0, 1] units)."""
    from inrd.textures import random_crops, region

    X = random_crops(region("train"), n, size, torch.Generator().manual_seed(7)).reshape(n, -1).double().numpy()
    mu = X.mean(0)
    return Spectrum.from_covariance(mu, np.cov(X, rowvar=False), shape=(1, size, size), name="training crops 32x32")


def subgrids(out: Path, nfes) -> dict:
    """{f"{grid}/{rho}/{n}": 1-based DDPM timestep indices of the best subgrid} for grid ``subgrid``
    (power-law spectrum) and ``datagrid`` (training crops), cached in ``out/subgrids.json``."""
    from inrd.gaussian.analysis import make_spectrum

    path = out / "subgrids.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    keys = [(g, rho, n) for g in ("subgrid", "datagrid") for rho in ("canonical", "ind", "ddim") for n in nfes]
    missing = [k for k in keys if "/".join(map(str, k)) not in cache]
    if missing:
        spectra = {"subgrid": make_spectrum(), "datagrid": training_spectrum()}
        for g, rho, n in missing:
            res = best_subgrid(spectra[g], S.ddpm(), int(n), rho)
            cache[f"{g}/{rho}/{n}"] = [int(i) for i in res.indices[1:]]
            print(f"best {g} {rho} {n}: W2 {res.w2.relative:.4f} (uniform {res.uniform.relative:.4f})", flush=True)
        io.write_json(path, cache)
    return cache


def inrd_sigmas(grid: str, rho: str, n: int, grids: dict) -> torch.Tensor:
    ddpm = S.ddpm()
    if grid == "pruned":
        return S.prune(ddpm, n)
    if grid == "power":
        return S.prune(ddpm, n, grids["power"]["power"], grids["power"]["first"])
    if grid == "karras":
        return S.make("karras", n, sigma_min=float(ddpm[1]), sigma_max=float(ddpm[-1]))
    return ddpm[[0] + grids[f"{grid}/{rho}/{n}"]]


class Counted(torch.nn.Module):
    """The eps-network, counting its calls (network function evaluations)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x, t):
        self.calls += 1
        return self.net(x, t)


def run_inrd(den, counter, rho, grid, clip, n, seed, samples, grids):
    sig = inrd_sigmas(grid, rho, n, grids)
    return sample(den, sig, rho, shape=(samples, 1, 32, 32), init=0.5, seed=seed, clip=clip)


def run_diffusers(unet, counter, name, nfe, seed, samples):
    import diffusers

    cls, options = DIFFUSERS[name]
    sched = getattr(diffusers, cls).from_config({**DDPM_CONFIG, **options})
    sched.set_timesteps((nfe + 1) // 2 if cls == "HeunDiscreteScheduler" else nfe)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, 1, 32, 32, generator=g) * sched.init_noise_sigma
    extra = {"generator": g} if "generator" in inspect.signature(sched.step).parameters else {}  # stochastic steps
    for t in sched.timesteps:
        eps = unet(sched.scale_model_input(x, t), t.expand(samples)).sample
        x = sched.step(eps, t, x, **extra).prev_sample
    return (x + 1) / 2


def best_inrd(results: dict, grids: dict, nfes, tie: float = 0.0006) -> dict:
    """Per NFE, the best inrd setting on the DDPM levels, as the checkpoint's ``sampling`` section
    (steps, rho, subgrid = 1-based DDPM timestep indices, clip): the lowest mean patch-SWD over seeds,
    where settings within ``tie`` of it (the sd of the real-vs-real floor: indistinguishable) are
    ranked by the mean spectrum distance."""
    best = {}
    for n in nfes:
        scored = [(float(np.mean([r["swd"] for r in per[str(n)]])), float(np.mean([r["spectrum"] for r in per[str(n)]])), name)
                  for name, per in results.items() if name.startswith("inrd ") and per.get(str(n))]
        scored = [x for x in scored if next(c for c in INRD if inrd_name(*c) == x[2])[1] != "karras"]  # off the DDPM levels
        if not scored:
            continue
        low = min(x[0] for x in scored)
        swd, _, name = min((x for x in scored if x[0] <= low + tie), key=lambda x: x[1])
        rho, grid, clip = next(c for c in INRD if inrd_name(*c) == name)
        sampling = {"steps": int(n), "rho": rho, "clip": clip}
        if grid == "power":
            sampling.update(grids["power"])
        elif grid != "pruned":
            sampling["subgrid"] = grids[f"{grid}/{rho}/{n}"]
        best[str(n)] = {"sampler": name, "swd": swd, "sampling": sampling}
    return best


def table(results: dict, floors: dict, nfes, trained: dict) -> str:
    keys = [("swd", "patch-SWD", 4), ("spectrum", "spectrum distance (RMS log10 power)", 3),
            ("spectrum_high", "top-band log10 power ratio (negative: missing fine detail)", 3),
            ("pixel_w1", "pixel W1", 4), ("std_ratio", "pixel std / data std (raw samples)", 2),
            ("ambiguous", "share of samples of ambiguous texture (top class probability < 0.9)", 2),
            ("max_share_gap", "largest gap of a texture's share from 1/3", 2)]
    lines = []
    for key, label, d in keys:
        f, t = floors[key], trained[key]
        lines += [f"\n**{label}** (mean +- sd over seeds; real-vs-real floor {f['mean']:.{d}f} +- {f['std']:.{d}f}; "
                  f"real crops of the training region {t['mean']:.{d}f} +- {t['std']:.{d}f})\n",
                  "| sampler | " + " | ".join(f"{n} NFE" for n in nfes) + " |", "|---" * (len(nfes) + 1) + "|"]
        for name, per in results.items():
            if not any(per.values()):
                continue
            cells = []
            for n in nfes:
                rs = per.get(str(n), [])
                if not rs:
                    cells.append("-")
                    continue
                v = np.array([r[key] for r in rs if key in r])
                if not v.size:  # a result cached before this metric existed
                    cells.append("-")
                    continue
                calls = {r["nfe"] for r in rs}
                tag = "" if calls == {n} else f" ({'/'.join(str(c) for c in sorted(calls))})"
                cells.append(f"{v.mean():.{d}f} +- {v.std(ddof=1) if len(v) > 1 else 0:.{d}f}{tag}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="inrd-small .safetensors (default: the bundled one)")
    p.add_argument("--out", default="out/quality_per_nfe")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--nfe", type=int, nargs="+", default=list(NFES))
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--only", nargs="+", default=None, help="run only samplers whose name contains one of these texts "
                   "(to split the work over processes); the others are only read from the cache")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--floor-draws", type=int, default=5, help="draws of real crops for the real-vs-real floors (default 5)")
    shipped = json.loads(BUNDLED.with_suffix(".json").read_text())["sampling"]
    p.add_argument("--power", type=float, default=shipped.get("power", 1.0), help="spacing power of the 'power' grid (default: the shipped rule)")
    p.add_argument("--first", type=int, default=shipped.get("first"), help="a_1 of the 'power' grid (default: the shipped rule)")
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args(argv)
    if a.floor_draws < 2:
        p.error(f"--floor-draws must be at least 2 (a floor's spread needs two draws), got {a.floor_draws}.")
    torch.set_num_threads(a.threads)
    out = io.ensure_writable_dir(a.out)
    (out / "runs").mkdir(exist_ok=True)
    den = build(a.weights, timestep="interp")
    sha = den.metadata["sha256"]
    counter = Counted(den.eps_model.unet)
    den.eps_model.unet = counter  # inrd's calls go through the counter too (UNetEps calls self.unet(x, t))
    ref = real_crops("ref", a.samples)
    floors = real_floors(ref, a.samples, a.floor_draws)
    trained = real_floors(ref, a.samples, a.floor_draws, part="train")
    classifier = fit_texture_classifier()
    coverage = lambda x: {k: v for k, v in texture_coverage(x, classifier).items() if k != "shares"}  # noqa: E731
    for part, stats in (("floor", floors), ("train", trained)):  # the same draws as real_floors
        draws = [coverage(real_crops(part, a.samples, 32, 2000 + i)) for i in range(a.floor_draws)]
        for key in ("ambiguous", "max_share_gap"):
            v = np.array([d[key] for d in draws])
            stats[key] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)), "draws": v.tolist()}
    grids = {**subgrids(out, a.nfe), "power": {"power": a.power, "first": a.first}}
    names = [inrd_name(*c) for c in INRD] + list(DIFFUSERS)
    results = {}
    for name in names:
        results[name] = {}
        for n in a.nfe:
            for seed in a.seeds:
                rule = f"_p{a.power}_f{a.first}" if " power" in name else ""  # another spacing rule is another sampler
                f = out / "runs" / f"{name.replace(' ', '_').replace('=', '-')}{rule}_{n}_{seed}_{sha[:12]}.json"
                cached = json.loads(f.read_text()) if f.is_file() else None
                mine = not a.report_only and (not a.only or any(o in name for o in a.only))
                if cached is not None and ("ambiguous" in cached or not mine):
                    r = cached
                elif not mine:
                    continue
                else:  # a new result, or a cached one from before mode coverage: sampling is deterministic, so rerun it
                    counter.calls = 0
                    t0 = time.process_time()
                    with torch.no_grad():
                        if name.startswith("inrd "):
                            rho, grid, clip = next(c for c in INRD if inrd_name(*c) == name)
                            x = run_inrd(den, counter, rho, grid, clip, n, seed, a.samples, grids)
                        else:
                            x = run_diffusers(counter, counter, name, n, seed, a.samples)
                    r = {"sampler": name, "nfe_budget": n, "nfe": counter.calls, "seed": seed, "weights_sha256": sha,
                         "cpu_seconds": round(time.process_time() - t0, 1), **sample_quality(x, ref), **coverage(x)}
                    if cached is not None and cached["swd"] != r["swd"]:
                        print(f"warning: {f.name} was not reproduced: patch-SWD {r['swd']} now, {cached['swd']} cached", flush=True)
                    io.write_json(f, r)
                    print(f"{name} {n} NFE seed {seed}: SWD {r['swd']:.4f} spectrum {r['spectrum']:.3f} W1 {r['pixel_w1']:.4f} "
                          f"std {r['std_ratio']:.2f} ({r['cpu_seconds']} s)", flush=True)
                results[name].setdefault(str(n), []).append(r)
    best = best_inrd(results, grids, a.nfe)
    f = np.array(floors["swd"]["draws"])
    for n, b in best.items():
        v = np.array([r["swd"] for r in results[b["sampler"]][n]])
        se = f", standard error {v.std(ddof=1) / np.sqrt(v.size):.4f} over {v.size} seeds" if v.size > 1 else ""
        print(f"best INRD setting at {n} NFE: {b['sampler']} (patch-SWD {b['swd']:.4f}{se}; {b['swd'] / f.mean():.3f} x the floor "
              f"{f.mean():.4f} +- {f.std(ddof=1) / np.sqrt(f.size):.4f} (standard error, {f.size} draws)); "
              f"sampling section {json.dumps(b['sampling'])}")
    report = {"weights_sha256": sha, "best_inrd": best, "samples": a.samples, "nfe": a.nfe, "seeds": a.seeds, "floor_draws": a.floor_draws, "floors": floors,
              "training_region": trained,
              "subgrids": grids, "results": results, "versions": io.versions()}
    io.write_json(out / "quality_per_nfe.json", report)
    io.write_text(out / "quality_per_nfe.md", table(results, floors, a.nfe, trained))
    print(table(results, floors, a.nfe, trained))
    return 0


if __name__ == "__main__":
    sys.exit(main())
