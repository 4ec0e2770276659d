"""``inrd-small``: the small DDPM eps-network trained and shipped by inrd (see docs/small_model.md).

A scaled-down diffusers ``UNet2DModel`` (the DiffUNet family: residual blocks, sinusoidal timestep
embedding, attention at the lowest resolution), trained with the DDPM objective and linear betas
(T = 1000) by :mod:`inrd.train` on 32 x 32 grayscale crops of scikit-image textures. It becomes a
``D(x, sigma)`` denoiser in [0, 1] units through :class:`inrd.denoisers.EpsDenoiser` (paper eq. 15),
with the DDPM alphas_cumprod it was trained on.

Files: ``inrd/checkpoints/inrd_small.safetensors`` (EMA weights, float16) and ``inrd_small.json``
(network config, data, training facts, and the ``sha256`` of the safetensors file, verified on load).
A model trained with ``inrd train --out DIR`` is loaded with ``weights="DIR/inrd_small.safetensors"``
(its JSON sidecar is read from the same folder).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..schedules import ddpm_alphas_cumprod
from ..weights import read_sidecar, verify_sidecar
from .base import StepSetting, pad_to_multiple
from .eps import EpsDenoiser, UNetEps, network_defaults

__all__ = ["build", "make_unet", "PaddedUNetEps", "unet_config", "BUNDLED", "read_checkpoint"]

BUNDLED = Path(__file__).resolve().parents[1] / "checkpoints" / "inrd_small.safetensors"

# Pruned DDPM steps used by default when sampling with this model (`inrd sample`): see
# docs/small_model.md for the quality-vs-steps measurements that support this choice.
DEFAULT_STEPS = 50


def unet_config(size: int = 32, channels=(32, 64, 64), layers_per_block: int = 1, in_channels: int = 1) -> dict:
    """Keyword arguments of the diffusers ``UNet2DModel`` used by inrd-small (all levels but the last
    are plain residual blocks; the lowest resolution, and the middle block, have self-attention)."""
    channels = tuple(int(c) for c in channels)
    if len(channels) < 2 or any(c < 8 or c % 8 for c in channels):
        raise ValueError(f"channels must be >= 2 multiples of 8 (one per resolution level), got {channels}.")
    if int(size) != size or size < 8 or size % 2 ** (len(channels) - 1):
        raise ValueError(f"size must be divisible by 2^(levels-1) = {2 ** (len(channels) - 1)}, got {size}.")
    n = len(channels)
    return {
        "sample_size": int(size),
        "in_channels": int(in_channels),
        "out_channels": int(in_channels),
        "block_out_channels": list(channels),
        "layers_per_block": int(layers_per_block),
        "down_block_types": ["DownBlock2D"] * (n - 1) + ["AttnDownBlock2D"],
        "up_block_types": ["AttnUpBlock2D"] + ["UpBlock2D"] * (n - 1),
        "norm_num_groups": 8 if min(channels) < 32 else 16,
        "attention_head_dim": 32,
    }


class PaddedUNetEps(UNetEps):
    """:class:`UNetEps` on any image size: the UNet halves the resolution ``levels - 1`` times, so its input
    sides must be multiples of ``multiple = 2^(levels-1)``. Other sizes are padded at the bottom and right to
    the next multiple (reflect, replicate where an image is too small to reflect) and the output is cropped
    back, as the FFDNet adapter does; sides already multiples go through untouched."""

    def __init__(self, unet: torch.nn.Module, multiple: int, **call_kwargs):
        super().__init__(unet, **call_kwargs)
        self.multiple = int(multiple)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return super().forward(pad_to_multiple(x, self.multiple), t)[..., :h, :w]


def make_unet(config: dict) -> PaddedUNetEps:
    """Build the (randomly initialised) eps-network of a config from :func:`unet_config`."""
    try:
        from diffusers import UNet2DModel
    except ImportError:
        raise ValueError("inrd-small is a diffusers UNet2DModel: install diffusers (pip install diffusers).") from None
    return PaddedUNetEps(UNet2DModel(**config), 2 ** (len(config["block_out_channels"]) - 1))


def read_checkpoint(weights=None) -> tuple[dict, dict]:
    """Read and verify an inrd-small checkpoint: ``(state_dict in float32, metadata)``.

    ``weights`` is None (the bundled model) or the path of a ``.safetensors`` file with its JSON
    sidecar (same name, ``.json``). Raises ``ValueError`` when a file is missing, when the sha256 of
    the weights differs from the one recorded in the JSON (corrupted or modified file), or when the
    file cannot be parsed.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = BUNDLED if weights is None else Path(weights)
    if path.suffix != ".safetensors":
        raise ValueError(f"inrd-small weights must be a .safetensors file (written by `inrd train`), got {path}.")
    if not path.is_file():
        raise ValueError(f"inrd-small weights {path} not found; reinstall inrd or train one with `inrd train`.")
    sidecar = path.with_suffix(".json")
    meta = read_sidecar(path)
    if meta is None:
        raise ValueError(f"{sidecar} not found: inrd-small weights need their JSON sidecar (config + sha256) next to them.")
    if "unet" not in meta:
        raise ValueError(f"{sidecar} has no 'unet' config; it was not written by `inrd train`.")
    verify_sidecar(path, meta)  # the sha256 (or, after an interrupted export, previous_sha256) it records
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"cannot read {path} as safetensors: {e}") from None
    return {k: v.float() for k, v in state.items()}, meta


def _step_settings(by_steps: dict) -> tuple[tuple[int, StepSetting], ...]:
    """The JSON's ``{"n": {rho, clip, power, first, subgrid}}`` as sorted ``(n, StepSetting)`` pairs."""
    pairs = []
    for n, v in by_steps.items():
        sub = v.get("subgrid")
        pairs.append((int(n), StepSetting(**{**v, "subgrid": tuple(sub) if sub else None})))
    return tuple(sorted(pairs))


def build(weights=None, device=None, timestep: str = "nearest", clamp: bool = False, **options) -> EpsDenoiser:
    """The inrd-small denoiser ``D(x, sigma)`` on (B, 1, H, W) grayscale images in [0, 1] (trained on
    32 x 32; sides that are not multiples of 4 are padded and cropped back, :class:`PaddedUNetEps`).

    Args:
        weights: None for the bundled checkpoint, or a ``.safetensors`` path written by ``inrd train``.
        device: where to put the network (default CPU).
        timestep, clamp: see :class:`~inrd.denoisers.EpsDenoiser` (nearest DDPM timestep, no clamp).

    The result is an :class:`EpsDenoiser` (paper eq. 15) in eval mode with ``sigma_range`` = the DDPM
    range (0.0050, 78.70), ``sampling_defaults`` (the setting recorded in the JSON's ``sampling`` section:
    steps, rho, clip, optional subgrid or power-law spacing; by default canonical INRD on the DDPM grid pruned to 50 steps,
    start V_T = 0.5 as in the paper), and ``metadata`` (the JSON sidecar).
    """
    if options:
        raise ValueError(f"inrd-small takes no option(s) {', '.join(sorted(options))}; only weights, device, timestep, clamp.")
    state, meta = read_checkpoint(weights)
    net = make_unet(meta["unet"])
    try:
        net.unet.load_state_dict(state, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:300]
        raise ValueError(f"weights do not match the network config in the JSON sidecar ({detail}).") from None
    sched = meta.get("schedule", {})
    abar = ddpm_alphas_cumprod(int(sched.get("T", 1000)), float(sched.get("beta_start", 1e-4)), float(sched.get("beta_end", 0.02)))
    den = EpsDenoiser(net, abar, timestep=timestep, clamp=clamp).eval()
    if device is not None:
        den = den.to(device)
    cfg, sampling = meta["unet"], meta.get("sampling", {})
    # the best measured INRD setting for this model, recorded by training/benchmarking in its JSON
    den.sampling_defaults = network_defaults(
        den, cfg["in_channels"], cfg["sample_size"], steps=int(sampling.get("steps", DEFAULT_STEPS)),
        rho=sampling.get("rho", "canonical"), subgrid=sampling.get("subgrid"), clip=sampling.get("clip", "none"),
        power=sampling.get("power", 1.0), first=sampling.get("first"),
    ).with_(by_steps=_step_settings(sampling.get("by_steps", {})))
    den.metadata = meta
    for p in den.parameters():
        p.requires_grad_(False)
    return den
