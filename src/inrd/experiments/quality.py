"""Sample quality against the number of steps: IND vs canonical INRD with the shipped inrd-small model.

The paper's headline experiment (Section 3.1, Fig. 2) runs IND (rho_t = 1) and INRD with the
canonical relaxation rho_t = 1 - sigma_{t-1}^2 / sigma_t^2 (= DDPM, eq. 21) on pruned DDPM grids
``sigma'_k = sigma_{a_k}`` and claims that "both IND and INRD produce convincing samples, even for 20
steps". Here the denoiser is our own DDPM model (:mod:`inrd.denoisers.small`), so the claim can be
measured instead of eyeballed:

* quality = multi-scale patch sliced-Wasserstein distance (:func:`inrd.metrics.patch_swd`, 7x7
  patches at scales 1, 1/2, 1/4) between the samples and ``samples`` real crops of the held-out
  region ("ref", never seen in training);
* its noise floor = the same distance between two sets of real held-out crops from disjoint regions
  ("floor" vs "ref"), over several draws: a perfect sampler cannot do better than this, and gaps
  smaller than its spread are not significant;
* two independent views, each with the same real-vs-real floor: the radial power spectrum distance
  (:func:`inrd.metrics.spectrum_distance`, RMS log10 power difference; its top band tells missing
  fine detail) and the pixel-marginal W1 (:func:`inrd.metrics.pixel_w1`), plus the pixel-std ratio
  (:func:`sample_quality`, :func:`real_floors`);
* memorisation = RMS distance ``d`` of each sample to its nearest training crop (every position of
  the training region), also relative to the sample's own pixel std (``d / std``, ~0 for a copy), and
  the share of samples with ``d / std`` below the 5th percentile of real held-out crops (about 0.05
  for samples as novel as real crops, near 1 for a sampler that copies training crops).

Samples start at V_T = 0.5 as in the paper, use one noise generator per sample (seeded), and are
clamped to [0, 1] before measuring (the fraction of pixels that needed clamping by more than 1/255 is
recorded). Cost: one network call per step and per batch, i.e. 2 x 1430 calls of a batch of
``samples`` images; with the default ``samples=32`` it took 815 s of wall time (454 s of CPU) on one
thread of a loaded, shared 2-core machine (docs/small_model.md). The experiment writes
``quality.json`` (every number and parameter), ``quality.png`` (SWD and nearest-neighbour distance
against the steps), ``quality_samples.png`` (the first 8 samples of every run, plus real crops) and
``quality_samples.safetensors`` (every raw sample).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .. import io
from ..denoisers.small import build
from ..metrics import nearest_crop_distance, patch_swd, pixel_w1, spectrum_distance
from ..sampler import sample
from ..schedules import ddpm, prune
from ..textures import random_crops, region
from .common import save_figure_grid

__all__ = ["run", "STEPS", "sample_quality", "real_floors", "real_crops"]

STEPS = (1000, 250, 100, 50, 20, 10)
METHODS = {"ind": "IND (rho = 1)", "canonical": "INRD canonical (= DDPM)"}


def _real(part: str, n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random crops of a data split and their texture indices."""
    return random_crops(region(part), n, size, torch.Generator().manual_seed(seed), return_index=True)


def real_crops(part: str, n: int, size: int = 32, seed: int = 1000) -> torch.Tensor:
    """``n`` seeded random crops (n, 1, size, size) of a data split ("ref": the reference set, seed 1000)."""
    return _real(part, n, size, seed)[0]


def sample_quality(x: torch.Tensor, ref: torch.Tensor) -> dict:
    """Every quality number of a set of raw samples ``x`` (N, 1, H, W) against real crops ``ref``.

    The samples are clamped to [0, 1] before measuring (as when saved); ``out_of_range_fraction`` is the
    share of raw pixels more than 1/255 outside [0, 1]. ``swd``: :func:`inrd.metrics.patch_swd`;
    ``spectrum``: RMS log10 radial-power difference (:func:`inrd.metrics.spectrum_distance`) and
    ``spectrum_high``: its mean over the top third of frequencies (negative = missing detail);
    ``pixel_w1``: W1 between the pixel marginals; ``std_ratio``: pixel std of the raw samples / that of ``ref``.
    """
    xc = x.clamp(0, 1)
    spec = spectrum_distance(xc, ref)
    return {
        "swd": patch_swd(xc, ref)["swd"],
        "spectrum": spec["distance"],
        "spectrum_high": spec["band_log_ratio"][-1],
        "pixel_w1": pixel_w1(xc, ref),
        "std_ratio": float(x.double().std() / ref.double().std()),
        "mean": float(xc.mean()),
        "out_of_range_fraction": float(((x < -1 / 255) | (x > 1 + 1 / 255)).float().mean()),
    }


def real_floors(ref: torch.Tensor, samples: int, draws: int = 5, part: str = "floor") -> dict:
    """Noise floor of every number of :func:`sample_quality`: real crops of the data split ``part`` vs
    ``ref`` over ``draws`` seeded draws of ``samples`` crops; ``{metric: {"mean", "std", "draws"}}`` (std
    with ddof 1). ``"floor"`` (the default) shares ``ref``'s held-out columns; ``"train"`` is the law the
    network learned, whose distance to ``ref`` includes the textures' drift across the image."""
    runs = [sample_quality(real_crops(part, samples, ref.shape[-1], 2000 + i), ref) for i in range(draws)]
    out = {}
    for key in ("swd", "spectrum", "spectrum_high", "pixel_w1", "std_ratio"):
        v = np.array([r[key] for r in runs])
        out[key] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if draws > 1 else None, "draws": v.tolist()}
    return out


def run(
    out_dir,
    samples: int = 32,
    steps=STEPS,
    seed: int = 0,
    weights=None,
    floor_draws: int = 5,
    threads: int | None = None,
    progress: bool = True,
    **_,
) -> dict:
    """Run the experiment into ``out_dir``; return the JSON dict (see the module docstring)."""
    if int(samples) != samples or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}.")
    if threads is None:
        return _run(out_dir, samples, steps, seed, weights, floor_draws, progress)
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        return _run(out_dir, samples, steps, seed, weights, floor_draws, progress)
    finally:
        torch.set_num_threads(previous)


#: what each number of quality.json measures
METRIC = {
    "swd": "patch_swd(patch=7, scales=3 (1, 1/2, 1/4), projections=512, seed=0), image units",
    "spectrum": "RMS over radii of the log10 radial power spectrum difference (metrics.spectrum_distance); "
    "spectrum_high: its mean over the top third of frequencies",
    "pixel_w1": "W1 between pixel marginals (metrics.pixel_w1), image units",
    "std_ratio": "pixel std of the raw samples / that of the reference crops",
    "nn": "RMS distance to the nearest training crop (any position of the training region)",
    "nn_rel": "nn / pixel std of the image (a copy of a training crop has ~0)",
    "closer_than_real": "share of images with nn_rel below the 5th percentile of nn_rel over real held-out "
    "crops: ~0.05 for novel images, -> 1 for copies",
}


class _Memorisation:
    """d = RMS distance to the nearest training crop. It depends on the texture (flat brick crops have close
    neighbours, grass crops do not), so it is also given relative to the image's own pixel std, r = d / std
    (a copy has r ~ 0). The reference is real held-out crops (``calibration``): "closer_than_real" is the
    share of images with r below the 5th percentile of r over real crops, about 0.05 for images as novel
    as real ones and -> 1 for copies of training crops."""

    def __init__(self, train_images: torch.Tensor, calibration: torch.Tensor):
        self.train_images = train_images
        self.r_q05 = float(torch.quantile(self.distances(calibration)[1], 0.05))

    def distances(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        d, _ = nearest_crop_distance(x, self.train_images)
        return d, d / x.flatten(1).std(1).double().clamp(min=1e-3)

    def __call__(self, x) -> dict:
        d, r = self.distances(x)
        return {
            "nn_median": float(d.median()),
            "nn_min": float(d.min()),
            "nn_rel_median": float(r.median()),
            "closer_than_real": float((r < self.r_q05).double().mean()),
        }


def _score(x: torch.Tensor, ref: torch.Tensor, memorisation: _Memorisation) -> dict:
    """The numbers of one (method, steps) run of raw samples ``x`` against the reference crops."""
    out_of_range = float(((x < -1 / 255) | (x > 1 + 1 / 255)).float().mean())
    xc = x.clamp(0, 1)
    swd = patch_swd(xc, ref)
    q = sample_quality(x, ref)
    return {
        "swd": swd["swd"],
        "swd_per_scale": swd["per_scale"],
        **memorisation(xc),
        **{k: q[k] for k in ("spectrum", "spectrum_high", "pixel_w1", "std_ratio")},
        "out_of_range_fraction": out_of_range,
        "mean": float(xc.mean()),
        "std": float(xc.std()),
    }


def _save(out, result: dict, kept: dict, tiles: dict, steps, size: int, seed: int) -> None:
    io.write_json(out / "quality.json", result)
    from safetensors.torch import save_file

    with io.atomic_path(out / "quality_samples.safetensors") as tmp:
        save_file(kept, str(tmp))  # the raw (unclamped) samples, for later analysis
    _plot(out / "quality.png", result)
    rows = [[tiles[(rho, n)] for n in steps] for rho in METHODS]
    shown = _real("ref", 8 * len(steps), size, 4000)[0]  # real held-out crops, for the eye
    rows.append([shown[8 * i : 8 * i + 8] for i in range(len(steps))])
    save_figure_grid(
        out / "quality_samples.png",
        rows,
        [METHODS[m] for m in METHODS] + ["real held-out crops"],
        [f"{n} steps" for n in steps],
        "inrd-small: IND vs canonical INRD on pruned DDPM grids (first 8 samples, seed %d)" % seed,
    )


def _run(out_dir, samples, steps, seed, weights, floor_draws, progress) -> dict:
    out = io.ensure_writable_dir(out_dir)
    den = build(weights)
    size = den.sampling_defaults.size

    ref = _real("ref", samples, size, 1000)[0]
    floors = [patch_swd(_real("floor", samples, size, 2000 + i)[0], ref) for i in range(floor_draws)]
    floor_swd = np.array([f["swd"] for f in floors])
    floor_all = real_floors(ref, samples, floor_draws)
    train_vs_ref = patch_swd(_real("train", samples, size, 3000)[0], ref)
    memorisation = _Memorisation(region("train")[:, None], _real("floor", max(samples, 96), size, 5000)[0])
    heldout = {**memorisation(ref), "rel_q05_of_real": memorisation.r_q05}

    runs, tiles, kept = [], {}, {}
    for rho in METHODS:
        for n in steps:
            t0 = time.perf_counter()
            x = sample(den, prune(ddpm(), n), rho, shape=(samples, 1, size, size), init=0.5, seed=seed, progress=progress)
            seconds = time.perf_counter() - t0
            runs.append({"method": rho, "steps": int(n), **_score(x, ref, memorisation), "seconds": round(seconds, 1)})
            tiles[(rho, n)] = x.clamp(0, 1)[:8]
            kept[f"{rho}_{n}"] = x.float().contiguous()
            if progress:
                r = runs[-1]
                print(f"{rho:9s} {n:5d} steps: SWD {r['swd']:.4f} (floor {floor_swd.mean():.4f}), spectrum {r['spectrum']:.3f} "
                      f"(floor {floor_all['spectrum']['mean']:.3f}), pixel W1 {r['pixel_w1']:.4f} "
                      f"(floor {floor_all['pixel_w1']['mean']:.4f}), NN/std {r['nn_rel_median']:.3f}, "
                      f"closer than real {r['closer_than_real']:.2f}, {seconds:.0f} s")

    result = {
        "experiment": "quality vs steps, IND vs canonical INRD, pruned DDPM grids, inrd-small",
        "denoiser": "inrd-small",
        "weights_sha256": den.metadata.get("sha256"),
        "samples": int(samples),
        "seed": int(seed),
        "image_size": size,
        "init": 0.5,
        "metric": METRIC,
        "floor": {
            "swd_mean": float(floor_swd.mean()),
            "swd_std": float(floor_swd.std(ddof=1)) if floor_draws > 1 else None,
            "swd_draws": floor_swd.tolist(),
            "swd_per_scale_mean": np.mean([f["per_scale"] for f in floors], 0).tolist(),
            "what": "SWD between two sets of real held-out crops from disjoint regions (floor vs ref)",
        },
        "floors": floor_all,
        "train_vs_ref_swd": train_vs_ref["swd"],
        "heldout": heldout,
        "data_mean": float(ref.mean()),
        "data_std": float(ref.std()),
        "runs": runs,
        "versions": io.versions(),
    }
    _save(out, result, kept, tiles, steps, size, seed)
    return {**result, "png": str(out / "quality.png")}


def _plot(path, r: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for m, label in METHODS.items():
        rs = [x for x in r["runs"] if x["method"] == m]
        axes[0].plot([x["steps"] for x in rs], [x["swd"] for x in rs], "o-", label=label)
        axes[1].plot([x["steps"] for x in rs], [x["nn_rel_median"] for x in rs], "o-", label=label)
    f = r["floor"]
    lo = f["swd_mean"] - 2 * (f["swd_std"] or 0)
    hi = f["swd_mean"] + 2 * (f["swd_std"] or 0)
    axes[0].axhspan(lo, hi, color="gray", alpha=0.3, label="floor (real vs real, mean +- 2 sd)")
    axes[0].axhline(r["train_vs_ref_swd"], color="gray", ls=":", label="training crops vs held-out")
    axes[1].axhline(r["heldout"]["nn_rel_median"], color="gray", ls="--", label="real held-out crops")
    axes[0].set_ylabel("patch SWD to held-out crops")
    axes[1].set_ylabel("median (distance to nearest training crop\n/ pixel std of the image)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("steps (pruned DDPM grid)")
        ax.legend(fontsize=7)
    fig.suptitle(f"inrd-small, {r['samples']} samples per point", fontsize=9)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=110)
