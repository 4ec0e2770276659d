"""The inputs of the operators of :mod:`inrd.restoration.physics`: blur kernels (``gaussian:STD[:SIZE]``, a
``.npy`` or text file, an array) and inpainting masks (an image, a ``.npy`` file, an array), checked when read:
a file that is not what its name says, complex or non-finite values, a size that does not fit the image are
one-line errors naming the file.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

import numpy as np
import torch

__all__ = ["gaussian_kernel", "load_kernel", "check_kernel_sum", "check_kernel", "load_mask", "MAX_KERNEL_BYTES"]

#: refuse kernels whose float64 array alone would exceed this (1 GiB), before allocating it
MAX_KERNEL_BYTES = 1 << 30


def gaussian_kernel(std: float, size: Optional[int] = None, dtype=torch.float64) -> torch.Tensor:
    """Isotropic Gaussian kernel of standard deviation ``std`` pixels, (size, size), summing to 1.

    ``size`` defaults to ``2 * ceil(3 std) + 1`` (odd, +-3 std: the truncated mass is < 0.3 %)."""
    if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
        raise ValueError(f"Gaussian kernel std must be a finite number > 0 (pixels), got {std!r}.")
    size = int(size) if size is not None else 2 * math.ceil(3 * std) + 1
    if size < 1:
        raise ValueError(f"kernel size must be >= 1, got {size}.")
    if size * size * 8 > MAX_KERNEL_BYTES:
        raise ValueError(f"a Gaussian kernel of std {std:g} is {size}x{size} ({size * size * 8 / 2**30:.3g} GiB); "
                         f"use a std of a few pixels (the kernel must also fit in the image).")
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * std**2))
    k = g[:, None] * g[None, :]
    return (k / k.sum()).to(dtype)


def load_kernel(spec, max_size: Optional[tuple[int, int]] = None) -> torch.Tensor:
    """A blur kernel from ``"gaussian:STD"`` (or ``"gaussian:STD:SIZE"``), a ``.npy`` file, a text file
    of numbers (``numpy.loadtxt``) or a tensor/array: float64 (h, w) or (C, h, w), as given (not
    renormalised; see :func:`check_kernel_sum`). ``max_size = (H, W)`` refuses a larger kernel before
    building it (a kernel must fit in the image it blurs)."""
    if isinstance(spec, (torch.Tensor, np.ndarray)):
        k = torch.as_tensor(_real(spec, "the blur kernel"), dtype=torch.float64)
    else:
        spec = str(spec)
        m = re.fullmatch(r"gaussian:([^:]+)(?::(\d+))?", spec.strip(), flags=re.IGNORECASE)
        if m:
            try:
                std = float(m.group(1))
            except ValueError:
                raise ValueError(f"kernel {spec!r}: the std after 'gaussian:' must be a number, e.g. gaussian:1.6.") from None
            if not (math.isfinite(std) and std > 0):
                raise ValueError(f"kernel {spec!r}: Gaussian kernel std must be a finite number > 0 (pixels).")
            size = int(m.group(2)) if m.group(2) else 2 * math.ceil(3 * std) + 1
            _fits((size, size), max_size)
            return gaussian_kernel(std, size)
        p = Path(spec)
        if not p.is_file():
            raise ValueError(f"kernel {spec!r} is neither 'gaussian:STD' nor an existing .npy / .txt file.")
        if p.suffix.lower() == ".npy":
            return _checked_kernel(_real(_load_npy(p, "kernel file"), f"kernel file {p}"), max_size)
        try:
            k = torch.as_tensor(_real(np.loadtxt(p, ndmin=2), f"kernel file {p}"), dtype=torch.float64)
        except ValueError as e:
            if "number of columns changed" in str(e):  # numpy's own hint (usecols) does not fit a kernel
                raise ValueError(f"kernel file {p}: rows of different lengths; every row of a kernel needs the same number of values.") from None
            raise ValueError(f"cannot read kernel file {p}: {e}") from None
        except Exception as e:  # numpy raises several types for unreadable files
            raise ValueError(f"cannot read kernel file {p}: {e}") from None
    return _checked_kernel(k, max_size)


def _checked_kernel(k, max_size) -> torch.Tensor:
    k = torch.as_tensor(k, dtype=torch.float64)
    check_kernel(k)
    _fits(tuple(k.shape[-2:]), max_size)
    return k


#: the first bytes of every .npy file (numpy's format header)
_NPY_MAGIC = b"\x93NUMPY"


def _load_npy(p: Path, what: str) -> np.ndarray:
    """A numeric array saved by ``numpy.save``; a file that is not one (a text file named .npy, a truncated
    or pickled array) is a one-line ``ValueError`` naming it (never numpy's ``allow_pickle`` advice)."""
    try:
        with open(p, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
    except OSError as e:
        raise ValueError(f"cannot read {what} {p}: {e.strerror}.") from None
    if head != _NPY_MAGIC:
        other = "a text file of numbers under another name (.txt)" if what.startswith("kernel") else "the mask as an image (PNG)"
        raise ValueError(f"{what} {p} is not a .npy array (it lacks numpy's header); save it with numpy.save, or give {other}.")
    try:
        a = np.load(p, allow_pickle=False)
    except Exception as e:  # numpy raises ValueError, EOFError, OSError... for damaged files
        reason = "it holds Python objects, not numbers" if "pickle" in str(e) else f"it is damaged ({' '.join(str(e).split())[:120]})"
        raise ValueError(f"cannot read {what} {p}: {reason}; save a numeric array with numpy.save.") from None
    if a.dtype.kind not in "biufc":
        raise ValueError(f"{what} {p} holds {a.dtype} values, not numbers; save a numeric array with numpy.save.")
    return a


def _real(a, what: str) -> np.ndarray:
    """``a`` as a real array; a complex one is refused (its imaginary part would be dropped silently)."""
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    if a.dtype.kind == "c":
        raise ValueError(f"{what} holds complex numbers; give real values.")
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{what} holds {a.dtype} values, not numbers.")
    return a


def _fits(hw, max_size) -> None:
    if max_size is not None and (hw[0] > max_size[0] or hw[1] > max_size[1]):
        raise ValueError(f"blur kernel {hw[0]}x{hw[1]} is larger than the {max_size[0]}x{max_size[1]} image; "
                         f"use a smaller kernel or a larger image.")


def check_kernel(k: torch.Tensor) -> None:
    if k.ndim not in (2, 3) or k.numel() == 0:
        raise ValueError(f"a blur kernel must be a non-empty (h, w) or (C, h, w) array, got shape {tuple(k.shape)}.")
    if not torch.isfinite(k).all():
        raise ValueError("the blur kernel contains NaN or infinite values.")
    if not (k != 0).any():
        raise ValueError("the blur kernel is all zeros; A would erase the image.")


def check_kernel_sum(k: torch.Tensor, normalize: bool = False, rtol: float = 1e-3) -> torch.Tensor:
    """A kernel that does not sum to 1 (per channel, within ``rtol``) changes the brightness of the
    image: an error, or the kernel divided by its sum when ``normalize`` is asked for."""
    s = k.sum(dim=(-2, -1))
    if bool(((s - 1).abs() <= rtol).all()):
        return k
    if not normalize:
        raise ValueError(f"the blur kernel sums to {s.flatten()[0].item():.6g}, not 1 (it would change the brightness); "
                         f"pass --normalize-kernel (normalize=True) to divide it by its sum.")
    if bool((s.abs() < 1e-12).any()):
        raise ValueError("the blur kernel sums to 0 and cannot be normalised.")
    return k / s[..., None, None]


def load_mask(spec, shape=None) -> torch.Tensor:
    """Inpainting mask (1, 1, H, W) float: an image file (white = observed; gray levels thresholded at
    1/2), a .npy array, or a tensor. ``shape = (H, W)`` must match the observation's."""
    if isinstance(spec, (torch.Tensor, np.ndarray)):
        m = torch.as_tensor(_real(spec, "the mask"), dtype=torch.float32)
    elif str(spec).lower().endswith(".npy"):
        m = torch.as_tensor(_real(_load_npy(Path(spec), "mask file"), f"mask file {spec}"), dtype=torch.float32)
    else:
        from ..io import load_image

        m = load_image(str(spec), channels=1)
    while m.ndim < 4:
        m = m[None]
    if m.shape[0] != 1 or m.shape[1] != 1:
        raise ValueError(f"the mask must be one (H, W) image, got shape {tuple(m.shape)}.")
    if not torch.isfinite(m).all():
        raise ValueError("the mask contains NaN or infinite values.")
    if shape is not None and tuple(m.shape[-2:]) != tuple(shape):
        raise ValueError(f"the mask is {m.shape[-2]}x{m.shape[-1]} but the observation is {shape[0]}x{shape[1]}; "
                         f"give a mask of the observation's size.")
    m = (m > 0.5).float()
    if not bool(m.any()):
        raise ValueError("the mask observes no pixel (all black); white marks the observed pixels.")
    return m
