"""One entry point for every restoration algorithm: :func:`restore`.

    restore(y, physics, denoiser, noise_level, algorithm) -> PnPResult

``algorithm`` is one of :data:`ALGORITHMS` (``None``: the task's default, :data:`DEFAULT_ALGORITHM`,
the best of ``inrd reproduce restore-table``, docs/restoration.md). Options not given take each
algorithm's documented default. The fixed-level schemes (PnP-PGD, GS-PnP) on a periodic operator
(``PeriodicBlur``, ``Downsampling``, a ``Blur`` of boundary ``"periodic"``) get the denoiser on circularly
padded input (:class:`CircularPad`, 16 pixels) unless ``pad=0``: without it their fixed point carries
stripes along the border. HQS and the posterior sampler get none by default (padding costs them about
1 dB: docs/restoration_notes.md), nor does any other boundary model (it assumes no wrap-around).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..choices import Algorithm, PosteriorStart, Task, choose, maybe_choose, names_of
from ..metrics import psnr as _psnr
from .common import CircularPad, check_noise_level, default_sigma, is_periodic
from .pnp import gs_pnp, hqs, pnp_pgd
from .posterior import inrd_posterior
from .result import PnPResult, _psnr_evidence

__all__ = ["restore", "Algorithm", "ALGORITHMS", "DEFAULT_ALGORITHM", "HQS_TASK_OPTIONS", "SAMPLING", "FIXED_LEVEL",
           "DEFAULT_PAD", "POSTERIOR_START", "default_pad", "denoiser_channels", "algorithm_options"]

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

#: where ``inrd-posterior`` starts per task (other tasks: ``"init"``, ``physics.init(y)``). Inpainting starts at
#: HQS's result: the mean fill of the missing pixels is no Gaussian noise of the first level, the denoiser
#: leaves much of it (measured: docs/restoration_notes.md)
POSTERIOR_START: dict[Task, PosteriorStart] = {"inpaint": "hqs"}

#: pixels of circular padding a fixed-level scheme's denoiser gets on a periodic operator (:class:`CircularPad`)
DEFAULT_PAD = 16

_FUNCS: dict[Algorithm, Callable] = {"pnp-pgd": pnp_pgd, "gs-pnp": gs_pnp, "hqs": hqs, "inrd-posterior": inrd_posterior}


def default_pad(algorithm: Algorithm, periodic: bool) -> int:
    """The circular padding :func:`restore` gives the denoiser by default: :data:`DEFAULT_PAD` for a
    fixed-level scheme on a periodic operator, else 0 (module docstring)."""
    return DEFAULT_PAD if periodic and algorithm in FIXED_LEVEL else 0


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
    elif algorithm == "inrd-posterior" and options.get("init") is None:
        options["start"] = choose(options.get("start") or POSTERIOR_START.get(task, "init"), PosteriorStart, "start")
    return options


def restore(y: torch.Tensor, physics, denoiser: Callable, noise_level: float, algorithm: Optional[str] = None,
            task: Optional[Task] = None, pad: Optional[int] = None, x_true: Optional[torch.Tensor] = None,
            **options) -> PnPResult:
    """Restore ``y = A v + w`` with ``algorithm`` (default: the best for ``task``, else for
    ``physics.task``). ``options`` go to the algorithm (e.g. ``iters``, ``sigma_denoiser``,
    ``samples``); fixed-level schemes default to :func:`default_sigma`, HQS to :data:`HQS_TASK_OPTIONS`.

    ``physics`` is any operator (:mod:`inrd.restoration.physics`, :class:`~inrd.restoration.blur.Blur`,
    a deepinv ``LinearPhysics``). For ``Blur(boundary="valid")`` the estimate ``res.x`` is the scene plus
    the kernel's margin; ``physics.crop(res.x)`` is the observation's field of view, and ``x_true`` may be
    given for that field of view (the PSNR curve is then taken on the crop).

    ``inrd-posterior`` starts where :data:`POSTERIOR_START` says for ``task`` (inpainting: from the result of
    HQS with the task's options, ``start="hqs"``, its seconds counted in ``res.seconds``); ``start="init"``
    starts it at ``physics.init(y)``, and an ``init`` tensor overrides both."""
    task = choose(task or getattr(physics, "task", "deblur"), Task, "task")
    name = maybe_choose(algorithm or DEFAULT_ALGORITHM[task], Algorithm)
    if name is None:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")
    nu = check_noise_level(noise_level)
    pad = default_pad(name, is_periodic(physics)) if pad is None else pad
    D = CircularPad(denoiser, pad) if pad else denoiser
    kwargs = algorithm_options(name, task, denoiser, nu, options)
    truth, curve = _field_of_view_truth(y, physics, x_true, kwargs)
    if truth is not None:
        x_true = None  # the algorithm's iterates are larger than the truth: the PSNR curve is taken on their crop
    warm = None
    if kwargs.pop("start", None) == "hqs":  # the posterior sampler from HQS's result (POSTERIOR_START)
        warm = hqs(y, physics, D, noise_level=nu, **HQS_TASK_OPTIONS[task])
        kwargs["init"] = warm.x
    if name in FIXED_LEVEL:
        res = _FUNCS[name](y, physics, D, kwargs.pop("sigma_denoiser"), noise_level=nu, x_true=x_true, **kwargs)
    else:
        res = _FUNCS[name](y, physics, D, noise_level=nu, x_true=x_true, **kwargs)
    if truth is not None:
        res.psnr = curve
        if curve:
            res.evidence.update(_psnr_evidence(curve))
        if res.samples is not None:
            S = res.samples.shape[0] // truth.shape[0]
            res.params["psnr_per_sample"] = [float(p) for p in _psnr(physics.crop(res.samples), truth.repeat_interleave(S, dim=0))]
    if name == "inrd-posterior":
        res.params["start"] = "hqs" if warm is not None else "init" if options.get("init") is None else "given"
        if warm is not None:
            res.params["start_iters"] = warm.params["iters"]
            res.seconds += warm.seconds
    res.params.update(algorithm=name, pad=pad, task=task)  # one spelling, whatever the function records
    return res


def _field_of_view_truth(y, physics, x_true, kwargs) -> tuple[Optional[torch.Tensor], list]:
    """For an operator whose unknown x is larger than the observed field of view (``Blur(boundary="valid")``:
    the scene plus the kernel's margin) and a truth of that field of view: ``(truth, curve)``, ``curve`` the
    PSNR of ``physics.crop(v_n)`` filled by a callback put into ``kwargs`` (it calls the user's one too).
    ``(None, [])`` when the truth has the iterates' shape (the algorithms then compare it themselves)."""
    if x_true is None or not hasattr(physics, "crop") or not hasattr(physics, "image_shape"):
        return None, []
    if tuple(x_true.shape[-2:]) == tuple(physics.image_shape(y.shape)[-2:]):
        return None, []
    view = tuple(physics.crop(physics.init(y)).shape)
    if tuple(x_true.shape[1:]) != view[1:]:
        raise ValueError(f"x_true has shape {tuple(x_true.shape)} but the field of view of the estimate is {view}.")
    curve, user = [], kwargs.pop("callback", None)

    def callback(n, v):
        curve.append(float(_psnr(physics.crop(v), x_true).mean()))
        if user is not None:
            user(n, v)

    kwargs["callback"] = callback
    return x_true, curve
