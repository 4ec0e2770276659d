"""The n-step subgrid of a fine schedule (e.g. the 1000 DDPM levels) whose INRD output law is closest in W2
to the data law, against uniform pruning (:func:`inrd.schedules.prune`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..choices import Rho
from ..relaxations import relaxation, step_relaxation
from ..schedules import check_sigmas, prune_indices
from .law import W2
from .spectrum import Spectrum

__all__ = ["SubgridResult", "subgrid_w2", "best_subgrid"]


class SubgridResult(NamedTuple):
    """Outcome of :func:`best_subgrid`: ``indices`` into the fine grid (``0 = a_0 < ... < a_n = T``),
    the subgrid ``sigmas``, its W2, that of uniform pruning, and the number of sweeps and moves made."""

    indices: np.ndarray
    sigmas: torch.Tensor
    w2: W2
    uniform: W2
    sweeps: int
    moves: int


def subgrid_w2(spectrum: Spectrum, fine_sigmas, indices, rho: Rho = "canonical", **start) -> W2:
    """W2 of the subgrid ``fine_sigmas[indices]`` (exact, through :func:`output_law`); ``start``:
    ``init``, ``init_std``, ``start_noise`` as for :meth:`Spectrum.w2`."""
    s = check_sigmas(fine_sigmas)[torch.as_tensor(np.asarray(indices), dtype=torch.long)]
    return spectrum.w2(s, rho, **start)


class _Law(NamedTuple):
    """The data spectrum (eigenvalues ``lam`` with multiplicities ``w``) and the start of the chain: mean
    error ``e_start``, variance ``v_start`` of V_T, and the noise ``start2`` it already carries."""

    lam: np.ndarray
    w: np.ndarray
    e_start: np.ndarray
    v_start: np.ndarray
    start2: float
    rho: Rho


def _coefs(law: _Law, sig: np.ndarray):
    """rho_t, gamma_t^2, c_t (t = 1..n) of the subgrid ``sig`` (index 0 unused); c_t is the gain of step t
    on eigenvalue lam: ``1 - rho_t + rho_t lam / (lam + sigma_t^2)``."""
    n = sig.size - 1
    r = np.full(n + 1, np.nan)
    r[1:] = step_relaxation(sig[:-1], sig[1:], law.rho)
    g2 = np.zeros(n + 1)
    g2[1:n] = sig[1:n] ** 2 - (1 - r[2:]) ** 2 * sig[2:] ** 2
    g2[n] = sig[n] ** 2 - law.start2
    c = 1.0 - r[:, None] + r[:, None] * (law.lam / (law.lam + sig[:, None] ** 2))
    return r, np.clip(g2, 0.0, None), c


def _objective(law: _Law, e0, v0):
    """Squared W2 between N(mean + e0, diag v0) and the data law, in the data's eigenbasis."""
    return np.sum(law.w * (e0**2 + (np.sqrt(v0) - np.sqrt(law.lam)) ** 2), axis=-1)


def _sweep(law: _Law, S: np.ndarray, idx: np.ndarray, best: float) -> tuple[float, int]:
    """One sweep of :func:`best_subgrid` over ``a_1..a_{n-1}`` (``idx`` is updated in place); returns the
    new best squared W2 and the number of moves made."""
    n, rho, lam = idx.size - 1, law.rho, law.lam
    moves = 0
    # Laws of V_{k+1} for every k (steps n..k+2), top-down. They use sigma_{k+1}..sigma_n only, which
    # this sweep (k ascending) has not touched yet when k is visited.
    _, g2, c = _coefs(law, S[idx])
    heads = [None] * (n + 1)
    e, v = law.e_start.copy(), law.v_start.copy()
    for t in range(n, 1, -1):
        heads[t - 1] = (e, v)  # law of V_t, needed at k = t - 1
        e, v = c[t] * e, c[t] ** 2 * (v + g2[t])
    # Map from (e_{k-1}, u_{k-1} = v_{k-1} + gamma_{k-1}^2) to V_0 through steps k-1..1:
    # e_0 = P e_{k-1}, v_0 = P^2 u_{k-1} + R; grown bottom-up as k increases.
    P, R = np.ones_like(lam), np.zeros_like(lam)
    for k in range(1, n):
        e, v = heads[k]
        cand = np.arange(idx[k - 1] + 1, idx[k + 1])  # always holds the current idx[k]
        sk = S[cand][:, None]  # (J, 1) candidate sigma_k
        s_up, s_dn = S[idx[k + 1]], S[idx[k - 1]]
        r_up = step_relaxation(sk, s_up, rho)  # rho_{k+1}
        r_k = step_relaxation(s_dn, sk, rho)  # rho_k
        g2_k = sk**2 - (1 - r_up) ** 2 * s_up**2  # gamma_k^2
        g2_dn = s_dn**2 - (1 - r_k) ** 2 * sk**2 if k > 1 else np.zeros_like(sk)  # gamma_{k-1}^2
        ok = ((g2_k >= -1e-12 * sk**2) & (g2_dn >= -1e-12 * sk**2))[:, 0]
        g2_k, g2_dn = np.clip(g2_k, 0, None), np.clip(g2_dn, 0, None)
        c_up = 1 - r_up + r_up * (lam / (lam + s_up**2))  # (J, n_lam)
        c_k = 1 - r_k + r_k * (lam / (lam + sk**2))
        # g2[k + 1] = gamma_{k+1}^2 depends on rho_{k+2} (or on the start): not on sigma_k
        e0 = P * (c_k * c_up * e)
        v0 = P**2 * (c_k**2 * (c_up**2 * (v + g2[k + 1]) + g2_k) + g2_dn) + R
        score = np.where(ok, _objective(law, e0, v0), np.inf)
        j = int(np.argmin(score))
        if score[j] < best * (1 - 1e-12) and cand[j] != idx[k]:
            idx[k] = cand[j]
            best = float(score[j])
            moves += 1
        else:
            j = int(np.searchsorted(cand, idx[k]))
        R = R + P**2 * g2_dn[j, 0]
        P = P * c_k[j]
    return best, moves


def best_subgrid(
    spectrum: Spectrum,
    fine_sigmas,
    steps: int,
    rho: Rho = "canonical",
    init: float = 0.5,
    init_std: float = 0.0,
    start_noise: float = 0.0,
    max_sweeps: int = 1000,
) -> SubgridResult:
    """Search the ``steps``-level subgrid of ``fine_sigmas`` with the lowest W2 (coordinate descent).

    The law of V_0 is a product over steps, so W2 does not split into a sum over steps and dynamic
    programming does not apply. Instead, starting from uniform pruning (:func:`inrd.schedules.prune_indices`),
    each sweep visits the interior indices ``a_1..a_{n-1}`` in turn and moves ``a_k`` to the position in
    ``(a_{k-1}, a_{k+1})`` that minimises W2 with the other indices fixed, if that lowers W2 (by more
    than 1e-12 relatively). Sweeps stop when one makes no move. ``a_0 = 0`` and ``a_n = T`` stay fixed
    (same sigma_0 and sigma_T, hence the same start). The result is a local minimum over single-index
    moves, never worse than uniform pruning.

    Moving ``a_k`` changes only steps k+1, k (through sigma_k, rho_k, rho_{k+1}, gamma_k) and gamma_{k-1},
    so every candidate position is scored at once: the law of ``V_{k+1}`` (steps above) and the affine
    map from ``V_{k-1}`` to ``V_0`` (steps below) are computed once per k. The final W2 is recomputed
    with :func:`output_law`.

    ``rho`` must be defined step by step: ``"canonical"``, ``"ind"``, ``"ddim"`` or a number. The start
    (``init``, a constant image; ``init_std``; ``start_noise``) is that of :meth:`Spectrum.w2`.
    """
    S = check_sigmas(fine_sigmas).numpy()
    T = S.size - 1
    idx = prune_indices(T, steps).numpy().copy()
    step_relaxation(S[1], S[1], rho)  # a relaxation defined step by step (a name or a number) ...
    relaxation(S, rho)  # ... with values in [0, 1]
    kw = {"init": float(init), "init_std": float(init_std), "start_noise": float(start_noise)}
    uniform = subgrid_w2(spectrum, S, idx, rho, **kw)
    law = _Law(spectrum.eigenvalues, spectrum.counts, spectrum.start(kw["init"]) - spectrum.mean,
               np.full_like(spectrum.eigenvalues, kw["init_std"] ** 2), kw["start_noise"] ** 2, rho)
    sweeps = moves = 0
    best = uniform.w2**2
    for sweeps in range(1, max_sweeps + 1):  # noqa: B007 - the number of sweeps made is returned
        best, moved = _sweep(law, S, idx, best)
        moves += moved
        if not moved:
            break
    final = subgrid_w2(spectrum, S, idx, rho, **kw)
    return SubgridResult(indices=idx, sigmas=torch.from_numpy(S[idx]), w2=final, uniform=uniform, sweeps=sweeps, moves=moves)
