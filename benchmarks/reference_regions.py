"""Which reference, which floor? inrd-small's samples and real crops of every data region, scored against
both held-out regions, with the mode coverage of each.

    python benchmarks/reference_regions.py        # ~15 min of one CPU thread; resumable
    python benchmarks/reference_regions.py --weights RUN/inrd_small.safetensors --out out/reference_regions_RUN

``benchmarks/quality_per_nfe.py`` scores samples against 32 crops of the held-out ``ref`` region and
calls the distance of 32 crops of the other held-out region (``floor``) to them the floor. This script
asks what that floor measures. Rows:

* real crops of the ``train`` region (the law the network learned), of ``floor`` and of ``ref``
  (5 draws of 32 crops, seeds 2000-2004; crops of the reference's own region are other random windows
  of the same 128 x 64 pixels, so they may overlap the reference crops: an optimistic floor);
* ``inrd sample``'s default setting for 5, 10, 20 and 50 steps (the shipped JSON's ``sampling`` and
  ``by_steps``, also for other ``--weights``), seeds 0-5, and DDPM itself (canonical INRD on all 1000
  levels), seeds 0-5.

Columns: patch-SWD (:func:`inrd.metrics.patch_swd`) against the ``ref`` crops of the benchmark (32,
seed 1000) and against 32 ``floor`` crops (seed 3000), mean +- sd over draws or seeds; then mode
coverage (:mod:`inrd.experiments.texture_classes`): the share of images whose texture is ambiguous
(top class probability < 0.9) and the largest gap of a texture's share from 1/3; first, the
classifier's own check: its accuracy on 300 crops of each held-out region, and the ambiguous share of
pixel averages of two textures' held-out crops and of white noise. Every (row, seed)
result is cached as JSON under ``--out/runs``; ``reference_regions.md`` and ``.json`` hold the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from inrd import io, sample
from inrd import schedules as S
from inrd.denoisers.small import build
from inrd.experiments.quality import real_crops, sample_quality
from inrd.experiments.texture_classes import fit_texture_classifier, texture_coverage

STEPS = (5, 10, 20, 50)
SEEDS = tuple(range(6))
DDPM_SEEDS = (0, 1, 2, 3, 4, 5)
DRAWS = tuple(range(2000, 2005))


def rows(den, defaults, samples: int, ddpm_seeds=DDPM_SEEDS) -> dict:
    """Row name -> (list of seeds, function seed -> images); ``defaults``: the shipped sampling settings."""
    out = {f"real crops: {part} region": (DRAWS, lambda s, part=part: real_crops(part, samples, 32, s)) for part in ("train", "floor", "ref")}
    for n in STEPS:
        d = defaults.for_steps(n)
        out[f"inrd sample --steps {n} ({d.rho}, clip {d.clip})"] = (
            SEEDS, lambda s, d=d, n=n: sample(den, d.sigmas(n), d.rho, shape=(samples, 1, 32, 32), init=0.5, seed=s, clip=d.clip))
    out["DDPM, 1000 steps (canonical INRD)"] = (
        tuple(ddpm_seeds), lambda s: sample(den, S.ddpm(), "canonical", shape=(samples, 1, 32, 32), init=0.5, seed=s))
    return out


def classifier_check(classifier) -> str:
    """Accuracy on held-out crops and what the ambiguous share sees (blends) and misses (noise)."""
    from inrd.experiments.quality import _real
    from inrd.textures import TEXTURES, random_crops, region

    lines = []
    for part in ("ref", "floor"):
        x, label = _real(part, 300, 32, 11)
        right = int((classifier.probabilities(x).argmax(1) == label).sum())
        lines.append(f"* {part} region: {right} of 300 crops classified right, ambiguous {texture_coverage(x, classifier)['ambiguous']:.2f}")
    g = torch.Generator().manual_seed(5)
    crops = [random_crops(region("ref")[k : k + 1], 50, 32, g) for k in range(3)]
    for i, j in ((0, 1), (1, 2), (0, 2)):
        cov = texture_coverage((crops[i] + crops[j]) / 2, classifier)
        top = max(cov["shares"], key=cov["shares"].get)
        lines.append(f"* pixel average of {TEXTURES[i]} and {TEXTURES[j]} crops (50): ambiguous {cov['ambiguous']:.2f}, most called {top}")
    cov = texture_coverage(0.5 + 0.12 * torch.randn(50, 1, 32, 32, generator=g), classifier)
    lines.append(f"* white noise (std 0.12, 50): ambiguous {cov['ambiguous']:.2f}, most called {max(cov['shares'], key=cov['shares'].get)}")
    return "\n".join(lines) + "\n"


def table(results: dict) -> str:
    head = ("| images | seeds | patch-SWD vs ref | patch-SWD vs floor | ambiguous texture | largest share gap |\n"
            "|---|---|---|---|---|---|")
    lines = [head]
    for name, rs in results.items():
        if not rs:
            continue
        cells = []
        for key, d in (("swd_ref", 4), ("swd_floor", 4), ("ambiguous", 2), ("max_share_gap", 2)):
            v = np.array([r[key] for r in rs])
            cells.append(f"{v.mean():.{d}f} +- {v.std(ddof=1):.{d}f}")
        lines.append(f"| {name} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="inrd-small .safetensors (default: the bundled one)")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--ddpm-seeds", type=int, nargs="*", default=list(DDPM_SEEDS), help="seeds of the 1000-step DDPM row (none: no row)")
    p.add_argument("--out", default="out/reference_regions")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = io.ensure_writable_dir(a.out)
    (out / "runs").mkdir(exist_ok=True)
    den = build(a.weights, timestep="interp")
    defaults = build(None).sampling_defaults
    sha = den.metadata["sha256"]
    refs = {"ref": real_crops("ref", a.samples), "floor": real_crops("floor", a.samples, seed=3000)}
    classifier = fit_texture_classifier()
    check = classifier_check(classifier)
    print(check, flush=True)
    results = {}
    for name, (seeds, images) in rows(den, defaults, a.samples, a.ddpm_seeds).items():
        results[name] = []
        for seed in seeds:
            f = out / "runs" / f"{name.split(' (')[0].replace(' ', '_').replace(':', '').replace(',', '')}_{seed}_{a.samples}_{sha[:12]}.json"
            if f.is_file():
                r = json.loads(f.read_text())
            else:
                t0 = time.process_time()
                with torch.no_grad():
                    x = images(seed)
                r = {"images": name, "seed": seed, "samples": a.samples, "weights_sha256": sha,
                     **{f"swd_{k}": sample_quality(x, ref)["swd"] for k, ref in refs.items()},
                     **texture_coverage(x, classifier), "cpu_seconds": round(time.process_time() - t0, 1)}
                io.write_json(f, r)
            results[name].append(r)
        print(table({name: results[name]}).splitlines()[-1], flush=True)
    io.write_json(out / "reference_regions.json", {"weights_sha256": sha, "samples": a.samples, "results": results,
                                                   "versions": io.versions()})
    io.write_text(out / "reference_regions.md", "Texture classifier:\n\n" + check + "\n" + table(results))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
