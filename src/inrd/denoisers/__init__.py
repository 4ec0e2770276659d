"""Denoisers with one contract: ``D(x, sigma) -> x_hat`` on (B, C, H, W) images in [0, 1], sigma a
float or a (B,) tensor in the same units (deepinv's ``Denoiser`` contract, so deepinv models plug in).

Adapters may carry two attributes used by the CLI and the experiments:

* ``sigma_range = (lo, hi)``: the noise levels the denoiser was trained/designed for ([0, 1] units);
* ``sampling_defaults``: a dict of keyword defaults for sampling with it (schedule, steps,
  sigma_min, sigma_max, init, init_std, channels, size).

``load(name, weights=None, device=None, **options)`` builds one by registry name; an object that is
already callable as ``D(x, sigma)`` is passed through unchanged.
"""

from __future__ import annotations

import importlib

from .eps import EpsDenoiser
from .exact import EmpiricalDenoiser, GaussianDenoiser, GaussianMixtureDenoiser, StationaryGaussianDenoiser

__all__ = [
    "load",
    "names",
    "EpsDenoiser",
    "GaussianDenoiser",
    "StationaryGaussianDenoiser",
    "GaussianMixtureDenoiser",
    "EmpiricalDenoiser",
]

# name -> "module:function"; imported lazily so that `inrd --help` does not import every backend.
_BUILDERS = {
    "ffdnet": "inrd.denoisers.ffdnet:build",
    "drunet": "inrd.denoisers.drunet:build",
    "tv": "inrd.denoisers.classic:build_tv",
    "bm3d": "inrd.denoisers.classic:build_bm3d",
    "diffunet": "inrd.denoisers.diffunet:build",
    "diffusers": "inrd.denoisers.diffusers_unet:build",
    "inrd-small": "inrd.denoisers.small:build",
}


def register(name: str, target: str) -> None:
    """Register a builder ``"package.module:function"`` under ``name``."""
    _BUILDERS[name] = target


def names() -> list[str]:
    return sorted(_BUILDERS)


def load(name, weights=None, device=None, **options):
    """Build denoiser ``name`` (see :func:`names`) or pass a ``D(x, sigma)`` object through."""
    if not isinstance(name, str):
        if not callable(name):
            raise TypeError(f"a denoiser must be a registry name or callable as D(x, sigma), got {type(name).__name__}.")
        return name.to(device) if device is not None and hasattr(name, "to") else name
    key = name.lower()
    if key not in _BUILDERS:
        raise ValueError(f"unknown denoiser {name!r}; available: {', '.join(names())}.")
    module, func = _BUILDERS[key].split(":")
    return getattr(importlib.import_module(module), func)(weights=weights, device=device, **options)
