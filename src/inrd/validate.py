"""Input checks shared by the library's entry points: one-line errors naming the problem and the fix.

This module imports nothing else from inrd and no backend.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import torch


def check_device(device) -> torch.device:
    """``torch.device(device)``, or a one-line error when it is unknown, not available on this machine, or
    a device that holds no data (``meta``)."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'mps'.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device} requested but no CUDA GPU is available here; use device='cpu'.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {device} requested but this machine has {torch.cuda.device_count()} CUDA GPU(s); use cuda:0..")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("device mps requested but Apple MPS is not available here; use device='cpu'.")
    elif device.type != "cpu":
        raise ValueError(f"device {device} cannot run inrd (it holds no image data or is not supported); use 'cpu', 'cuda' or 'mps'.")
    return device


def check_index(value, name: str) -> int:
    """``value`` as an integer >= 0 (a seed, a sample index): an integral float is accepted, 1.5 or True are
    one-line errors (they would silently select another seed)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok and isinstance(value, float) and value.is_integer():
        ok, value = True, int(value)
    if not ok or int(value) < 0:
        raise ValueError(f"{name} must be >= 0 (an integer), got {value!r}.")
    return int(value)


def check_count(value, name: str, low: int = 1, upper: Optional[int] = None) -> Optional[int]:
    """An optional integer option (None passes through) in ``[low, upper]``: an integral float such as 4.0 is
    accepted, 2.5, True or NaN are one-line errors naming ``name``."""
    if value is None:
        return None
    ok = not isinstance(value, (bool, complex)) and isinstance(value, (int, float)) and math.isfinite(value) and int(value) == value
    if not ok or value < low or (upper is not None and value > upper):
        bound = f" and <= {upper}" if upper else ""
        raise ValueError(f"{name} must be an integer >= {low}{bound}, got {value!r}.")
    return int(value)


def check_positive(value, name: str, what: str = "a finite number > 0") -> Optional[float]:
    """An optional finite number > 0 (None passes through); ``what`` says what it is in the message."""
    if value is None:
        return None
    if isinstance(value, (bool, complex)) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    return float(value)


def check_image(x, name: str = "image", channels: int | None = None) -> torch.Tensor:
    """Require a finite floating (B, C, H, W) tensor (optionally with ``channels`` channels)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}.")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}; add batch/channel axes with x[None] or x[:, None].")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); every axis needs at least one element.")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor with values in [0, 1], got dtype {x.dtype}; use x.float() / 255.")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} has {x.shape[1]} channels but {channels} are expected; convert it (gray <-> RGB) first.")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values; clean or clip the input before calling.")
    return x


def sigma_vector(sigma, x: torch.Tensor) -> torch.Tensor:
    """Noise level(s) as a (B,) tensor on x's device/dtype; sigma is a float or a (B,) / (B,1,1,1) tensor >= 0."""
    if isinstance(sigma, (bool, str, bytes)) or sigma is None or (isinstance(sigma, torch.Tensor) and sigma.is_complex()):
        raise TypeError(f"sigma must be a real number or a tensor of noise levels, got {type(sigma).__name__} {sigma!r:.40}.")
    try:
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"sigma must be a real number or a tensor of noise levels, got {type(sigma).__name__}.") from None
    if s.numel() == 1:
        s = s.expand(x.shape[0])
    if s.numel() != x.shape[0]:
        raise ValueError(f"sigma must be a float or hold one value per image ({x.shape[0]}), got {s.numel()} values.")
    if not torch.isfinite(s).all() or (s < 0).any():
        raise ValueError(f"sigma must be finite and >= 0 (std of the noise in [0, 1] image units), got {s.tolist()}.")
    return s
