"""Image quality and stability metrics. Images are (B, C, H, W) tensors in [0, 1]; this module
imports nothing else from inrd.
"""

from __future__ import annotations

import torch

__all__ = ["psnr"]


def psnr(x: torch.Tensor, y: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio ``10 log10(max_val^2 / mean((x - y)^2))`` per image, in dB.

    ``x`` and ``y`` are (B, C, H, W) (or (C, H, W), read as one image) with equal shapes; the mean runs
    over C, H, W and is computed in float64. No clipping: clip to [0, 1] first if the convention needs
    it. Returns a float64 (B,) tensor; identical images give ``inf``.
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("psnr takes two torch tensors (B, C, H, W).")
    if x.shape != y.shape:
        raise ValueError(f"psnr needs images of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}.")
    if x.ndim == 3:
        x, y = x[None], y[None]
    if x.ndim != 4:
        raise ValueError(f"psnr takes (B, C, H, W) or (C, H, W) images, got shape {tuple(x.shape)}.")
    if not max_val > 0:
        raise ValueError(f"max_val must be > 0 (the peak value of the image range), got {max_val}.")
    d = x.detach().to(torch.float64) - y.detach().to(device=x.device, dtype=torch.float64)
    mse = d.pow(2).flatten(1).mean(1)
    return 10 * torch.log10(max_val**2 / mse)
