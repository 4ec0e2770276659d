"""One adapter for every DDPM-family diffusion network: paper eq. (15) in [0, 1] units.

A DDPM network is trained on images in [-1, 1] with ``x_t = sqrt(abar_t) w + sqrt(1 - abar_t) e``.
Writing ``s = 2 sigma`` (the noise level in [-1, 1] units) and ``a = 1 / (1 + s^2)`` (= abar at that level),
``w = 2 u - 1`` and ``x = sqrt(a) w``, the clean estimate is, by what the network predicts:

    epsilon:       D^{[-1,1]}(w) = w - s * eps(x, t(s))                      (eq. 15)
    v_prediction:  D^{[-1,1]}(w) = sqrt(a) x - sqrt(1 - a) v(x, t(s))        (v = sqrt(a) e - sqrt(1 - a) w)
    sample:        D^{[-1,1]}(w) = x0(x, t(s))

and ``D(u) = (D^{[-1,1]}(2 u - 1) + 1) / 2``. This module is the single place where the [-1, 1] <-> [0, 1]
conversion happens, for DiffUNet, any diffusers UNet and inrd-small alike.
"""

from __future__ import annotations

from typing import Callable, Literal, Optional

import torch
from deepinv.models import Denoiser as _DeepinvDenoiser
from torch import nn

from ..schedules import sigmas_from_alphas_cumprod
from ..validate import check_image, sigma_vector
from .base import SamplingDefaults

__all__ = ["EpsDenoiser", "UNetEps", "Prediction", "clean_estimate", "network_defaults"]

Prediction = Literal["epsilon", "v_prediction", "sample"]


def clean_estimate(prediction: Prediction, w: torch.Tensor, out: torch.Tensor, s, sqrt_a) -> torch.Tensor:
    """``D^{[-1,1]}(w)``, the clean estimate in [-1, 1] units (eq. 15 and its v / sample forms of the module
    docstring), from the network output ``out`` at ``x = sqrt_a * w``: ``s`` is the noise level of ``w`` in
    [-1, 1] units and ``sqrt_a = 1 / sqrt(1 + s^2)``, numbers or tensors broadcasting against ``w``. The one
    implementation of eq. 15: :class:`EpsDenoiser` and :class:`inrd.diffusers.INRDScheduler` both call it."""
    if prediction == "epsilon":
        return w - s * out
    if prediction == "v_prediction":  # x0 = sqrt(a) x_t - sqrt(1 - a) v
        return sqrt_a * (sqrt_a * w) - (1 - sqrt_a**2) ** 0.5 * out
    return out


class UNetEps(nn.Module):
    """``net(x, t)`` of any timestep-conditioned UNet as a plain tensor, in the network's own dtype.

    ``x`` in [-1, 1]-scaled units, ``t`` a (B,) tensor of 0-based timesteps. A diffusers ``UNet2DModel``
    returns an output object (its ``.sample`` is taken); guided-diffusion's DiffUNet is called with
    ``type_t="timestep"`` (``call_kwargs``). The input is cast to the network's dtype and the output back.
    """

    def __init__(self, unet: nn.Module, **call_kwargs):
        super().__init__()
        self.unet = unet
        self.call_kwargs = call_kwargs

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        dtype = next(self.unet.parameters()).dtype
        out = self.unet(x.to(dtype), t.to(x.device), **self.call_kwargs)
        out = getattr(out, "sample", out)
        return (out[0] if isinstance(out, tuple) else out).to(x.dtype)


class EpsDenoiser(_DeepinvDenoiser):
    """``D(u, sigma)`` from a DDPM-family network (paper eq. 15); sigma in [0, 1] units, output not clamped.

    Args:
        eps_model: ``eps_model(x, t)`` on [-1, 1]-scaled inputs, ``t`` a (B,) tensor of timesteps
            ``0..T-1`` (0-indexed as in diffusers / guided-diffusion: timestep k is the paper's t = k+1).
            Extra output channels (learned variance) are dropped.
        prediction: what the network predicts: ``"epsilon"`` (eq. 15), ``"v_prediction"`` or ``"sample"``.
        alphas_cumprod: (T,) tensor ``abar`` of the training schedule.
        timestep: ``"nearest"`` feeds the grid timestep closest to sigma in log sigma (exact on the
            grid, what a timestep-conditioned network has seen); ``"interp"`` feeds a fractional
            timestep interpolated linearly in log sigma (as k-diffusion does; the network must accept
            float timesteps). Either way ``a = 1 / (1 + 4 sigma^2)`` uses the true sigma.
        clamp: clamp the output to [0, 1] (off by default: the paper's D has no clamp).
    """

    def __init__(self, eps_model: Callable, alphas_cumprod, timestep: str = "nearest", clamp: bool = False,
                 prediction: Prediction = "epsilon"):
        super().__init__()
        if timestep not in ("nearest", "interp"):
            raise ValueError(f"timestep must be 'nearest' or 'interp', got {timestep!r}.")
        if prediction not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"prediction must be 'epsilon', 'v_prediction' or 'sample', got {prediction!r}.")
        self.prediction = prediction
        abar = torch.as_tensor(alphas_cumprod, dtype=torch.float64).reshape(-1)
        if not ((abar > 0) & (abar < 1)).all() or (abar[1:] >= abar[:-1]).any():
            raise ValueError("alphas_cumprod must be strictly decreasing values in (0, 1).")
        self.eps_model = eps_model
        self.timestep = timestep
        self.clamp = clamp
        # log of the noise levels in [-1, 1] units, ascending with the timestep
        self.register_buffer("log_s_grid", 0.5 * torch.log((1 - abar) / abar), persistent=False)
        # the training grid in [0, 1] units, exactly as inrd.schedules computes it (a plain float64 attribute:
        # never cast by .to(dtype))
        self._train_sigmas = sigmas_from_alphas_cumprod(abar)

    @property
    def train_sigmas(self) -> torch.Tensor:
        """The training grid sigma_0 = 0 < sigma_1 < ... < sigma_T in [0, 1] units (float64)."""
        return self._train_sigmas.clone()

    @property
    def sigma_range(self) -> tuple[float, float]:
        """Noise levels the network was trained on, in [0, 1] units (sigma_1, sigma_T)."""
        s = torch.exp(self.log_s_grid) / 2
        return float(s[0]), float(s[-1])

    def timesteps(self, sigma: torch.Tensor) -> torch.Tensor:
        """Network timestep for each noise level (float64 (B,) tensor; integral when ``nearest``)."""
        grid = self.log_s_grid.to(sigma.device)
        ls = torch.log(2 * sigma.to(torch.float64))
        lo, hi = self.sigma_range
        tol = 1e-6  # relative: sigmas computed from the same abar in float64 agree to ~1e-15
        if (sigma < lo * (1 - tol)).any() or (sigma > hi * (1 + tol)).any():
            raise ValueError(
                f"sigma {sigma.min().item():.4g}..{sigma.max().item():.4g} is outside the trained range "
                f"[{lo:.4g}, {hi:.4g}] of this diffusion model; use a schedule inside it (e.g. a pruned DDPM grid)."
            )
        if self.timestep == "nearest":
            return torch.argmin((grid[None] - ls[:, None]).abs(), dim=1).to(torch.float64)
        k = torch.searchsorted(grid, ls.clamp(grid[0], grid[-1])).clamp(1, grid.numel() - 1)
        frac = (ls - grid[k - 1]) / (grid[k] - grid[k - 1])
        return (k - 1).to(torch.float64) + frac.clamp(0, 1)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        check_image(x, "x")
        sig = sigma_vector(sigma, x).to(torch.float64)
        if (sig == 0).all():
            return x  # no noise to remove
        s = 2 * sig  # [-1, 1] units
        t = self.timesteps(sig)
        if self.timestep == "nearest":
            t = t.long()
        w = 2 * x - 1
        scale = (1 / torch.sqrt(1 + s**2)).to(x.dtype).reshape(-1, 1, 1, 1)  # sqrt(a)
        xin = scale * w
        out = self.eps_model(xin, t.to(x.device))[:, : x.shape[1]].to(x.dtype)
        d = clean_estimate(self.prediction, w, out, s.to(x.dtype).reshape(-1, 1, 1, 1), scale)
        out = (d + 1) / 2
        return out.clamp(0, 1) if self.clamp else out


def network_defaults(den: EpsDenoiser, channels: int, size: int, steps: Optional[int] = None,
                     rho="canonical", subgrid=None, clip="none", power: float = 1.0, first=None) -> SamplingDefaults:
    """Sampling defaults of a diffusion network: canonical INRD (= DDPM ancestral sampling, eq. 21) on its
    own training grid pruned to ``steps`` (all T steps by default), started from V_T = 0.5 as in the paper;
    the other arguments are the fields of :class:`SamplingDefaults` of the same names."""
    grid = tuple(den.train_sigmas.tolist())
    return SamplingDefaults(
        rho=rho, schedule="training", steps=int(steps or len(grid) - 1), train_sigmas=grid, init=0.5, init_std=0.0,
        channels=int(channels), size=int(size), subgrid=tuple(subgrid) if subgrid else None, clip=clip,
        power=float(power), first=None if first is None else int(first),
    )
