"""Stability diagnostics of an iterative restoration and the result every algorithm returns.

:func:`diagnose` turns the per-iteration history (relative residual ``||v_{n+1} - v_n|| / ||v_n||``,
iterate norms, PSNR) into a verdict ``converged | stalled | diverging`` with its evidence; the paper's
Fig. 4 is about exactly this (raw PnP-PGD with a diffusion denoiser at sigma_1 does not converge).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal, Optional

import numpy as np
import torch

__all__ = ["diagnose", "DIAGNOSE_DEFAULTS", "PnPResult", "Verdict"]

Verdict = Literal["converged", "stalled", "diverging", ""]

#: Thresholds of :func:`diagnose`. ``tol``: relative residual ||v_{n+1} - v_n|| / ||v_n|| under which a
#: run counts as converged. For iterates converging linearly at rate q, the distance to the limit is
#: about ``r_n ||v_n|| q / (1 - q)``: with tol = 1e-4 and q <= 0.9 that is <= 1e-3 of the image norm, an
#: RMS error ~5e-4 for [0, 1] images, well below one 8-bit grey level (1/255 ~ 4e-3); why not 1e-3:
#: docs/restoration_notes.md. ``growth``: a run diverges if its recent steps are this many times larger
#: than its smallest steps earlier (an order of magnitude: an oscillation at a plateau stays within a
#: factor ~2). ``blowup``: or if the iterate's norm grew this much over the initial one (an image in
#: [0, 1] with ten times the observation's norm is no longer an image).
DIAGNOSE_DEFAULTS = {"tol": 1e-4, "growth": 10.0, "blowup": 10.0}


def diagnose(residual, norm, psnr=None, tol=None, growth=None, blowup=None, window=None, finite=True):
    """Verdict on an iteration from its history: ``("converged" | "stalled" | "diverging", evidence)``.

    Args:
        residual: relative residuals ``r_n = ||v_{n+1} - v_n|| / ||v_n||``, n = 0..N-1.
        norm: iterate norms ``||v_n||``, n = 0..N (one more than ``residual``).
        psnr: optional PSNR of v_1..v_N (only reported: peak, its iteration, drop at the end).
        window: how many last iterations are judged, default ``max(3, N // 10)``.
        finite: False if the run stopped on a non-finite iterate.

    Rules, in order (thresholds in :data:`DIAGNOSE_DEFAULTS`):

    1. ``diverging`` if an iterate was non-finite;
    2. ``converged`` if every residual of the last window is <= ``tol``;
    3. ``diverging`` if the mean absolute step ``||v_{n+1} - v_n||`` over the last window exceeds
       ``growth`` times the smallest windowed mean before it, or ``||v_N|| > blowup * ||v_0||``;
    4. ``stalled`` otherwise: the iterates keep moving by more than ``tol`` without blowing up
       (an oscillation, a slow drift, or a run that needs more iterations: ``trend`` < 1 says the
       residual was still decreasing).
    """
    tol = DIAGNOSE_DEFAULTS["tol"] if tol is None else tol
    growth = DIAGNOSE_DEFAULTS["growth"] if growth is None else growth
    blowup = DIAGNOSE_DEFAULTS["blowup"] if blowup is None else blowup
    r = np.asarray(residual, dtype=np.float64)
    nrm = np.asarray(norm, dtype=np.float64)
    N = len(r)
    ev = {"iterations": N, "tol": tol, "growth_threshold": growth, "blowup_threshold": blowup}
    if psnr is not None and len(psnr):
        ev.update(_psnr_evidence(psnr))
    if not finite:
        ev["reason"] = f"non-finite iterate after iteration {N}"
        return "diverging", ev
    if N == 0:
        ev["reason"] = "no iteration run"
        return "stalled", ev
    if len(nrm) != N + 1:
        raise ValueError(f"norm must hold N + 1 = {N + 1} values (||v_0|| .. ||v_N||), got {len(nrm)}.")
    w = min(N, window or max(3, N // 10))
    ev.update(_window_evidence(r, nrm, w))
    last = r[-w:]
    norm_ratio, step_growth = ev["norm_ratio"], ev["step_growth"]
    if last.max() <= tol:
        ev["reason"] = f"the last {w} relative residuals are <= {tol:g}"
        return "converged", ev
    if step_growth > growth or norm_ratio > blowup:
        ev["reason"] = (
            f"steps grew {step_growth:.3g}x over their minimum (threshold {growth:g})"
            if step_growth > growth
            else f"iterate norm grew {norm_ratio:.3g}x (threshold {blowup:g})"
        )
        return "diverging", ev
    ev["reason"] = f"relative residual stays at {last.max():.3g} > {tol:g} over the last {w} iterations without blowing up"
    if ev.get("trend", 1.0) < 0.9:
        ev["reason"] += f"; it is still decreasing (x{ev['trend']:.2g} per window): more iterations may converge"
    elif ev.get("trend", 1.0) > 1.05:
        ev["reason"] += f"; it is rising (x{ev['trend']:.3g} per window)"
    return "stalled", ev


def _psnr_evidence(psnr) -> dict:
    """The PSNR curve's peak, its iteration (1-based), the final value and the drop from the peak (dB)."""
    p = np.asarray(psnr, dtype=np.float64)
    k = int(np.nanargmax(p)) if np.isfinite(p).any() else 0
    return dict(psnr_peak=float(p[k]), psnr_peak_iter=k + 1, psnr_final=float(p[-1]), psnr_drop=float(p[k] - p[-1]))


def _window_evidence(r: np.ndarray, nrm: np.ndarray, w: int) -> dict:
    """What the rules judge over the last window of ``w`` iterations: its largest residual, the ``trend`` (the
    geometric-mean residual of the last window over the one before it), the growth of the iterate norm and of
    the windowed mean absolute step ``||v_{n+1} - v_n||`` over its smallest earlier value."""
    N, last = len(r), r[-w:]
    ev = dict(window=w, final_residual=float(last.max()), residual_min=float(r.min()))
    if N >= 2 * w:
        prev = r[-2 * w : -w]
        ev["trend"] = float(np.exp(np.mean(np.log(np.maximum(last, 1e-300))) - np.mean(np.log(np.maximum(prev, 1e-300)))))
    step = r * nrm[:-1]  # ||v_{n+1} - v_n||
    means = np.convolve(step, np.ones(w) / w, mode="valid")  # windowed means of the absolute step
    ev.update(norm_ratio=float(nrm[-1] / max(nrm[0], 1e-300)),
              step_growth=float(means[-1] / max(means[:-1].min(), 1e-300)) if len(means) > 1 else 1.0)
    return ev


@dataclass
class PnPResult:
    """What every restoration algorithm returns. Lists hold one value per iteration n = 1..N:
    ``psnr`` of v_n against the truth (empty without ``x_true``), ``residual`` ||v_n - v_{n-1}|| /
    ||v_{n-1}||, ``fidelity`` f(v_n) = ||A v_n - y||^2 / (2 nu^2) (about m / 2 at the truth, m the
    number of measurements), ``norm`` ||v_0|| .. ||v_N|| (N + 1 values); ``objective`` F(v_n) for
    :func:`~inrd.restoration.gs_pnp`; ``sigma`` the denoiser level of each iteration when it varies.
    For a batch the values are pooled over the batch (the PSNR is the batch mean).

    Sampling algorithms also return ``samples`` (S, C, H, W: S posterior samples of one observation),
    ``x`` their mean and ``std`` the per-pixel standard deviation over the samples."""

    x: torch.Tensor
    psnr: list = field(default_factory=list)
    residual: list = field(default_factory=list)
    fidelity: list = field(default_factory=list)
    norm: list = field(default_factory=list)
    objective: list = field(default_factory=list)
    sigma: list = field(default_factory=list)
    verdict: Verdict = ""
    evidence: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    seconds: float = 0.0
    samples: Optional[torch.Tensor] = None
    std: Optional[torch.Tensor] = None

    def to_dict(self) -> dict:
        """Everything but the images, JSON-ready."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("x", "samples", "std")}
