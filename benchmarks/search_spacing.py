"""Choose inrd-small's default grid by search on held-out data: the power-law pruning of its 1000 DDPM
levels (``a_1 = first``, ``a_n = 1000``, ``a_k`` spaced as ``((k - 1) / (n - 1))^power``;
:func:`inrd.schedules.prune_indices`) with the lowest patch-SWD at a given number of network calls.

    python benchmarks/search_spacing.py            # ~20 min of one CPU thread at the defaults; resumable
    python benchmarks/search_spacing.py --powers 2.5 --firsts 10 --etas 0 0.3 0.5 0.7 1 --out out/search_eta   # DDIM's eta

The selection is kept apart from what ``benchmarks/quality_per_nfe.py`` then reports: it scores
samples of other seeds (10, 11, 12 against 0, 1, 2) against real crops of the *floor* region (the
benchmark's reference is the *ref* region), with 64 samples per seed. Every (power, first, seed)
result is cached as JSON under ``--out/runs``; ``search_spacing.json`` holds the table and the choice:
the lowest mean patch-SWD, settings within the sd of the real-vs-real floor of that mean ranked by the
spectrum distance. The floor printed is real crops of the ref region against the floor-region crops.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from inrd import io, sample
from inrd import schedules as S
from inrd.denoisers.small import build
from inrd.experiments.quality import real_crops, sample_quality
from inrd.relaxations import ddim_eta


def score(den, sigmas, rho, clip: str, seeds, samples: int, ref) -> list[dict]:
    out = []
    for seed in seeds:
        with torch.no_grad():
            x = sample(den, sigmas, rho, shape=(samples, 1, 32, 32), init=0.5, seed=seed, clip=clip)
        out.append(sample_quality(x, ref))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nfe", type=int, default=20, help="network calls = INRD steps (default 20)")
    p.add_argument("--rho", default="ddim", help="relaxation (default ddim)")
    p.add_argument("--clip", default="x0", choices=("none", "denoised", "x0"))
    p.add_argument("--powers", type=float, nargs="+", default=[1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
    p.add_argument("--firsts", type=int, nargs="+", default=[1, 10, 25, 50])
    p.add_argument("--etas", type=float, nargs="+", default=[0.0],
                   help="with --rho ddim: DDIM's eta (inrd.relaxations.ddim_eta; 0 = ddim, 1 = canonical)")
    p.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12])
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--out", default="out/search_spacing")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = io.ensure_writable_dir(a.out)
    (out / "runs").mkdir(exist_ok=True)
    den = build(None, timestep="interp")
    sha = den.metadata["sha256"][:12]
    ref = real_crops("floor", a.samples, seed=3000)  # not the benchmark's reference region
    floor = [sample_quality(real_crops("ref", a.samples, 32, 4000 + i), ref)["swd"] for i in range(5)]
    f_mean, f_sd = float(np.mean(floor)), float(np.std(floor, ddof=1))
    print(f"floor (ref-region crops vs floor-region crops, {a.samples} each, 5 draws): patch-SWD {f_mean:.4f} +- {f_sd:.4f}")
    if a.etas != [0.0] and a.rho != "ddim":
        p.error("--etas needs --rho ddim (the eta family runs from ddim, eta 0, to canonical, eta 1)")
    rows = []
    for power, first, eta in ((p_, f, e) for p_ in a.powers for f in a.firsts for e in a.etas):
        name = f"{a.rho}_{a.clip}_n{a.nfe}_p{power}_f{first}" + (f"_eta{eta}" if eta else "") + f"_{sha}"
        cached = out / "runs" / f"{name}.json"
        if cached.is_file():
            r = json.loads(cached.read_text())
        else:
            idx = S.prune_indices(1000, a.nfe, power, first)
            sigmas = S.ddpm()[idx]
            runs = score(den, sigmas, ddim_eta(sigmas, eta) if eta else a.rho, a.clip, a.seeds, a.samples, ref)
            r = {"power": power, "first": first, "eta": eta, "indices": idx.tolist(), "seeds": a.seeds, "runs": runs,
                 **{k: float(np.mean([q[k] for q in runs])) for k in ("swd", "spectrum", "pixel_w1", "std_ratio")}}
            io.write_json(cached, r)
        rows.append(r)
        print(f"power {power:4.2f} first {first:3d} eta {eta:.2f}: patch-SWD {r['swd']:.4f} spectrum {r['spectrum']:.3f} "
              f"pixel W1 {r['pixel_w1']:.4f} std ratio {r['std_ratio']:.2f}", flush=True)
    low = min(r["swd"] for r in rows)
    best = min((r for r in rows if r["swd"] <= low + f_sd), key=lambda r: r["spectrum"])
    print(f"chosen: power {best['power']} first {best['first']} eta {best.get('eta', 0.0)} (patch-SWD {best['swd']:.4f}, spectrum {best['spectrum']:.3f}); "
          f"sampling section: {{\"steps\": {a.nfe}, \"rho\": \"{a.rho}\", \"clip\": \"{a.clip}\", \"power\": {best['power']}, \"first\": {best['first']}}}")
    io.write_json(out / "search_spacing.json", {"nfe": a.nfe, "rho": a.rho, "clip": a.clip, "samples": a.samples, "seeds": a.seeds,
                                                 "floor": {"mean": f_mean, "std": f_sd, "draws": floor}, "rows": rows,
                                                 "chosen": {"power": best["power"], "first": best["first"], "eta": best.get("eta", 0.0)}, "weights_sha256": sha,
                                                 "versions": io.versions()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
