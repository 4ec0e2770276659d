"""Checks made before a sampling run writes anything: memory, dtype and image shape.

A run that would exhaust memory, or a network that cannot take the requested image shape, must fail in
one line before any file is written, not minutes later with a traceback from deep inside torch.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
from torch import nn

from .denoisers.base import carry_attributes

__all__ = ["available_memory", "check_device", "check_memory", "match_dtype", "probe_shape"]


def check_device(device) -> torch.device:
    """``torch.device(device)``, or a one-line error when it is unknown or not available on this machine."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'mps'.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but no CUDA GPU is available here; use device='cpu'.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device mps requested but Apple MPS is not available here; use device='cpu'.")
    return device


def available_memory() -> Optional[int]:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


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


def check_memory(denoiser, shape, dtype: torch.dtype, chunk: Optional[int] = None, device="cpu") -> None:
    """Refuse, in one line, a run whose estimated peak memory exceeds what the machine has available."""
    if torch.device(device).type != "cpu":
        return  # GPU memory: Chunked adapts to out-of-memory errors
    need, have = estimate_bytes(denoiser, shape, dtype, chunk), available_memory()
    if have is not None and need > have:
        raise ValueError(
            f"batch {shape[0]} of {shape[1]}x{shape[2]}x{shape[3]} images needs at least {need / 2**30:.1f} GiB, "
            f"{have / 2**30:.1f} GiB are available; lower --batch or --size, or bound the network batch with --chunk."
        )


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
