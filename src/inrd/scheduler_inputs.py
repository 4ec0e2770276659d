"""What a diffusers pipeline hands :class:`inrd.diffusers.INRDScheduler`, checked: one-line errors instead of
silent coercion (a truncated timestep, a broadcast model output, an integer tensor), and the relaxation in
the JSON form a scheduler config stores."""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

__all__ = ["relaxation_for_config", "integral_timesteps", "check_floating", "own_channels"]


def relaxation_for_config(rho) -> Union[str, float, list]:
    """rho as a JSON-able value (a per-step tensor becomes a list of floats, None for the unused rho_0)."""
    if isinstance(rho, str):
        return rho
    if isinstance(rho, (torch.Tensor, np.ndarray, list, tuple)) and np.ndim(rho) > 0:
        values = [float("nan") if r is None else r for r in rho] if isinstance(rho, (list, tuple)) else rho
        return [None] + [float(r) for r in torch.as_tensor(values, dtype=torch.float64).reshape(-1)[1:]]
    if isinstance(rho, (int, float)) or (isinstance(rho, torch.Tensor) and rho.ndim == 0):
        return float(rho)
    raise TypeError(f"rho must be 'canonical', 'ind', 'ddim', a number or a per-step tensor, got {type(rho).__name__}.")


def integral_timesteps(value, name: str) -> torch.Tensor:
    """``value`` (an int, a number or a tensor of them) as an int64 CPU tensor; a non-integral value such
    as 999.7 is a one-line ValueError, not silently truncated (it is not a training timestep)."""
    if isinstance(value, bool) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        raise TypeError(f"{name} must be an integer training timestep (an entry of scheduler.timesteps), got a bool.")
    try:
        t = torch.as_tensor(value).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be an integer training timestep (an entry of scheduler.timesteps), got {type(value).__name__}.") from None
    if t.is_complex() or not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise TypeError(f"{name} must be an integer training timestep (an entry of scheduler.timesteps), got dtype {t.dtype}.")
    if t.is_floating_point():
        if not bool(torch.isfinite(t).all()) or bool((t != t.round()).any()):
            bad = t[~torch.isfinite(t) | (t != t.round())].reshape(-1)[0].item()
            raise ValueError(f"{name} must be an integer training timestep, got {bad}; use an entry of scheduler.timesteps (no rounding is done).")
    return t.to(torch.int64)


def check_floating(x, name: str) -> None:
    """A real floating tensor: an integer or complex ``model_output``/``sample`` is a one-line TypeError."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a real floating tensor (float16/32/64 or bfloat16), got dtype {x.dtype}; convert it with .float().")


def own_channels(model_output: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    """The model output shaped exactly like the sample: twice the channels (a learned variance) keeps the
    first half, anything else that differs is a one-line ValueError (no broadcasting)."""
    if model_output.shape == sample.shape:
        return model_output
    if model_output.ndim == sample.ndim >= 2 and model_output.shape[1] == 2 * sample.shape[1] and \
            model_output.shape[:1] + model_output.shape[2:] == sample.shape[:1] + sample.shape[2:]:
        return model_output[:, : sample.shape[1]]  # learned variance: gamma is fixed by rho
    raise ValueError(
        f"model_output has shape {tuple(model_output.shape)} but sample {tuple(sample.shape)}; the network must predict one "
        f"value per sample entry (or twice the channels, a learned variance)."
    )
