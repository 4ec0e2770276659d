"""Noise-level estimators (:mod:`inrd.restoration.noise_level`) on photographs nobody tuned them on.

For each image (a central ``size`` crop of a scikit-image photograph or matplotlib's
``grace_hopper.jpg``, colour kept colour, gray kept gray) and each condition:

* ``clean``: the 8-bit image itself (truth 0: what an estimator reads is its floor, counted as error);
* ``noisy nu``: the image plus Gaussian noise of std nu, float, unclipped (as ``observe`` simulates);
* ``jpeg qQ``: the clean image saved as JPEG of quality Q (truth 0: blocks must not read as noise);
* ``noisy nu + jpeg qQ``: 8-bit noisy image saved as JPEG; truth = the std of
  ``jpeg(x + w) - jpeg(x)``, the noise the JPEG kept.

prints, per estimator, the mean absolute error (x 255, i.e. in 8-bit levels) and, where the truth is
> 0, the median and mean relative error over the images, per condition and per group of conditions. Results: docs/real_photographs.md.

    python benchmarks/noise_level.py
    python benchmarks/noise_level.py --images chelsea rocket --size 128
"""

from __future__ import annotations

import argparse
import io
import math

import numpy as np
import torch
from PIL import Image

from inrd.restoration.noise_level import ESTIMATORS

IMAGES = ["chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "coins", "page", "grass",
          "gravel", "retina", "grace_hopper"]
NUS = (0.01, 0.02, 0.05, 0.1, 0.2)


def photograph(name: str, size: int) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 central crop."""
    if name == "grace_hopper":
        import matplotlib.cbook

        a = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    else:
        import skimage.data

        a = np.asarray(getattr(skimage.data, name)())
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    if a.dtype != np.uint8:
        a = (255 * (a.astype(np.float64) / max(float(a.max()), 1e-12))).round().astype(np.uint8)
    H, W = a.shape[:2]
    i, j = max(0, (H - size) // 2), max(0, (W - size) // 2)
    return a[i:i + size, j:j + size]


def jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())))


def tensor(a: np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(a.astype(np.float64) / 255.0)
    return (t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]).float()


def conditions(a: np.ndarray, seed: int):
    """(condition, observation, true nu) for one uint8 image."""
    x = tensor(a)
    yield "clean", x, 0.0
    g = torch.Generator().manual_seed(seed)
    for nu in NUS:
        yield f"noisy {nu:g}", x + nu * torch.randn(x.shape, generator=g), nu
    for q in (75, 95):
        yield f"jpeg q{q}", tensor(jpeg(a, q)), 0.0
    for nu in (0.02, 0.05):
        noisy = (a.astype(np.float64) + 255 * nu * torch.randn(a.shape, generator=g).numpy()).clip(0, 255).round().astype(np.uint8)
        kept = float(np.std(jpeg(noisy, 90).astype(np.float64) - jpeg(a, 90).astype(np.float64))) / 255
        yield f"noisy {nu:g} + jpeg q90", tensor(jpeg(noisy, 90)), kept


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", nargs="+", default=IMAGES)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--verbose", action="store_true", help="one line per image and condition")
    a = p.parse_args(argv)
    err: dict = {}  # (estimator, condition) -> list of (abs error, relative error or nan)
    for k, name in enumerate(a.images):
        img = photograph(name, a.size)
        for cond, y, truth in conditions(img, seed=k):
            line = []
            for est, f in ESTIMATORS.items():
                v = f(y)
                rel = abs(v - truth) / truth if truth > 0 else math.nan
                err.setdefault((est, cond), []).append((abs(v - truth), rel))
                line.append(f"{est} {255 * v:6.2f}")
            if a.verbose:
                print(f"{name:<22} {cond:<20} truth {255 * truth:6.2f}  " + "  ".join(line), flush=True)
    conds = list(dict.fromkeys(c for _, c in err))
    print(f"{len(a.images)} images, {a.size} px; per estimator: mean |error| x 255 (8-bit levels), "
          f"then where the truth is > 0 the median and mean relative error over the images")
    print(f"{'condition':<22}" + "".join(f"{e:>24}" for e in ESTIMATORS))
    groups = [(c, [c]) for c in conds]
    groups += [("all Gaussian noisy", [c for c in conds if c.startswith("noisy") and "jpeg" not in c]),
               ("all noisy + jpeg", [c for c in conds if c.startswith("noisy") and "jpeg" in c]),
               ("all clean / jpeg", [c for c in conds if not c.startswith("noisy")])]
    for label, cs in groups:
        row = []
        for e in ESTIMATORS:
            v = np.array([x for c in cs for x in err[(e, c)]])
            text = f"{255 * v[:, 0].mean():6.2f}"
            if not np.isnan(v[:, 1]).all():
                text += f" | {100 * np.nanmedian(v[:, 1]):5.1f} {100 * np.nanmean(v[:, 1]):6.1f} %"
            else:
                text += " " * 17
            row.append(text)
        print(f"{label:<22}" + "".join(f"{r:>24}" for r in row))

if __name__ == "__main__":
    main()
