"""DiffUNet (guided-diffusion UNet, as packaged by deepinv) as a [0, 1] denoiser, through paper eq. (15).

The network is deepinv's ``DiffUNet`` built with ``pretrained=None`` (we load the weights ourselves,
with ``torch.load(weights_only=True)``): the FFHQ 256x256 architecture of Chung et al. (128 channels,
93.6M parameters) or, with ``large_model=True``, the ImageNet 256x256 one of Dhariwal & Nichol. It
predicts 6 channels: eps (3) and the learned variance (3, unused here). It was trained with DDPM
linear betas (1e-4 .. 0.02, T = 1000) on images in [-1, 1]; the conversion to [0, 1] and to a
denoiser ``D(u, sigma)`` is done once, by :class:`inrd.denoisers.EpsDenoiser` (eq. 15):

    w = 2u - 1,  s = 2 sigma,  D(u) = (w - s * eps(w / sqrt(1 + s^2), t(s)) + 1) / 2.

The network is called in "timestep" mode (``DiffUNet.forward(x, t, type_t="timestep")``, which is
``forward_diffusion`` plus padding): ``t`` is the 0-based DDPM timestep (0..999, fractional with
``timestep="interp"``). Images whose sides are not multiples of 32 are padded circularly at the
top/left to the next multiple of 32 by deepinv and cropped back; images of side >= 520 are processed
by deepinv in independent 512x512 tiles. deepinv's own ``forward_denoise`` (``type_t="noise_level"``)
is NOT used: it rounds t, divides by the discrete sqrt(alphabar) and clamps, unlike the paper's D.

Traps handled here: the network is put in ``eval()`` mode (it has dropout 0.1 and deepinv leaves it in
train mode when ``pretrained=None``); with random weights its output convolutions are zero-initialised,
so ``eps == 0`` and ``D`` would be the identity: ``random_init=True`` re-initialises every layer.
"""

from __future__ import annotations

import torch
from torch import nn

from ..schedules import ddpm_alphas_cumprod
from .eps import EpsDenoiser, UNetEps, network_defaults

__all__ = ["build", "make_network", "random_init_", "SIGMA_RANGE", "DEFAULT_STEPS"]

# DDPM linear-beta grid in [0, 1] units: sigma_1, sigma_1000
SIGMA_RANGE = (0.0050003, 78.7036)
# canonical INRD on the DDPM grid pruned to this many steps (the paper, Fig. 2: 20 steps already give
# convincing faces; 1000 is DDPM itself)
DEFAULT_STEPS = 100

# buffers that deepinv's DiffUNet registers itself (not in the published checkpoints)
_OWN_BUFFERS = {"sqrt_1m_alphas_cumprod", "sqrt_alphas_cumprod"}


def make_network(large_model: bool = False, seed: int = 0) -> nn.Module:
    """deepinv ``DiffUNet(pretrained=None)`` (3 -> 6 channels), in eval mode, built under a fixed seed
    without touching the global random state."""
    from deepinv.models import DiffUNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DiffUNet(in_channels=3, out_channels=3, large_model=large_model, pretrained=None)
    return net.eval()


@torch.no_grad()
def random_init_(net: nn.Module, seed: int = 0) -> nn.Module:
    """Re-initialise every parameter of ``net`` from ``seed`` (global RNG state untouched).

    Convolutions and linear layers get PyTorch's default init (``reset_parameters``), including those
    guided-diffusion zero-initialises (output layer, residual branches, attention projections), so that
    eps is not identically 0. GroupNorm scales/offsets get ``1 + 0.1 N(0, 1)`` and ``0.1 N(0, 1)``
    so that no tensor keeps a constant value. For tests of the plumbing only: such a network is not a
    denoiser."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in net.modules():
            if isinstance(m, nn.GroupNorm):
                if m.affine:
                    m.weight.copy_(1 + 0.1 * torch.randn_like(m.weight))
                    m.bias.copy_(0.1 * torch.randn_like(m.bias))
            elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.Embedding)):
                m.reset_parameters()
    return net


def _is_large(state: dict) -> bool:
    w = state.get("input_blocks.0.0.weight")
    return w is not None and w.shape[0] == 256


def _load(net: nn.Module, state: dict, source) -> None:
    own = net.state_dict()
    missing = [k for k in own if k not in state and k not in _OWN_BUFFERS]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        examples = (missing + unexpected + wrong)[:3]
        raise ValueError(
            f"{source} is not a DiffUNet checkpoint for this architecture ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(wrong)} mis-shaped tensors, e.g. {', '.join(examples)}); "
            f"use large_model=True for the ImageNet model (diffunet-imagenet), False for FFHQ (diffunet-ffhq)."
        )
    net.load_state_dict({k: v for k, v in state.items() if k not in _OWN_BUFFERS}, strict=False)


def build(
    weights=None,
    device=None,
    timestep: str = "nearest",
    clamp: bool = False,
    large_model: bool | None = None,
    random_init: bool = False,
    seed: int = 0,
) -> EpsDenoiser:
    """DiffUNet as ``D(u, sigma)`` on (B, 3, H, W) images in [0, 1] (paper eq. 15), output not clamped.

    Args:
        weights: a checkpoint path or registry name (``"diffunet-ffhq"``, ``"diffunet-imagenet"``;
            see :mod:`inrd.weights`), read with ``weights_only=True``; a plain state dict of DiffUNet.
        device: where to put the model.
        timestep: ``"nearest"`` (grid timestep nearest in log sigma; exact on the DDPM grid) or
            ``"interp"`` (fractional timestep, linear in log sigma), see :class:`EpsDenoiser`.
        clamp: clamp the output to [0, 1] (the paper's D does not).
        large_model: ImageNet architecture (256 channels); None = read it from the checkpoint
            (False with ``random_init``).
        random_init: no checkpoint: all weights re-initialised from ``seed`` (tests and benchmarks).
        seed: seed of the random initialisation.

    Attributes of the result: ``sigma_range`` = (0.0050003, 78.7036) (the DDPM grid, [0, 1] units),
    ``sampling_defaults`` (canonical INRD on the DDPM grid pruned to 100 steps, start V_T = 0.5 exactly
    (init_std 0: the first step adds gamma_T = sigma_T noise), 3x256x256 images as in training).
    """
    from ..weights import load_state_dict, locate

    if weights is None and not random_init:
        raise ValueError(
            "DiffUNet needs weights: 'diffunet-ffhq' or a path to diffusion_ffhq_10m.pt (--weights, or weights= in Python); get the file "
            "with `inrd weights fetch diffunet-ffhq` on a connected machine (see `inrd weights list`), "
            "or use random_init=True for a network with random weights."
        )
    if weights is not None and random_init:
        raise ValueError("give either weights or random_init=True, not both.")
    if random_init:
        net = random_init_(make_network(bool(large_model), seed), seed)
    else:
        path = locate(weights)
        state = load_state_dict(path)
        large = _is_large(state) if large_model is None else bool(large_model)
        net = make_network(large, seed)
        _load(net, state, path)
    net.eval()
    den = EpsDenoiser(UNetEps(net, type_t="timestep"), ddpm_alphas_cumprod(1000), timestep=timestep, clamp=clamp).eval()
    den.sampling_defaults = network_defaults(den, channels=3, size=256, steps=DEFAULT_STEPS)
    if device is not None:
        den = den.to(device)
    return den
