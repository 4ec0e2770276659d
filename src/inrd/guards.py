"""Checks made before a sampling run writes anything: memory, dtype and image shape.

A run that would exhaust memory, or a network that cannot take the requested image shape, must fail in
one line before any file is written, not minutes later with a traceback from deep inside torch.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .denoisers.base import carry_attributes
from .memory import require
from .validate import check_device  # noqa: F401  (kept importable from here)

__all__ = ["check_device", "check_memory", "estimate_bytes", "match_dtype", "probe_shape"]


def _widest_conv(denoiser) -> int:
    """Largest channel count of a convolution in the denoiser (0 for a model-based one)."""
    if not isinstance(denoiser, nn.Module):
        return 0
    return max((m.out_channels for m in denoiser.modules() if isinstance(m, nn.Conv2d)), default=0)


def estimate_bytes(denoiser, shape, dtype: torch.dtype, chunk: Optional[int] = None) -> int:
    """A lower estimate of the peak memory of :func:`inrd.sample`: six image-sized buffers of the sampler
    (V_t, Z_t, u, D(u), V_{t-1}, the noise draw) plus, for a network, a few feature maps of its widest
    full-resolution layer for each image of one network call (``chunk`` images, else the batch)."""
    B, C, H, W = shape
    item = torch.finfo(dtype).bits // 8
    per_call = min(B, chunk) if chunk else B
    return 6 * B * C * H * W * max(item, 4) + 4 * per_call * _widest_conv(denoiser) * H * W * 4


def check_memory(denoiser, shape, dtype: torch.dtype, chunk: Optional[int] = None, device="cpu", output_bytes: int = 0) -> None:
    """Refuse, in one line, a run whose estimated peak memory (:func:`estimate_bytes`, plus ``output_bytes``
    for what the outputs need at once, e.g. a zoomed grid) exceeds what is available (:mod:`inrd.memory`).
    On a GPU only the outputs are checked (they are made on the CPU); :class:`inrd.fast.Chunked` adapts the
    network's batch to the GPU's memory."""
    B, C, H, W = shape
    what = f"batch {B} of {C}x{H}x{W} images" + (" with its outputs" if output_bytes else "")
    fix = "lower --batch or --size" + (" or --display" if output_bytes else "") + ", or bound the network batch with --chunk"
    on_gpu = torch.device(device).type != "cpu"
    need = output_bytes + (0 if on_gpu else estimate_bytes(denoiser, shape, dtype, chunk))
    require(need, what, fix)


class _Cast(nn.Module):
    """Runs ``denoiser`` in its own dtype on iterates of another (e.g. float64 iterates, float32 network)."""

    def __init__(self, denoiser: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.denoiser, self.dtype = denoiser, dtype
        carry_attributes(denoiser, self)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return self.denoiser(x.to(self.dtype), sigma).to(x.dtype)


def match_dtype(denoiser, dtype: torch.dtype):
    """The denoiser itself when its parameters have ``dtype`` (or it has none), else a casting wrapper."""
    if isinstance(denoiser, nn.Module):
        own = next((p.dtype for p in denoiser.parameters() if p.is_floating_point()), None)
        if own is not None and own != dtype:
            return _Cast(denoiser, own)
    return denoiser


def probe_shape(denoiser, shape, sigmas: torch.Tensor, device, dtype: torch.dtype, name: str) -> None:
    """One denoiser call on a single image of the run's shape (at sigma_T), so that an image size or channel
    count the network cannot take fails here in one line instead of after the outputs were started."""
    # a textured probe (a constant image makes some denoisers, e.g. BM3D, divide by a zero range)
    x = torch.rand((1, *shape[1:]), generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dtype)
    try:
        with torch.no_grad():
            out = denoiser(x, float(sigmas[-1]))
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(
            f"{name} cannot denoise images of shape {tuple(shape[1:])} ({first}); choose --size/--channels it supports."
        ) from None
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{name} returned {got} for an input of shape {tuple(x.shape)}; a denoiser must keep the shape.")
