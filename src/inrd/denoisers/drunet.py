"""DRUNet (Zhang et al., "Plug-and-Play Image Restoration with Deep Denoiser Prior", 2021) through
deepinv's :class:`deepinv.models.DRUNet`, the denoiser of the paper's Fig. 3 and 4.

Units: images in [0, 1] and sigma in the same [0, 1] units, with no rescaling. deepinv concatenates
the noise level map ``sigma`` as an extra input channel as given; the original DPIR code feeds
``noise_level / 255`` for 8-bit levels, i.e. the same [0, 1] units, so the published checkpoints
(deepinv's fine-tuned ones and DPIR's ``drunet_color.pth`` / ``drunet_gray.pth``, same layout)
load and run unchanged. DRUNet was trained for sigma in [0, 50/255]; the paper uses [0, 0.2].

Weights cannot be fetched at run time: pass a checkpoint path, or a name of :mod:`inrd.weights`
(``drunet-color`` / ``drunet-gray``, cached by ``inrd weights fetch drunet-color``), or
``random_init=True`` (tests, benchmarks: random weights at deepinv's initial scale, fixed seed).
"""

from __future__ import annotations

import torch
from deepinv.models import Denoiser
from torch import nn

from ..validate import check_image, sigma_vector
from .ffdnet import FFDNetDenoiser

__all__ = ["DRUNetDenoiser", "build", "WEIGHT_NAMES"]

WEIGHT_NAMES = {3: "drunet-color", 1: "drunet-gray"}


def _strip_prefix(state: dict) -> dict:
    """Accept state dicts saved from this adapter (``net.``) or from DataParallel (``module.``)."""
    for prefix in ("module.", "net."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _random_init(net: nn.Module, seed: int) -> None:
    """Gaussian weights with the per-layer scale of deepinv's init (``orthogonal_(w, gain=0.2)``: rows or
    columns of norm 0.2), i.e. std ``0.2 / sqrt(max(rows, cols))`` of ``w`` flattened to 2-D; drawn from
    its own generator (the global random state is untouched). About 50x cheaper than orthogonal init."""
    g = torch.Generator().manual_seed(seed)
    done = set()
    for m in net.modules():
        if "Conv" in type(m).__name__:
            w = m.weight
            rows = w.shape[0]
            cols = w.numel() // rows
            with torch.no_grad():
                w.normal_(0.0, 0.2 / max(rows, cols) ** 0.5, generator=g)
            done.add(id(w))
            if m.bias is not None:
                with torch.no_grad():
                    m.bias.zero_()
                done.add(id(m.bias))
    left = [n for n, p in net.named_parameters() if id(p) not in done]
    if left:  # pragma: no cover - DRUNet has convolutions only
        raise RuntimeError(f"uninitialised DRUNet parameters: {left}")


class DRUNetDenoiser(Denoiser):
    """``D(x, sigma)`` with deepinv's DRUNet; x in [0, 1] (B, C, H, W), sigma a float or (B,) tensor in
    [0, 1] units. Output not clamped (the paper's D has none). Any H, W: deepinv pads (small or odd
    sizes) or splits (large sizes not multiple of 8) internally.

    Args:
        channels: 1 or 3 (the published checkpoints exist for both).
        state_dict: weights to load (strict); None: random weights (see :func:`_random_init`).
        seed: seed of the random weights.
    """

    # DRUNet's training range in the paper's wording ("the noise range [0, 0.2]"); DPIR: [0, 50/255].
    sigma_range = (0.0, 0.2)
    # Paper Sec. 3.2 / Fig. 3: IND-DRUNet over 400 levels adapted to [0, 0.2], started from a Gaussian
    # V_T with s_T >> sigma_T ("otherwise the process degenerates immediately to the mean value").
    # s_T = 0.5 is what worked for the IPOL FFDNet (see inrd.denoisers.ffdnet), the closest denoiser we
    # can run offline; the published DRUNet weights could not be tried here. Same settings, 400 steps.
    sampling_defaults = FFDNetDenoiser.sampling_defaults.with_(steps=400)

    def __init__(self, channels: int = 3, state_dict: dict | None = None, seed: int = 0):
        super().__init__()
        from deepinv.models import DRUNet

        if channels not in (1, 3):
            raise ValueError(f"DRUNet checkpoints exist for channels=1 (gray) or channels=3 (RGB), got channels={channels!r}.")
        self.channels = int(channels)
        self.sampling_defaults = type(self).sampling_defaults.with_(channels=self.channels)
        # Built on the meta device: deepinv's orthogonal initialisation of 32M weights costs seconds
        # and would be overwritten anyway.
        with torch.device("meta"):
            self.net = DRUNet(in_channels=self.channels, out_channels=self.channels, pretrained=None)
        if state_dict is not None:
            state = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in _strip_prefix(dict(state_dict)).items()}
            try:
                self.net.load_state_dict(state, strict=True, assign=True)
            except RuntimeError as e:
                lines = str(e).strip().splitlines()
                raise ValueError(
                    f"checkpoint does not fit DRUNet(in_channels={self.channels}): {(lines[1] if len(lines) > 1 else lines[0]).strip().rstrip('.')}; "
                    "check channels= (1 gray, 3 colour) and that it is a DRUNet state dict."
                ) from None
        else:
            self.net.to_empty(device="cpu")
            _random_init(self.net, seed)
        self.net.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        check_image(x, "x", channels=self.channels)
        s = sigma_vector(sigma, x)  # (B,): deepinv expands it to a (B, 1, H, W) noise level map
        return self.net(x, s)


def build(weights=None, device=None, channels: int = 3, random_init: bool = False, seed: int = 0, **options) -> DRUNetDenoiser:
    """Registry builder: ``inrd.denoisers.load("drunet", weights=PATH_OR_NAME, channels=3)``.

    ``weights``: a checkpoint path or an :mod:`inrd.weights` name; None looks for the cached
    ``drunet-color`` / ``drunet-gray`` file. ``random_init=True`` builds the architecture with random weights
    drawn under ``seed`` (Gaussian, deepinv's per-layer scale), without touching the global random state.
    """
    if options:
        raise ValueError(f"unknown DRUNet option(s) {', '.join(sorted(options))}; known: channels, random_init, seed.")
    if channels not in (1, 3):
        raise ValueError(f"DRUNet checkpoints exist for channels=1 (gray) or channels=3 (RGB), got channels={channels!r}.")
    if random_init:
        if weights is not None:
            raise ValueError("give either weights= or random_init=True, not both.")
        model = DRUNetDenoiser(channels, seed=seed)
    else:
        from .. import weights as W

        name = weights if weights is not None else WEIGHT_NAMES[channels]
        try:
            state = W.load_state_dict(name)
        except W.WeightsNotFound as e:
            if weights is not None:
                raise
            raise ValueError(
                f"DRUNet needs a checkpoint and none is cached ({e}). Pass weights=PATH to a DRUNet state dict "
                f"(deepinv's drunet_deepinv_*_finetune_*.pth or DPIR's drunet_color.pth / drunet_gray.pth), "
                f"or random_init=True for an untrained network."
            ) from None
        model = DRUNetDenoiser(channels, state)
    return model.to(device) if device is not None else model
