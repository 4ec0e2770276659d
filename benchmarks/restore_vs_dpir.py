"""inrd's default restoration (HQS) against deepinv's DPIR as deepinv's users run it, on photographs that
no table or default of inrd was tuned on.

Ten 256x256 crops (colour and gray) of photographs that ship inside installed packages and are not among
the restore table's 14: matplotlib's ``grace_hopper.jpg`` and scikit-image's ``motorcycle_left``,
``motorcycle_right``, ``hubble_deep_field`` and ``cell``. Each crop is written to ``OUT/crops/`` and run
through :func:`inrd.experiments.restore_table.run` (the same observations, tasks, deepinv operators, raw
denoiser and call counting as ``inrd reproduce restore-table``) with the methods ``hqs`` (inrd's
default, through :func:`inrd.restoration.restore`), ``deepinv-dpir`` (``deepinv.optim.DPIR`` on
deepinv's own ``BlurFFT`` / ``Downsampling`` / ``Inpainting`` / ``Denoising``, its own start) and
``deepinv-dpir-levels`` (DPIR's rule with as many levels as HQS, inpainting only), all with the
pretrained FFDNet. Prints, per task, the mean PSNR of each method, the images where HQS is above each
DPIR, the denoiser calls per image and the ratio of HQS's seconds to DPIR's (same process, same load).
Resumable (the table's cache in OUT). Results: docs/restoration.md.

    python benchmarks/restore_vs_dpir.py --out /tmp/restore_vs_dpir      # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from inrd import io
from inrd.experiments import restore_table

#: (name, source, top, left, gray): 256 px crops of photographs the table does not hold
CROPS = (
    ("grace_hopper-face", "matplotlib:grace_hopper.jpg", 40, 128, False),
    ("grace_hopper-gray", "matplotlib:grace_hopper.jpg", 300, 128, True),
    ("motorcycle_left-a", "skimage:motorcycle_left.png", 122, 0, False),
    ("motorcycle_left-b", "skimage:motorcycle_left.png", 122, 485, False),
    ("motorcycle_right-gray", "skimage:motorcycle_right.png", 0, 240, True),
    ("motorcycle_right-c", "skimage:motorcycle_right.png", 244, 240, False),
    ("hubble-a", "skimage:hubble_deep_field.jpg", 0, 0, False),
    ("hubble-b", "skimage:hubble_deep_field.jpg", 500, 600, False),
    ("cell-a", "skimage:cell.png", 100, 100, True),
    ("cell-b", "skimage:cell.png", 350, 250, True),
)
METHODS = ("hqs", "deepinv-dpir", "deepinv-dpir-levels")
SIZE = 256


def _source(spec: str) -> Path:
    package, name = spec.split(":")
    if package == "matplotlib":
        import matplotlib.cbook

        return Path(matplotlib.cbook.get_sample_data(name, asfileobj=False))
    import skimage.data

    return Path(skimage.data.__file__).parent / name


def write_crops(folder: Path) -> list[str]:
    """The crops of :data:`CROPS` as PNG files in ``folder`` (kept if already there); their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, spec, top, left, gray in CROPS:
        path = folder / f"{name}.png"
        if not path.exists():
            x = io.load_image(_source(spec))[..., top : top + SIZE, left : left + SIZE]
            if gray and x.shape[1] == 3:  # ITU-R BT.601 luma
                x = (torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1) * x).sum(1, keepdim=True)
            assert x.shape[-2:] == (SIZE, SIZE), f"{name}: crop outside {spec}"
            io.save_image(path, x[0])
        paths.append(str(path))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="restore_vs_dpir", help="output folder (crops, the table's cache, JSON, markdown)")
    args = ap.parse_args()
    out = Path(args.out)
    images = write_crops(out / "crops")
    result = restore_table.run(out_dir=out, images=images, size=SIZE, methods=METHODS, progress=True)
    for task, s in result["summary"].items():
        line = ", ".join(f"{m} {v['psnr']:.2f} dB ({v['calls']:.0f} calls)" for m, v in s.items())
        rows = [result["results"][f"{task}|{p}"] for p in images]
        ratio = sum(r["hqs"]["seconds"] for r in rows) / sum(r["deepinv-dpir"]["seconds"] for r in rows)
        wins = f"hqs above deepinv-dpir on {s['hqs']['wins_over_deepinv_dpir']}/{len(rows)}"
        if "wins_over_deepinv_dpir_levels" in s["hqs"]:
            wins += f", above deepinv-dpir-levels on {s['hqs']['wins_over_deepinv_dpir_levels']}/{len(rows)}"
        print(f"{task}: {line}; {wins}; seconds hqs / deepinv-dpir = {ratio:.2f}x")
    print(json.dumps({"images": [c[0] for c in CROPS], "summary": result["summary"]}))


if __name__ == "__main__":
    main()
