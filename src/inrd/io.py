"""Images in and out, grids, JSON sidecars, atomic writes.

Every file is written to a temporary name in the destination folder and moved into place with
``os.replace``, so an interrupted run never leaves a half-written output. This module imports
nothing else from inrd.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "atomic_path",
    "ensure_writable_dir",
    "save_image",
    "save_grid",
    "save_figure",
    "write_json",
    "save_with_sidecar",
    "versions",
    "load_image",
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


def ensure_writable_dir(path) -> Path:
    """Create ``path`` (a folder) if needed and check that files can be written into it."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"output folder {p} exists and is not a folder; choose another --out.")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".inrd-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"cannot write to {p}: {e.strerror}; choose a writable --out.") from None
    return p


@contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success move it onto ``path``, else delete it."""
    path = Path(path)
    ensure_writable_dir(path.parent if str(path.parent) else ".")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give outputs the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, C) uint8, clipped and rounded."""
    a = (x.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def save_image(path, x: torch.Tensor) -> Path:
    """Save one image (C, H, W) or (1, C, H, W) in [0, 1] as PNG (atomically)."""
    from PIL import Image

    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"save_image takes one image, got a batch of {x.shape[0]}; use save_grid.")
        x = x[0]
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(x)).save(tmp, format="PNG")
    return Path(path)


def grid(x: torch.Tensor, nrow: int | None = None, pad: int = 2, value: float = 1.0) -> torch.Tensor:
    """Tile a batch (B, C, H, W) into one (C, H', W') image, ``nrow`` images per row."""
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
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, (Path, torch.device, torch.dtype)):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=_jsonable, allow_nan=True) + "\n")


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


def load_image(spec: str, size: int | None = None, channels: int | None = None) -> torch.Tensor:
    """Load a scikit-image sample by name (offline) or an image file, as (1, C, H, W) float32 in [0, 1].

    ``size`` centre-crops to a square and resizes to ``size`` x ``size`` (antialiased); ``channels``
    converts gray <-> RGB (1 or 3).
    """
    from PIL import Image

    if spec in SKIMAGE_IMAGES:
        import skimage.data

        a = np.asarray(getattr(skimage.data, spec)())
    else:
        p = Path(spec)
        if not p.is_file():
            raise ValueError(
                f"image {spec!r} is neither a file nor a scikit-image sample ({', '.join(sorted(SKIMAGE_IMAGES))})."
            )
        try:
            a = np.asarray(Image.open(p))
        except Exception as e:  # PIL raises many types for unreadable files
            raise ValueError(f"cannot read image {p}: {e}") from None
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    x = torch.from_numpy(a.astype(np.float32) / (65535.0 if a.dtype == np.uint16 else 255.0))
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)[:3]
    if size is not None:
        h, w = x.shape[1:]
        m = min(h, w)
        x = x[:, (h - m) // 2 : (h - m) // 2 + m, (w - m) // 2 : (w - m) // 2 + m]
        x = torch.nn.functional.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    if channels == 1 and x.shape[0] == 3:
        x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]
    elif channels == 3 and x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x.clamp(0, 1)[None].contiguous()
