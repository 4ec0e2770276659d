"""Exact law of INRD's output ``V_0`` on Gaussian data, and its Wasserstein-2 distance to the data law.

Per eigen-coordinate (eigenvalue ``lam``, data mean ``m``) one INRD step is the affine map
``V_{t-1} - m = c_t (V_t - m + gamma_t Z_t)`` with ``c_t = 1 - rho_t + rho_t lam / (lam + sigma_t^2)``
(paper eqs. 13 and 16), so the law of ``V_0`` is Gaussian and W2 has a closed form (see :mod:`inrd.gaussian`).
Everything is float64 numpy, vectorised over eigenvalues; units are those of [0, 1] images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..choices import Rho
from ..relaxations import gammas, relaxation
from ..schedules import check_sigmas

__all__ = ["Law", "W2", "output_law", "w2_distance", "w2"]


class Law(NamedTuple):
    """Law of ``V_0`` in the eigenbasis: independent coordinates ``N(mean_i, var_i)``."""

    mean: np.ndarray
    var: np.ndarray


@dataclass(frozen=True)
class W2:
    """Wasserstein-2 distance between ``N(mu0, diag v0)`` and the data law ``N(m, diag lam)``.

    ``w2^2 = bias^2 + spread^2`` with ``bias = ||mu0 - m||`` and ``spread = ||sqrt(v0) - sqrt(lam)||``
    (all in [0, 1] image units, summed over the ``d`` coordinates). ``total_std = sqrt(sum lam)``.
    """

    w2: float
    bias: float
    spread: float
    total_std: float
    d: int

    @property
    def relative(self) -> float:
        """``w2 / total_std``: 0 = exact, 1 = as far as the point mass at the data mean."""
        return self.w2 / self.total_std if self.total_std > 0 else float("inf") if self.w2 > 0 else 0.0

    @property
    def rms(self) -> float:
        """``w2 / sqrt(d)``: per-pixel RMS in [0, 1] units (multiply by 255 for grey levels)."""
        return self.w2 / math.sqrt(self.d)

    def as_dict(self) -> dict:
        return {
            "w2": self.w2,
            "bias": self.bias,
            "spread": self.spread,
            "total_std": self.total_std,
            "d": self.d,
            "relative": self.relative,
            "rms": self.rms,
        }


def _array(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or an array of numbers, got {type(x).__name__}.") from None
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values; give finite numbers.")
    return a


def _eigenvalues(eigenvalues) -> np.ndarray:
    lam = _array(eigenvalues, "eigenvalues")
    if lam.ndim == 0:
        lam = lam[None]
    if lam.size == 0:
        raise ValueError("eigenvalues is empty; give at least one covariance eigenvalue.")
    if (lam < 0).any():
        raise ValueError(
            f"eigenvalues must be >= 0 (variances of the data in its eigenbasis), got min {lam.min():.3g}; "
            "clip tiny negative values from a numerical eigendecomposition with np.clip(lam, 0, None)."
        )
    return lam


def _like(x, lam: np.ndarray, name: str) -> np.ndarray:
    """``x`` (a number or an array) broadcast to the shape of the eigenvalues, with a clear error."""
    a = _array(x, name)
    try:
        return np.broadcast_to(a, lam.shape).copy()
    except ValueError:
        raise ValueError(
            f"{name} has shape {a.shape} but the eigenvalues have shape {lam.shape}; give one value per "
            "eigenvalue (same length) or a single number."
        ) from None


def output_law(sigmas, rho: Rho, eigenvalues, mean, init=0.5, init_std=0.0, start_noise: float = 0.0) -> Law:
    """Exact law of ``V_0`` of INRD with the exact MMSE denoiser of ``N(mean, diag(eigenvalues))``.

    Args:
        sigmas: ascending schedule ``sigma_0..sigma_T`` ([0, 1] units), as for :func:`inrd.sample`.
        rho: relaxation (``"canonical"``, ``"ind"``, ``"ddim"``, a number or a length T+1 tensor).
        eigenvalues: covariance eigenvalues ``lam_i >= 0`` (any shape; the result has that shape).
        mean: data mean, coordinates in the same eigenbasis (an array like ``eigenvalues`` or a number
            applied to every coordinate).
        init: start ``V_T``, coordinates in the eigenbasis (array or number). A number is the same value
            in every coordinate, which is a constant image only in the pixel basis: in a Fourier or PCA
            basis, the constant image ``c`` has coordinates ``c * Spectrum.ones`` (see :meth:`Spectrum.law`).
        init_std: std of the Gaussian noise added to the start (number, or per coordinate; :func:`inrd.sample`
            only takes a number, white noise).
        start_noise: noise level already carried by ``V_T``: ``gamma_T^2 = sigma_T^2 - start_noise^2``.

    Returns:
        :class:`Law` with ``mean = E[V_0]`` and ``var = Var V_0`` per coordinate (float64).
    """
    s = check_sigmas(sigmas)
    r = relaxation(s, rho)
    g = gammas(s, r, start_noise=start_noise)
    lam = _eigenvalues(eigenvalues)
    m = _like(mean, lam, "mean")
    e = _like(init, lam, "init") - m
    sd = _like(init_std, lam, "init_std")
    if (sd < 0).any():
        raise ValueError(f"init_std must be >= 0 (a standard deviation), got min {sd.min():.3g}.")
    v = sd**2
    s2, r, g2 = (s**2).numpy(), r.numpy(), (g**2).numpy()
    for t in range(s.numel() - 1, 0, -1):  # t = T..1; sigma_t > 0 for t >= 1 (strictly ascending)
        c = 1.0 - r[t] + r[t] * (lam / (lam + s2[t]))
        e = c * e
        v = c * c * (v + g2[t])
    return Law(mean=m + e, var=v)


def w2_distance(law: Law, eigenvalues, mean, weights=None) -> W2:
    """W2 between ``N(law.mean, diag law.var)`` and ``N(mean, diag eigenvalues)`` (same basis).

    ``weights`` (optional, >= 0) are multiplicities of the coordinates (see :meth:`Spectrum.compress`).
    """
    lam = _eigenvalues(eigenvalues)
    m = _like(mean, lam, "mean")
    mu0 = _like(law.mean, lam, "law.mean")
    v0 = _like(law.var, lam, "law.var")
    if (v0 < 0).any():
        raise ValueError("law.var has negative entries; variances must be >= 0.")
    w = np.ones_like(lam) if weights is None else _like(weights, lam, "weights")
    if (w < 0).any():
        raise ValueError("weights (multiplicities) must be >= 0.")
    bias2 = float(np.sum(w * (mu0 - m) ** 2))
    spread2 = float(np.sum(w * (np.sqrt(v0) - np.sqrt(lam)) ** 2))
    return W2(
        w2=math.sqrt(bias2 + spread2),
        bias=math.sqrt(bias2),
        spread=math.sqrt(spread2),
        total_std=math.sqrt(float(np.sum(w * lam))),
        d=int(round(float(np.sum(w)))),
    )


def w2(sigmas, rho: Rho, eigenvalues, mean, init=0.5, init_std=0.0, start_noise: float = 0.0, weights=None) -> W2:
    """W2 distance between the law of INRD's ``V_0`` (:func:`output_law`, same arguments) and the data law."""
    law = output_law(sigmas, rho, eigenvalues, mean, init=init, init_std=init_std, start_noise=start_noise)
    return w2_distance(law, eigenvalues, mean, weights)
