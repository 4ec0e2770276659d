"""One entry point for every restoration algorithm: :func:`restore`.

    restore(y, physics, denoiser, noise_level, algorithm) -> PnPResult

``algorithm`` is one of :data:`ALGORITHMS` (``None``: the task's default, :data:`DEFAULT_ALGORITHM`,
the best of ``inrd reproduce restore-table``, docs/restoration.md). Options not given take each
algorithm's documented default; a periodic operator (blur, super-resolution) gets the denoiser on
circularly padded input (:class:`CircularPad`, 16 pixels) unless ``pad=0``.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..choices import Algorithm, Task, choose, maybe_choose, names_of
from .common import CircularPad, check_noise_level, default_sigma, is_periodic
from .pnp import gs_pnp, hqs, pnp_pgd
from .posterior import inrd_posterior
from .result import PnPResult

__all__ = ["restore", "Algorithm", "ALGORITHMS", "DEFAULT_ALGORITHM", "HQS_TASK_OPTIONS", "SAMPLING", "FIXED_LEVEL",
           "DEFAULT_PAD", "denoiser_channels", "algorithm_options"]

ALGORITHMS: tuple[str, ...] = names_of(Algorithm)
#: algorithms that draw posterior samples (their result has ``samples`` and ``std``)
SAMPLING: tuple[Algorithm, ...] = ("inrd-posterior",)
#: algorithms that run the denoiser at one fixed level ``sigma_denoiser``
FIXED_LEVEL: tuple[Algorithm, ...] = ("pnp-pgd", "gs-pnp")

#: the default per task: the best mean PSNR of docs/restoration.md's table (FFDNet, 14 photographs)
DEFAULT_ALGORITHM: dict[Task, Algorithm] = {"deblur": "hqs", "inpaint": "hqs", "super-resolution": "hqs", "denoise": "hqs"}

#: :func:`~inrd.restoration.hqs` options per task (its own defaults are DPIR's: 8 levels, lam = 0.23),
#: chosen by a sweep on 6 of the table's 14 images (docs/restoration_notes.md)
HQS_TASK_OPTIONS: dict[Task, dict] = {
    "deblur": {"iters": 8, "lam": 0.15},
    "inpaint": {"iters": 40, "lam": 0.05},
    "super-resolution": {"iters": 8, "lam": 0.15},
    "denoise": {"iters": 8, "lam": 0.05},
}

#: pixels of circular padding a periodic operator's denoiser gets by default (:class:`CircularPad`)
DEFAULT_PAD = 16

_FUNCS: dict[Algorithm, Callable] = {"pnp-pgd": pnp_pgd, "gs-pnp": gs_pnp, "hqs": hqs, "inrd-posterior": inrd_posterior}


def denoiser_channels(denoiser) -> Optional[int]:
    """The channel count a denoiser is fixed to (``sampling_defaults.channels``), or None when it takes any."""
    c = getattr(getattr(denoiser, "sampling_defaults", None), "channels", None)
    return int(c) if c else None


def algorithm_options(algorithm: Algorithm, task: Task, denoiser, noise_level: float, options: dict) -> dict:
    """The keyword arguments :func:`restore` gives ``algorithm``: ``options`` over its defaults for ``task``
    (fixed-level schemes: :func:`default_sigma` and 100 / 30 iterations; HQS: :data:`HQS_TASK_OPTIONS`)."""
    options = dict(options)
    if algorithm in FIXED_LEVEL:
        options["sigma_denoiser"] = options.get("sigma_denoiser") or default_sigma(denoiser, noise_level, algorithm)
        options.setdefault("iters", 100 if algorithm == "pnp-pgd" else 30)
    elif algorithm == "hqs":
        options = {**HQS_TASK_OPTIONS.get(task, {}), **options}
    return options


def restore(y: torch.Tensor, physics, denoiser: Callable, noise_level: float, algorithm: Optional[str] = None,
            task: Optional[Task] = None, pad: Optional[int] = None, x_true: Optional[torch.Tensor] = None,
            **options) -> PnPResult:
    """Restore ``y = A v + w`` with ``algorithm`` (default: the best for ``task``, else for
    ``physics.task``). ``options`` go to the algorithm (e.g. ``iters``, ``sigma_denoiser``,
    ``samples``); fixed-level schemes default to :func:`default_sigma`, HQS to :data:`HQS_TASK_OPTIONS`."""
    task = choose(task or getattr(physics, "task", "deblur"), Task, "task")
    name = maybe_choose(algorithm or DEFAULT_ALGORITHM[task], Algorithm)
    if name is None:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")
    nu = check_noise_level(noise_level)
    pad = (DEFAULT_PAD if is_periodic(physics) else 0) if pad is None else pad
    D = CircularPad(denoiser, pad) if pad else denoiser
    kwargs = algorithm_options(name, task, denoiser, nu, options)
    if name in FIXED_LEVEL:
        res = _FUNCS[name](y, physics, D, kwargs.pop("sigma_denoiser"), noise_level=nu, x_true=x_true, **kwargs)
    else:
        res = _FUNCS[name](y, physics, D, noise_level=nu, x_true=x_true, **kwargs)
    res.params.update(algorithm=name, pad=pad, task=task)  # one spelling, whatever the function records
    return res
