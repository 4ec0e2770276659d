"""Relaxations ``rho_t`` and the noise ``gamma_t`` they leave to add, for INRD on a schedule.

Conventions (those of :mod:`inrd.schedules`): ``sigmas[t] = sigma_t``, ``t = 0..T``, ascending, in the
[0, 1] units of the images.

* a relaxation is a float64 tensor ``rho`` of length ``T + 1`` with ``rho[t] = rho_t`` for
  ``t = 1..T``; ``rho[0]`` is unused and set to NaN. The relaxed denoiser is
  ``D^rho(u) = rho D(u) + (1 - rho) u`` (paper eq. 13);
* ``gammas[t] = gamma_t`` is the std of the noise added before denoising at step ``t``:
  ``gamma_t^2 = sigma_t^2 - (1 - rho_{t+1})^2 sigma_{t+1}^2`` (paper, Section 2.3), and at the start
  ``gamma_T^2 = sigma_T^2 - s^2`` where ``s`` is the noise level already carried by ``V_T``
  (``(1 - rho_{T+1}) sigma_{T+1}`` in the paper; 0 for the usual start ``rho_{T+1} = 1``).
* a :class:`Scheme` holds the three together, validated once: what :func:`inrd.sample`, the distributed
  sampler, the posterior sampler and :class:`inrd.diffusers.INRDScheduler` run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch

from .choices import Rho, RhoName, maybe_choose, names_of
from .schedules import _f64, check_sigmas

__all__ = ["Scheme", "scheme", "relaxation", "step_relaxation", "gammas", "ddim_eta"]

# Slack for gamma^2 < 0 caused only by float64 rounding (e.g. the DDIM-like relaxation, for which
# gamma_t^2 = 0 exactly in real arithmetic). Relative to sigma_t^2: 64 ulps of float64.
_GAMMA2_RTOL = 64 * np.finfo(np.float64).eps


def step_relaxation(sigma_prev, sigma, rho: Union[str, float] = "canonical"):
    """``rho_t`` of a relaxation defined step by step, from ``sigma_{t-1}`` and ``sigma_t > 0``, elementwise
    on numbers, numpy arrays or tensors (broadcast): ``"canonical"`` ``1 - sigma_{t-1}^2 / sigma_t^2``
    (paper eq. 21), ``"ind"`` 1, ``"ddim"`` ``1 - sigma_{t-1} / sigma_t``, a number: itself. No range
    check: :func:`relaxation` applies it to the consecutive levels of a schedule and checks the result."""
    q = sigma_prev / sigma
    if isinstance(rho, str):
        key = maybe_choose(rho, RhoName)
        if key == "canonical":
            return 1.0 - q**2
        if key == "ind":
            return q * 0 + 1.0
        if key == "ddim":
            return 1.0 - q
        raise ValueError(f"unknown relaxation {rho!r}; use {', '.join(names_of(RhoName))}, a number in [0, 1] or a tensor.")
    if isinstance(rho, (int, float, np.floating)) and not isinstance(rho, bool):
        return q * 0 + float(rho)
    raise ValueError(f"a relaxation defined step by step is 'canonical', 'ind', 'ddim' or a number, got {type(rho).__name__}.")


def relaxation(sigmas, rho: Rho = "canonical") -> torch.Tensor:
    """Relaxation parameters ``rho[t] = rho_t`` (t = 1..T; ``rho[0]`` is NaN, unused).

    * ``"canonical"``: ``rho_t = 1 - sigma_{t-1}^2 / sigma_t^2`` (paper eq. 21): DDPM itself;
    * ``"ind"``: ``rho_t = 1`` (iterative noising-denoising);
    * ``"ddim"``: ``rho_t = 1 - sigma_{t-1} / sigma_t``, the smallest admissible rho: gamma = 0, the
      deterministic DDIM-like scheme;
    * a float in [0, 1]: constant;
    * a tensor of length T + 1 (``rho[0]`` ignored).
    """
    s = check_sigmas(sigmas)
    T = s.numel() - 1
    r = torch.full((T + 1,), float("nan"), dtype=torch.float64)
    if isinstance(rho, str):
        r[1:] = step_relaxation(s[:-1], s[1:], rho)
    elif isinstance(rho, torch.Tensor) and rho.ndim > 0 or isinstance(rho, (list, tuple, np.ndarray)):
        given = _f64(rho, "rho")
        if given.shape != (T + 1,):
            raise ValueError(
                f"rho tensor must have length T+1 = {T + 1} (rho[t] for t = 1..T, rho[0] ignored), got shape {tuple(given.shape)}."
            )
        r[1:] = given[1:]
    else:
        try:
            if isinstance(rho, (bool, complex)) or (isinstance(rho, torch.Tensor) and rho.is_complex()):
                raise TypeError
            r[1:] = float(rho)
        except (TypeError, ValueError):
            raise TypeError(f"rho must be 'canonical', 'ind', 'ddim', a number in [0, 1] or a tensor, got {type(rho).__name__}.") from None
    bad = ~((r[1:] >= 0) & (r[1:] <= 1))
    if bad.any():
        t = int(torch.nonzero(bad)[0]) + 1
        raise ValueError(f"rho_{t} = {r[t].item():.6g} is outside [0, 1]; a relaxation interpolates Id (0) and the denoiser (1).")
    return r


def gammas(sigmas, rho: Rho = "canonical", start_noise: float = 0.0) -> torch.Tensor:
    """Noise to add before each denoising: ``gamma[t] = gamma_t``, t = 1..T (``gamma[0] = 0``).

    ``gamma_t^2 = sigma_t^2 - (1 - rho_{t+1})^2 sigma_{t+1}^2`` keeps the noise level of
    ``V_t + gamma_t Z_t`` equal to sigma_t (paper, eq. 20 and Section 2.3); ``gamma_T^2 = sigma_T^2 -
    start_noise^2`` where ``start_noise`` is the noise level already in ``V_T``. Raises ``ValueError``
    naming the first t with ``gamma_t^2 < 0`` and the smallest admissible ``rho_{t+1}`` there.
    """
    s = check_sigmas(sigmas)
    return _gammas(s, relaxation(s, rho), start_noise)


def _gammas(s: torch.Tensor, r: torch.Tensor, start_noise: float) -> torch.Tensor:
    """:func:`gammas` from a checked schedule ``s`` and its relaxation ``r``."""
    if isinstance(start_noise, (bool, complex)) or not 0 <= float(start_noise) < math.inf:
        raise ValueError(f"start_noise (the noise level already in V_T) must be a finite number >= 0, got {start_noise}.")
    T = s.numel() - 1
    carried = torch.empty(T + 1, dtype=torch.float64)  # noise level carried by V_t
    carried[:T] = (1.0 - r[1:]) * s[1:]
    carried[T] = float(start_noise)
    g2 = s**2 - carried**2
    g2[0] = 0.0
    # rounding slack: rho is rounded to ~eps absolutely, so carried = (1 - rho_{t+1}) sigma_{t+1} is off by
    # ~eps sigma_{t+1} and carried^2 by ~eps sigma_t sigma_{t+1}, which exceeds eps sigma_t^2 when
    # sigma_{t+1} >> sigma_t (e.g. "ddim" on affine(20): sigma_2 / sigma_1 = 830).
    tiny = _GAMMA2_RTOL * s * torch.cat([s[1:], s[-1:]])
    bad = g2[1:] < -tiny[1:]
    if bad.any():
        t = int(torch.nonzero(bad)[0]) + 1
        if t == T:
            raise ValueError(
                f"gamma_T^2 < 0: V_T already carries noise {start_noise:.6g} > sigma_T = {s[T].item():.6g}; "
                f"lower the start noise or raise sigma_T."
            )
        need = 1.0 - (s[t] / s[t + 1]).item()
        raise ValueError(
            f"gamma_{t}^2 = {g2[t].item():.3g} < 0: rho_{t + 1} = {r[t + 1].item():.6g} denoises too little; "
            f"it must be >= 1 - sigma_{t}/sigma_{t + 1} = {need:.6g}."
        )
    # gamma_t^2 within the rounding slack is 0 (e.g. "ddim", where it is 0 in real arithmetic); its square
    # root would otherwise inject noise of ~1e-8 sigma_t into a deterministic scheme. Where V_t carries no
    # noise (IND, the usual start) gamma_t is sigma_t itself: sqrt(sigma^2) is not exact in every CPU's
    # vectorised sqrt (AVX-512 rounds it 1 ulp off).
    g = torch.sqrt(torch.where(g2 <= tiny, torch.zeros_like(g2), g2))
    return torch.where(carried == 0, s, g).index_fill_(0, torch.tensor([0]), 0.0)


@dataclass(frozen=True)
class Scheme:
    """The schedules (sigma_t, rho_t) of an INRD run and the noise gamma_t they leave to add (paper,
    Section 2.3), validated once: float64 CPU tensors of length ``T + 1`` indexed by t (``rhos[0]`` is NaN,
    ``gammas[0] = 0``). ``rho`` is the relaxation as given (a name, a number, or ``"custom"`` for a
    per-step tensor); ``start_noise`` the noise level already carried by V_T. Build it with :func:`scheme`."""

    sigmas: torch.Tensor
    rhos: torch.Tensor
    gammas: torch.Tensor
    rho: Union[str, float]
    start_noise: float = 0.0

    @property
    def T(self) -> int:
        """Number of INRD steps."""
        return self.sigmas.numel() - 1

    def record(self) -> dict:
        """The JSON-ready description (strict JSON: the unused ``rhos[0]`` is ``null``)."""
        return {
            "steps": self.T,
            "sigmas": self.sigmas.tolist(),
            "rho": self.rho,
            "rhos": [None, *self.rhos[1:].tolist()],
            "gammas": self.gammas.tolist(),
            "start_noise": self.start_noise,
        }


def scheme(sigmas, rho: Rho = "canonical", start_noise: float = 0.0) -> Scheme:
    """The :class:`Scheme` of ``sigmas`` with relaxation ``rho`` (:func:`relaxation`) and the gammas it
    leaves (:func:`gammas`); every check (sigmas, rho in [0, 1], gamma^2 >= 0) happens here, once."""
    if isinstance(sigmas, Scheme):
        raise TypeError("sigmas is a Scheme already; pass it as it is (its rho is fixed) instead of building another.")
    s = check_sigmas(sigmas)
    r = relaxation(s, rho)
    name = maybe_choose(rho, RhoName) if isinstance(rho, str) else ("custom" if r.numel() > 1 and _is_sequence(rho) else float(rho))
    return Scheme(s, r, _gammas(s, r, start_noise), name, float(start_noise))


def _is_sequence(rho) -> bool:
    return (isinstance(rho, torch.Tensor) and rho.ndim > 0) or isinstance(rho, (list, tuple, np.ndarray))


def ddim_eta(sigmas, eta: float) -> torch.Tensor:
    """The relaxation of DDIM's ``eta`` family (Song et al. 2021) on a schedule: with ``q = sigma_{t-1} /
    sigma_t``, ``1 - rho_t = q sqrt(1 - eta^2 (1 - q^2))``, so that the fresh noise added before the next
    step is ``gamma_{t-1}^2 = eta^2 sigma_{t-1}^2 (1 - q^2)``, ``eta^2`` times that of canonical INRD.
    ``eta = 0`` is ``"ddim"`` (no fresh noise), ``eta = 1`` is ``"canonical"`` (DDPM); a tensor for
    :func:`relaxation` / :func:`inrd.sample`."""
    eta = float(eta)
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1] (0: DDIM-like, 1: canonical), got {eta}.")
    s = check_sigmas(sigmas)
    q = s[:-1] / s[1:]
    rho = torch.full_like(s, float("nan"))
    rho[1:] = 1.0 - q * torch.sqrt(1.0 - eta**2 * (1.0 - q**2))
    return rho
