"""The data of inrd-small: three grayscale textures of scikit-image, split into training and held-out regions.

The textures brick, grass and gravel ship with scikit-image, so training and the quality experiments
run offline. Each 512 x 512 texture is averaged 2 x 2 down to 256 x 256, so a 32 x 32 crop holds a few
bricks / stones / blades. The rightmost 64 columns of every texture are held out: their top half
(``"ref"``) is the reference set of the quality experiment, their bottom half (``"floor"``) an
independent real set for the metric's noise floor. Training crops come from the left 192 columns only
(``"train"``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["TEXTURES", "DOWNSAMPLE", "HOLDOUT_COLUMNS", "Split", "texture_images", "region", "random_crops", "description"]

TEXTURES = ("brick", "grass", "gravel")
DOWNSAMPLE = 2  # 512 x 512 -> 256 x 256 by 2 x 2 averaging
HOLDOUT_COLUMNS = 64  # rightmost columns of each downsampled texture, never seen in training
Split = Literal["train", "ref", "floor"]


def texture_images() -> torch.Tensor:
    """The three textures as a (3, 256, 256) float32 tensor in [0, 1] (2 x 2 block means)."""
    import skimage.data

    ims = [torch.from_numpy(np.asarray(getattr(skimage.data, n)(), dtype=np.float32) / 255.0) for n in TEXTURES]
    x = torch.stack(ims)[:, None]
    return F.avg_pool2d(x, DOWNSAMPLE)[:, 0].contiguous()


def region(part: Split) -> torch.Tensor:
    """Pixels of one split, (3, H, W): ``"train"`` (256 x 192), ``"ref"`` / ``"floor"`` (128 x 64 each,
    top / bottom half of the held-out columns)."""
    x = texture_images()
    W = x.shape[-1]
    cut = W - HOLDOUT_COLUMNS
    if part == "train":
        return x[:, :, :cut].contiguous()
    half = x.shape[1] // 2
    if part == "ref":
        return x[:, :half, cut:].contiguous()
    if part == "floor":
        return x[:, half:, cut:].contiguous()
    raise ValueError(f"unknown data split {part!r}; use 'train', 'ref' or 'floor'.")


def random_crops(images: torch.Tensor, n: int, size: int, generator: torch.Generator, return_index: bool = False):
    """``n`` crops (n, 1, size, size) at uniform random (image, row, column) positions of ``images`` (K, H, W);
    with ``return_index`` also the (n,) image index of each crop (which texture it is)."""
    K, H, W = images.shape
    if size > H or size > W:
        raise ValueError(f"crop size {size} exceeds the data region {H} x {W}; use a smaller --size.")
    k = torch.randint(0, K, (n,), generator=generator)
    i = torch.randint(0, H - size + 1, (n,), generator=generator)
    j = torch.randint(0, W - size + 1, (n,), generator=generator)
    ar = torch.arange(size)
    rows = (i[:, None] + ar)[:, :, None]
    cols = (j[:, None] + ar)[:, None, :]
    crops = images[k[:, None, None], rows, cols][:, None]
    return (crops, k) if return_index else crops


def description() -> dict:
    """The data as a training run records it (part of the run's identity)."""
    return {
        "source": "scikit-image data",
        "images": list(TEXTURES),
        "downsample": DOWNSAMPLE,
        "train": "columns 0..191 of each 256x256 texture",
        "heldout": "columns 192..255 (ref: rows 0..127, floor: rows 128..255)",
    }
