"""Images in and out, grids, JSON sidecars, atomic writes.

Every file is written to a temporary name in the destination folder and moved into place with
``os.replace`` (:func:`inrd.paths.atomic_path`), so an interrupted run never leaves a half-written output.
Claiming a whole folder for one run (a manifest and a lock) is :mod:`inrd.runs`. This module imports
nothing else from inrd but :mod:`inrd.paths`.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from .paths import OutputError, atomic_path, check_output, ensure_writable_dir

__all__ = [
    "atomic_path",
    "check_output",
    "ensure_writable_dir",
    "OutputError",
    "save_image",
    "save_grid",
    "save_figure",
    "write_json",
    "save_with_sidecar",
    "versions",
    "load_image",
    "is_readable_image",
    "SKIMAGE_IMAGES",
    "to_uint8",
]

# scikit-image's bundled pictures, usable offline: name -> colour?
SKIMAGE_IMAGES = {
    "astronaut": True,
    "chelsea": True,
    "coffee": True,
    "rocket": True,
    "immunohistochemistry": True,
    "retina": True,
    "camera": False,
    "brick": False,
    "grass": False,
    "gravel": False,
    "moon": False,
    "text": False,
    "coins": False,
    "page": False,
    "clock": False,
}


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, C) uint8, clipped and rounded."""
    a = (x.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def save_image(path, x: torch.Tensor) -> Path:
    """Save one image (C, H, W) or (1, C, H, W) in [0, 1] as PNG (atomically)."""
    from PIL import Image

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"save_image takes a torch.Tensor (C, H, W) in [0, 1], got {type(x).__name__}.")
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"save_image takes one image, got a batch of {x.shape[0]}; use save_grid.")
        x = x[0]
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"save_image takes a gray or RGB image (C, H, W) with C = 1 or 3, got shape {tuple(x.shape)}.")
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(x)).save(tmp, format="PNG")
    return Path(path)


def is_readable_image(path) -> bool:
    """True when ``path`` is an image file that decodes completely (a truncated PNG, e.g. from a copy that
    was cut off, does not)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:  # PIL raises many types (OSError, SyntaxError, ValueError) for broken files
        return False


def grid(x: torch.Tensor, nrow: int | None = None, pad: int = 2, value: float = 1.0) -> torch.Tensor:
    """Tile a batch (B, C, H, W) into one (C, H', W') image, ``nrow`` images per row."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"a grid tiles a batch (B, C, H, W), got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}.")
    B, C, H, W = x.shape
    nrow = nrow or int(np.ceil(np.sqrt(B)))
    rows = int(np.ceil(B / nrow))
    out = torch.full((C, rows * (H + pad) + pad, nrow * (W + pad) + pad), value, dtype=x.dtype)
    for i in range(B):
        r, c = divmod(i, nrow)
        out[:, pad + r * (H + pad) : pad + r * (H + pad) + H, pad + c * (W + pad) : pad + c * (W + pad) + W] = x[i].cpu()
    return out


def save_grid(path, x: torch.Tensor, nrow: int | None = None) -> Path:
    return save_image(path, grid(x.detach().float().cpu(), nrow))


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Write a matplotlib figure as PNG (atomically) and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return Path(path)


def _jsonable(o):
    if isinstance(o, torch.Tensor):
        return o.detach().cpu().tolist()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, (Path, torch.device, torch.dtype)):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def strict_json(obj):
    """``obj`` with what strict JSON cannot hold replaced: tensors, arrays, numpy scalars and paths by
    lists, numbers and strings; NaN by ``null`` (an unused or undefined value, e.g. ``rhos[0]``) and
    infinities by the strings ``"inf"`` / ``"-inf"`` (an unbounded range)."""
    if isinstance(obj, dict):
        return {str(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        return obj if math.isfinite(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return strict_json(_jsonable(obj))


def write_json(path, obj) -> Path:
    """Write ``obj`` as strict JSON (:func:`strict_json`: no bare NaN or Infinity), atomically."""
    return write_text(path, json.dumps(strict_json(obj), indent=2, allow_nan=False) + "\n")


def versions() -> dict:
    """Versions of everything that can change a result."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for mod in ("inrd", "torch", "deepinv", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # an optional package that is absent is simply not recorded
            pass
    return out


def save_with_sidecar(path, x: torch.Tensor, params: dict) -> Path:
    """Save image(s) as PNG (a grid for a batch) and ``<path>.json`` with params and versions."""
    path = Path(path)
    if x.ndim == 4 and x.shape[0] > 1:
        save_grid(path, x)
    else:
        save_image(path, x)
    write_json(path.with_suffix(".json"), {**params, "versions": versions()})
    return path


# --------------------------------------------------------------------------- reading images


def load_image(spec: str, size: int | None = None, channels: int | None = None) -> torch.Tensor:
    """Load a scikit-image sample by name (offline) or an image file, as (1, C, H, W) float32 in [0, 1].

    Pixel values are converted by image mode: 8-bit modes divided by 255, 16-bit (``I;16``, 16-bit
    PNG) by 65535, palette images (``P``, ``PA``) and CMYK / YCbCr / LAB / HSV converted to RGB colours,
    float images (``F``, e.g. float TIFF) kept as they are (they must lie in [0, 1]); an alpha channel
    (``LA``, ``RGBA``, ``PA``) is dropped, with a warning. ``size`` centre-crops to a square and resizes
    to ``size`` x ``size`` (antialiased); ``channels`` converts gray <-> RGB (1 or 3; gray is the
    ITU-R 601 luma, as PIL's ``L``).
    """
    if size is not None and (int(size) != size or size < 1):
        raise ValueError(f"image size must be a positive integer, got {size!r}.")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels!r}.")
    if spec in SKIMAGE_IMAGES:
        import skimage.data

        a = np.asarray(getattr(skimage.data, spec)())
        a = a.astype(np.float32) / (65535.0 if a.dtype == np.uint16 else 255.0)
    else:
        a = _read_file(Path(spec))
    x = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    if size is not None:
        h, w = x.shape[1:]
        m = min(h, w)
        x = x[:, (h - m) // 2 : (h - m) // 2 + m, (w - m) // 2 : (w - m) // 2 + m]
        x = torch.nn.functional.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    if channels == 1 and x.shape[0] == 3:
        x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]
    elif channels == 3 and x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x.clamp(0, 1)[None].contiguous()  # clamp: the antialiased resize overshoots slightly at edges


# PIL modes whose colours are not stored as plain gray / RGB values: converted by PIL itself
_TO_RGB = {"P": "RGB", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "RGBX": "RGB", "RGBa": "RGBA", "La": "LA"}


def _read_file(p: Path) -> np.ndarray:
    """An image file as (H, W) or (H, W, 3) float32 in [0, 1], converted by its PIL mode."""
    from PIL import Image, ImageOps

    if not p.is_file():
        raise ValueError(f"image {str(p)!r} is neither a file nor a scikit-image sample ({', '.join(sorted(SKIMAGE_IMAGES))}).")
    try:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im)  # camera photographs: the orientation the viewer shows
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            elif im.mode in _TO_RGB:
                im = im.convert(_TO_RGB[im.mode])
            mode = im.mode
            a = np.asarray(im)
    except Exception as e:  # PIL raises many types for unreadable files
        raise ValueError(f"cannot read image {p}: {e}") from None
    if mode in ("LA", "RGBA"):
        warnings.warn(f"image {p} has an alpha channel ({mode}); it is dropped (transparent pixels keep their colour).", stacklevel=3)
        a = a[..., :-1] if mode == "RGBA" else a[..., 0]
    if mode == "1":
        return a.astype(np.float32)
    if mode in ("L", "RGB", "LA", "RGBA"):
        return a.astype(np.float32) / 255.0
    if mode.startswith("I;16"):
        return a.astype(np.float32) / 65535.0
    if mode == "I":  # 32-bit integers: 16-bit PNGs on older Pillow; anything larger has no known scale
        if a.min() < 0 or a.max() > 65535:
            raise ValueError(f"image {p} holds 32-bit integers in [{a.min()}, {a.max()}], beyond 16 bits; save it as 8- or 16-bit.")
        return a.astype(np.float32) / 65535.0
    if mode == "F":  # floats are taken as intensities in [0, 1] already: no scaling
        if not np.isfinite(a).all():
            raise ValueError(f"image {p} holds NaN or infinite values; clean it first.")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"float image {p} has values in [{lo:.4g}, {hi:.4g}], outside [0, 1]; rescale it to [0, 1] first.")
        return a.astype(np.float32)
    raise ValueError(f"image {p} has mode {mode!r}, which inrd does not read; convert it to 8-bit gray or RGB.")
