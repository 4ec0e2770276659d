"""One adapter for every epsilon-predicting diffusion network: paper eq. (15) in [0, 1] units.

A DDPM network ``eps(x_t, t)`` is trained on images in [-1, 1] with ``x_t = sqrt(abar_t) w + sqrt(1 - abar_t) e``.
Writing ``s = 2 sigma`` (the noise level in [-1, 1] units) and ``a = 1 / (1 + s^2)`` (= abar at that level):

    w = 2 u - 1,   D^{[-1,1]}(w) = w - s * eps(sqrt(a) w, t(s)),   D(u) = (D^{[-1,1]}(2 u - 1) + 1) / 2.

This module is the single place where the [-1, 1] <-> [0, 1] conversion happens.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..validate import check_image, sigma_vector

__all__ = ["EpsDenoiser"]


class EpsDenoiser(nn.Module):
    """``D(u, sigma)`` from an eps-network (paper eq. 15); sigma in [0, 1] units, output not clamped.

    Args:
        eps_model: ``eps_model(x, t) -> eps`` on [-1, 1]-scaled inputs, ``t`` a (B,) tensor of timesteps
            ``0..T-1`` (0-indexed as in diffusers / guided-diffusion: timestep k is the paper's t = k+1).
            Extra output channels (learned variance) are dropped.
        alphas_cumprod: (T,) tensor ``abar`` of the training schedule.
        timestep: ``"nearest"`` feeds the grid timestep closest to sigma in log sigma (exact on the
            grid, what a timestep-conditioned network has seen); ``"interp"`` feeds a fractional
            timestep interpolated linearly in log sigma (as k-diffusion does; the network must accept
            float timesteps). Either way ``a = 1 / (1 + 4 sigma^2)`` uses the true sigma.
        clamp: clamp the output to [0, 1] (off by default: the paper's D has no clamp).
    """

    def __init__(self, eps_model: Callable, alphas_cumprod, timestep: str = "nearest", clamp: bool = False):
        super().__init__()
        if timestep not in ("nearest", "interp"):
            raise ValueError(f"timestep must be 'nearest' or 'interp', got {timestep!r}.")
        abar = torch.as_tensor(alphas_cumprod, dtype=torch.float64).reshape(-1)
        if not ((abar > 0) & (abar < 1)).all() or (abar[1:] >= abar[:-1]).any():
            raise ValueError("alphas_cumprod must be strictly decreasing values in (0, 1).")
        self.eps_model = eps_model
        self.timestep = timestep
        self.clamp = clamp
        # log of the noise levels in [-1, 1] units, ascending with the timestep
        self.register_buffer("log_s_grid", 0.5 * torch.log((1 - abar) / abar), persistent=False)

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
        eps = self.eps_model(scale * w, t.to(x.device))
        eps = eps[:, : x.shape[1]].to(x.dtype)
        d = w - s.to(x.dtype).reshape(-1, 1, 1, 1) * eps
        out = (d + 1) / 2
        return out.clamp(0, 1) if self.clamp else out
