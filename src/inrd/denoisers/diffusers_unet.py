"""Any diffusers eps-prediction ``UNet2DModel`` as a [0, 1] denoiser, through paper eq. (15).

The network and its scheduler's ``alphas_cumprod`` go through the same
:class:`inrd.denoisers.EpsDenoiser` as DiffUNet (one implementation of eq. 15 for every eps-model):

    w = 2u - 1,  s = 2 sigma,  D(u) = (w - s * eps(w / sqrt(1 + s^2), t(s)) + 1) / 2,

with ``t(s)`` the scheduler's 0-based training timestep whose noise level is nearest to ``s`` (or a
fractional one with ``timestep="interp"``). Only the training schedule matters: sampling-time
options of the scheduler (``clip_sample``, ``timestep_spacing``, thresholding...) play no role in D.
The model is assumed trained on images in [-1, 1] (diffusers' convention), with ``in_channels``
image channels; extra output channels (learned variance) are dropped. The scheduler's
``alphas_cumprod`` (float32 in diffusers) are recomputed in float64 from its betas when they agree
to float32 accuracy, so that a linear-beta model has exactly the grid of ``inrd.schedules.ddpm``.

The scheduler's ``prediction_type`` (``epsilon``, ``v_prediction`` or ``sample``) tells
:class:`EpsDenoiser` how to read the network's output. Sampling defaults: canonical INRD on the model's own
training grid (linear, cosine or any betas), pruned with :func:`inrd.schedules.prune`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..schedules import ddpm_alphas_cumprod
from .eps import EpsDenoiser, UNetEps, network_defaults
from .small import PaddedUNetEps

__all__ = ["build", "load_folder", "hub_folder", "fetch_hub", "is_hub_id", "DEFAULT_STEPS"]

# canonical INRD on the model's own training grid pruned to at most this many steps (the paper, Fig. 2:
# 20 pruned steps already give convincing samples; all T steps is DDPM itself)
DEFAULT_STEPS = 100


# a Hugging Face Hub model id "org/name" (one slash, no path syntax); an existing local path always wins
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(weights) -> bool:
    """Whether ``weights`` names a Hub model (``"google/ddpm-cifar10-32"``) rather than a local folder."""
    return isinstance(weights, str) and bool(_REPO_ID.match(weights)) and not Path(weights).expanduser().exists()


def hub_folder(repo_id: str, revision: Optional[str] = None) -> Path:
    """The local snapshot of Hub model ``repo_id`` in the huggingface_hub cache (``HF_HUB_CACHE``, read at
    call time). Never downloads, unless the environment asks for it with ``HF_HUB_OFFLINE=0``; a model
    not in the cache is a one-line ValueError saying how to fetch it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or None
    download = os.environ.get("HF_HUB_OFFLINE") == "0"
    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=not download))
    except LocalEntryNotFoundError:
        where = cache or "the default Hugging Face cache"
        raise ValueError(
            f"{repo_id} is not in {where} and inrd does not download on its own; fetch it once with "
            f"`inrd weights fetch {repo_id}` (or `hf download {repo_id}`, or run with HF_HUB_OFFLINE=0), then run again."
        ) from None
    except OSError as e:  # no network with HF_HUB_OFFLINE=0, an unknown repository, ...
        raise ValueError(f"cannot fetch {repo_id} from the Hugging Face Hub: {_first_line(e)}") from None


def fetch_hub(repo_id: str, revision: Optional[str] = None) -> Path:
    """Download Hub model ``repo_id`` into the huggingface_hub cache (what ``inrd weights fetch org/name``
    does; the one call that downloads) and return its snapshot folder; a model already cached is not fetched again."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    if not _REPO_ID.match(repo_id or ""):
        raise ValueError(f"{repo_id!r} is not a Hugging Face Hub model id; give it as org/name, e.g. google/ddpm-cifar10-32.")
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or None
    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache))
    except (OSError, ValueError) as e:  # offline, unknown repository, gated model, disk full, ...
        raise ValueError(f"cannot fetch {repo_id} from the Hugging Face Hub: {_first_line(e)}; nothing usable was kept.") from None


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _scheduler_config_file(folder: Path) -> Path:
    for candidate in (folder / "scheduler_config.json", folder / "scheduler" / "scheduler_config.json"):
        if candidate.is_file():
            return candidate
    raise ValueError(
        f"no scheduler_config.json in {folder} or {folder / 'scheduler'}: save the training scheduler next to the "
        f"model with scheduler.save_pretrained(folder), or pass scheduler= explicitly."
    )


def load_folder(folder) -> tuple[nn.Module, object]:
    """``(unet, scheduler)`` from a local folder written by ``save_pretrained`` (offline only).

    Accepted layouts: ``folder/{config.json, weights, scheduler_config.json}`` (a UNet and a scheduler
    saved into the same folder) or a pipeline folder ``folder/unet/`` + ``folder/scheduler/``.
    """
    import diffusers
    from diffusers import UNet2DModel

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"diffusers weights must be a folder written by save_pretrained, got {folder}.")
    unet_dir = folder / "unet" if (folder / "unet" / "config.json").is_file() else folder
    if not (unet_dir / "config.json").is_file():
        raise ValueError(f"no UNet config.json in {folder} (or {folder / 'unet'}); save the model with unet.save_pretrained(folder).")
    try:
        unet = UNet2DModel.from_pretrained(unet_dir, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"cannot load a UNet2DModel from {unet_dir}: {first}") from None
    cfg_file = _scheduler_config_file(folder)
    try:
        cfg = json.loads(cfg_file.read_text())
    except ValueError as e:
        raise ValueError(f"{cfg_file} is not valid JSON ({e}).") from None
    cls_name = cfg.get("_class_name", "DDPMScheduler")
    cls = getattr(diffusers, cls_name, None)
    if cls is None or not hasattr(cls, "from_config"):
        raise ValueError(f"{cfg_file} names an unknown scheduler class {cls_name!r} for this diffusers version.")
    return unet, cls.from_config(cfg)


def _prediction(scheduler) -> str:
    pred = getattr(getattr(scheduler, "config", None), "prediction_type", "epsilon")
    if pred not in ("epsilon", "v_prediction", "sample"):
        raise ValueError(f"the scheduler's prediction_type is {pred!r}; supported: epsilon, v_prediction, sample.")
    return pred


def _alphas_cumprod(scheduler) -> torch.Tensor:
    given = getattr(scheduler, "alphas_cumprod", None)
    if given is None:
        raise ValueError(f"{type(scheduler).__name__} has no alphas_cumprod; give a DDPM-type scheduler (e.g. DDPMScheduler).")
    given = torch.as_tensor(given, dtype=torch.float64).reshape(-1)
    if given.numel() and float(given[-1]) <= 0:
        raise ValueError("the scheduler reaches alphabar = 0 (zero terminal SNR, infinite sigma_T); eq. (15) needs alphabar > 0.")
    # diffusers computes alphas_cumprod in float32, where 1 - abar_1 = 1e-4 keeps only ~4 digits: sigma_1
    # comes out 8e-5 (relative) away from the float64 DDPM grid of inrd.schedules, and EpsDenoiser would
    # reject the grid's own sigma_1. Recompute the same schedule in float64 when we can, and keep it only
    # if it agrees with the scheduler's values to float32 accuracy (measured: 2.3e-7 relative).
    cfg = getattr(scheduler, "config", None) or {}
    if cfg.get("beta_schedule") == "linear" and cfg.get("trained_betas") is None:
        exact = ddpm_alphas_cumprod(given.numel(), cfg["beta_start"], cfg["beta_end"])  # = inrd.schedules.ddpm
    elif getattr(scheduler, "betas", None) is not None:
        exact = torch.cumprod(1 - torch.as_tensor(scheduler.betas, dtype=torch.float64).reshape(-1), 0)
    else:
        return given
    if exact.shape == given.shape and torch.allclose(exact, given, rtol=1e-5, atol=0):
        return exact
    return given


def _defaults(unet, den: EpsDenoiser):
    size = unet.config.sample_size
    if isinstance(size, (list, tuple)):
        size = size[0] if len(set(size)) == 1 else size[0]
    T = den.train_sigmas.numel() - 1
    return network_defaults(den, unet.config.in_channels, size or 64, steps=min(T, DEFAULT_STEPS))


def build(
    weights=None,
    device=None,
    model=None,
    scheduler=None,
    timestep: str = "nearest",
    clamp: bool = False,
    subfolder: Optional[str] = None,
) -> EpsDenoiser:
    """A diffusers ``UNet2DModel`` (eps, v or sample prediction) as ``D(u, sigma)`` on images in [0, 1] (paper eq. 15).

    Args:
        weights: a local folder written by ``save_pretrained`` holding the UNet and its scheduler
            config (see :func:`load_folder`), or a Hugging Face Hub model id ``"org/name"`` found in the
            huggingface_hub cache (:func:`hub_folder`); loaded with ``local_files_only=True``, never downloaded
            unless ``HF_HUB_OFFLINE=0`` asks for it.
        subfolder: a folder inside ``weights`` holding the model (e.g. one of several in a repository).
        model, scheduler: or the objects themselves (both required; the scheduler gives the training
            ``alphas_cumprod`` and the ``prediction_type``).
        timestep, clamp: see :class:`EpsDenoiser`.
    """
    if weights is not None:
        if model is not None or scheduler is not None:
            raise ValueError("give either weights (a save_pretrained folder) or model= and scheduler=, not both.")
        from ..weights import locate

        folder = hub_folder(weights) if is_hub_id(weights) else locate(weights)
        if subfolder is not None:
            if not (Path(folder) / subfolder).is_dir():
                raise ValueError(f"subfolder {subfolder!r} does not exist in {weights} ({folder}); give one of its folders or leave it out.")
            folder = Path(folder) / subfolder
        model, scheduler = load_folder(folder)
    elif subfolder is not None:
        raise ValueError("subfolder= selects a folder inside weights=; give weights= as well.")
    elif model is None:
        raise ValueError(
            "the diffusers adapter needs weights= (a local folder written by save_pretrained with the UNet and its "
            "scheduler config) or model= and scheduler= objects."
        )
    elif scheduler is None:
        raise ValueError("pass scheduler= (the one the model was trained with, e.g. DDPMScheduler()) along with model=.")
    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(cfg, "in_channels"):
        raise ValueError(f"model must be a diffusers UNet2DModel, got {type(model).__name__}.")
    if getattr(cfg, "num_class_embeds", None) or getattr(cfg, "class_embed_type", None):
        raise ValueError("class-conditional UNets are not supported (D(x, sigma) has no label); use an unconditional model.")
    abar = _alphas_cumprod(scheduler)
    model.eval()
    # any image size: the UNet halves the resolution once per down block but the last, so other sides are
    # reflect-padded to that multiple and cropped back (as inrd-small and the FFDNet adapter do)
    down = len(getattr(cfg, "down_block_types", ()) or ()) - 1
    net = PaddedUNetEps(model, 2 ** down) if down > 0 else UNetEps(model)
    den = EpsDenoiser(net, abar, timestep=timestep, clamp=clamp, prediction=_prediction(scheduler)).eval()
    den.sampling_defaults = _defaults(model, den)
    if device is not None:
        den = den.to(device)
    return den
