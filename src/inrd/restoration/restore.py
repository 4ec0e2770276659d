"""One entry point for every restoration algorithm: :func:`restore`.

    restore(y, physics, denoiser, noise_level, algorithm) -> PnPResult

``algorithm`` is one of :data:`ALGORITHMS` (``None``: the task's default, :data:`DEFAULT_ALGORITHM`,
the one that measured best in ``inrd reproduce restore-table``, docs/restoration.md). Options not
given take each algorithm's documented default; a periodic operator (blur, super-resolution) gets
the denoiser on circularly padded input (:class:`CircularPad`, 16 pixels) unless ``pad=0``.
"""

from __future__ import annotations

from typing import Callable, Literal, Optional, get_args

import torch

from .algorithms import CircularPad, default_sigma, is_periodic
from .diagnostics import PnPResult
from .physics import Task
from .pnp import gs_pnp, hqs, pnp_pgd
from .posterior import inrd_posterior

__all__ = ["restore", "Algorithm", "ALGORITHMS", "DEFAULT_ALGORITHM", "HQS_TASK_OPTIONS", "SAMPLING", "denoiser_channels"]

Algorithm = Literal["pnp-pgd", "gs-pnp", "hqs", "inrd-posterior"]
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)
#: algorithms that draw posterior samples (their result has ``samples`` and ``std``)
SAMPLING = ("inrd-posterior",)

#: the default per task: the best mean PSNR of docs/restoration.md's table (FFDNet, 14 photographs)
DEFAULT_ALGORITHM: dict[str, str] = {"deblur": "hqs", "inpaint": "hqs", "super-resolution": "hqs", "denoise": "hqs"}

#: :func:`~inrd.restoration.hqs` options per task (its own defaults are DPIR's: 8 levels, lam = 0.23).
#: Chosen by a sweep over iters in {8, 16, 24} (inpainting also 40, 64) and lam in {0.05, 0.1, 0.15,
#: 0.23} on 6 of the table's 14 images (camera, astronaut, coffee, brick, moon, text; 96x96, FFDNet),
#: mean PSNR against DPIR's setting: deblur 32.79 vs 32.70 dB, inpainting 36.16 vs 30.60 (filling half
#: the pixels needs more levels), super-resolution 33.02 vs 32.99, denoising (nu = 0.1) 33.26 vs 32.95.
HQS_TASK_OPTIONS: dict[str, dict] = {
    "deblur": {"iters": 8, "lam": 0.15},
    "inpaint": {"iters": 40, "lam": 0.05},
    "super-resolution": {"iters": 8, "lam": 0.15},
    "denoise": {"iters": 8, "lam": 0.05},
}

_FUNCS: dict[str, Callable] = {"pnp-pgd": pnp_pgd, "gs-pnp": gs_pnp, "hqs": hqs, "inrd-posterior": inrd_posterior}


def denoiser_channels(denoiser) -> Optional[int]:
    """The channel count a denoiser is fixed to (``sampling_defaults.channels``; a dict or a dataclass),
    or None when it takes any."""
    d = getattr(denoiser, "sampling_defaults", None)
    c = d.get("channels") if isinstance(d, dict) else getattr(d, "channels", None)
    return int(c) if c else None


def restore(y: torch.Tensor, physics, denoiser: Callable, noise_level: float, algorithm: Optional[str] = None,
            task: Optional[Task] = None, pad: Optional[int] = None, x_true: Optional[torch.Tensor] = None,
            **options) -> PnPResult:
    """Restore ``y = A v + w`` with ``algorithm`` (default: the best for ``task``, else for
    ``physics.task``). ``options`` go to the algorithm (e.g. ``iters``, ``sigma_denoiser``,
    ``samples``); fixed-level schemes default to :func:`default_sigma`, HQS to :data:`HQS_TASK_OPTIONS`."""
    task = task or getattr(physics, "task", "deblur")
    name = (algorithm or DEFAULT_ALGORITHM.get(task, "hqs")).replace("_", "-")
    if name not in _FUNCS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")
    pad = (16 if is_periodic(physics) else 0) if pad is None else pad
    D = CircularPad(denoiser, pad) if pad else denoiser
    if name in ("pnp-pgd", "gs-pnp"):
        key = name.replace("-", "_")
        sigma = options.pop("sigma_denoiser", None) or default_sigma(denoiser, noise_level, key)
        options.setdefault("iters", 100 if name == "pnp-pgd" else 30)
        res = _FUNCS[name](y, physics, D, sigma, noise_level=noise_level, x_true=x_true, **options)
    else:
        if name == "hqs":
            options = {**HQS_TASK_OPTIONS.get(task, {}), **options}
        res = _FUNCS[name](y, physics, D, noise_level=noise_level, x_true=x_true, **options)
    res.params.update(pad=pad, task=task)
    return res
