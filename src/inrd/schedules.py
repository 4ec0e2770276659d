"""Noise schedules (the levels ``sigma_t`` of INRD) and their pruning.

Conventions:

* images live in [0, 1]; a noise level ``sigma`` is the standard deviation of additive Gaussian
  noise in those same units;
* a schedule is a 1-D float64 tensor ``sigmas`` of length ``T + 1``, ascending, indexed as in the
  paper: ``sigmas[t] = sigma_t`` for ``t = 0..T``; ``sigmas[0]`` is usually 0.

The relaxations ``rho_t`` on a schedule and the noise ``gamma_t`` they leave to add are
:mod:`inrd.relaxations`. This module imports nothing from the rest of inrd but its vocabulary (:mod:`inrd.choices`).
"""

from __future__ import annotations

import math
import re
from typing import Optional, Sequence

import numpy as np
import torch

from .choices import ScheduleName, maybe_choose

__all__ = [
    "ddpm",
    "ddpm_alphas_cumprod",
    "affine",
    "geometric",
    "super_geometric",
    "karras",
    "cosine",
    "SCHEDULES",
    "ScheduleName",
    "schedule_name",
    "make",
    "load_sigmas",
    "prune",
    "prune_indices",
    "prune_grid",
    "check_sigmas",
    "sigmas_from_alphas_cumprod",
]


def _f64(x, what: str = "sigmas") -> torch.Tensor:
    """``x`` as a float64 CPU tensor; complex values are refused (casting would drop the imaginary part)."""
    if isinstance(x, complex) or (isinstance(x, torch.Tensor) and x.is_complex()) or np.iscomplexobj(x):
        raise ValueError(f"{what} must be real numbers, got complex values; pass the real noise levels.")
    try:
        return torch.as_tensor(x, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{what} must be a sequence or tensor of real numbers, got {type(x).__name__}.") from None


def check_sigmas(sigmas) -> torch.Tensor:
    """Validate a schedule and return it as a contiguous float64 CPU tensor.

    Raises ``ValueError`` (one line, naming the problem and the fix) when ``sigmas`` is not 1-D,
    has fewer than two entries, contains NaN/inf or negative values, or is not strictly ascending.
    """
    s = _f64(sigmas)
    if s.ndim != 1:
        raise ValueError(f"sigmas must be a 1-D tensor of length T+1, got shape {tuple(s.shape)}; flatten it.")
    if s.numel() < 2:
        raise ValueError("sigmas must have at least 2 entries (sigma_0 and sigma_T); pass a longer schedule.")
    if not torch.isfinite(s).all():
        t = int(torch.nonzero(~torch.isfinite(s))[0])
        raise ValueError(f"sigmas[{t}] = {s[t].item()} is not finite; every noise level must be a finite number.")
    if (s < 0).any():
        t = int(torch.nonzero(s < 0)[0])
        raise ValueError(f"sigmas[{t}] = {s[t].item():.6g} is negative; noise levels are standard deviations (>= 0).")
    d = s[1:] - s[:-1]
    if (d == 0).any() and not (d < 0).any():
        t = int(torch.nonzero(d == 0)[0]) + 1
        raise ValueError(f"sigmas[{t - 1}] = sigmas[{t}] = {s[t].item():.6g}: a noise level appears twice; remove the duplicate "
                         f"(the levels must be strictly ascending).")
    if (d <= 0).any():
        t = int(torch.nonzero(d <= 0)[0]) + 1
        raise ValueError(
            f"sigmas must be strictly ascending (sigmas[t] = sigma_t, t = 0..T) but sigmas[{t}] = {s[t].item():.6g} "
            f"<= sigmas[{t - 1}] = {s[t - 1].item():.6g}; sort them ascending (use sigmas.flip(0) if they are descending)."
        )
    return s.contiguous()


def _with_zero(s_pos: torch.Tensor, sigma_0: float) -> torch.Tensor:
    return torch.cat([torch.tensor([float(sigma_0)], dtype=torch.float64), s_pos])


def _built(s_pos: torch.Tensor, sigma_0: float, name: str) -> torch.Tensor:
    """``[sigma_0, s_pos...]``, checked: a sigma_0 >= sigma_1, or levels that float64 cannot tell apart
    (e.g. very many steps over a tiny range), are one-line errors here rather than later."""
    if not torch.isfinite(s_pos).all():
        raise ValueError(f"{name} schedule: the levels overflow float64 (inf or NaN); use a narrower range or a milder exponent.")
    if not 0 <= sigma_0 < s_pos[0].item():
        raise ValueError(f"{name} schedule: sigma_0 = {sigma_0} must be >= 0 and below sigma_1 = {s_pos[0].item():.6g}.")
    s = _with_zero(s_pos, sigma_0)
    if (s[1:] <= s[:-1]).any():
        raise ValueError(
            f"{name} schedule: {s_pos.numel()} levels from {s_pos[0].item():.6g} to {s_pos[-1].item():.6g} are not strictly "
            f"ascending in float64; use fewer steps or a wider range."
        )
    return s


def _check_range(steps: int, sigma_min: float, sigma_max: float) -> None:
    _positive_int(steps, "steps")
    if not (0 < sigma_min < sigma_max) or not math.isfinite(sigma_max):
        raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got sigma_min={sigma_min}, sigma_max={sigma_max}.")


def _ramp(steps: int) -> torch.Tensor:
    """u_t = (t - 1) / (T - 1) for t = 1..T (0 when T = 1)."""
    if steps == 1:
        return torch.ones(1, dtype=torch.float64)
    return torch.linspace(0.0, 1.0, int(steps), dtype=torch.float64)


def _positive_int(value, what: str) -> int:
    """``value`` as an int >= 1 (integral floats accepted), else a one-line ``ValueError``."""
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer, float)) and math.isfinite(value)
    if not ok or int(value) != value or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}.")
    return int(value)


def _check_T(T) -> int:
    """T as a positive integer whose tables fit in memory (a few float64 vectors of length T)."""
    from .memory import require

    T = _positive_int(T, "T (number of training noise levels)")
    require(8 * 8 * T, f"a schedule of T = {T} levels", "use fewer levels (DDPM has 1000)")
    return T


def ddpm_alphas_cumprod(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """alphabar_t for t = 1..T of Ho et al.'s linear beta schedule (length T, float64).

    Needs ``0 < beta_start <= beta_end < 1``: a beta of 1 or more makes alphabar 0 or negative, i.e. an
    infinite or undefined noise level."""
    T = _check_T(T)
    if not (0 < beta_start <= beta_end < 1):
        raise ValueError(
            f"DDPM betas need 0 < beta_start <= beta_end < 1 (variances of the noise added per step), "
            f"got beta_start={beta_start}, beta_end={beta_end}."
        )
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def sigmas_from_alphas_cumprod(alphas_cumprod) -> torch.Tensor:
    """Paper eq. (14) in [0, 1] units: sigma_t = sqrt((1 - abar_t) / abar_t) / 2, with sigma_0 = 0.

    The ``/ 2`` converts from the [-1, 1] range in which DDPM models are trained to [0, 1].
    """
    a = _f64(alphas_cumprod)
    if a.ndim != 1 or a.numel() < 1 or not torch.isfinite(a).all() or (a <= 0).any() or (a >= 1).any():
        raise ValueError("alphas_cumprod must be a 1-D sequence of values in (0, 1) (alphabar_t, t = 1..T).")
    if (a[1:] >= a[:-1]).any():
        t = int(torch.nonzero(a[1:] >= a[:-1])[0]) + 2
        raise ValueError(f"alphas_cumprod must decrease strictly (noise grows with t), but alphabar_{t} >= alphabar_{t - 1}.")
    return check_sigmas(_with_zero(torch.sqrt((1.0 - a) / a) / 2.0, 0.0))


def ddpm(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """DDPM noise levels (Ho et al. 2020) in [0, 1] units: sigma_1 = 0.0050003, sigma_1000 = 78.7036."""
    return sigmas_from_alphas_cumprod(ddpm_alphas_cumprod(T, beta_start, beta_end))


def cosine(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Improved-DDPM cosine schedule (Nichol & Dhariwal 2021), betas clipped at ``max_beta``, in [0, 1] units."""
    T = _check_T(T)
    if not (0 <= s < math.inf) or not (0 < max_beta < 1):
        raise ValueError(f"cosine schedule needs an offset s >= 0 and 0 < max_beta < 1, got s={s}, max_beta={max_beta}.")
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    betas = torch.clamp(1 - f[1:] / f[:-1], max=max_beta)
    return sigmas_from_alphas_cumprod(torch.cumprod(1 - betas, 0))


_DDPM = None


def _ddpm_range() -> tuple[float, float]:
    global _DDPM
    if _DDPM is None:
        s = ddpm()
        _DDPM = (float(s[1]), float(s[-1]))
    return _DDPM


def _default_range(steps, sigma_min, sigma_max) -> tuple[float, float]:
    lo, hi = _ddpm_range()
    sigma_min = lo if sigma_min is None else float(sigma_min)
    sigma_max = hi if sigma_max is None else float(sigma_max)
    _check_range(steps, sigma_min, sigma_max)
    return sigma_min, sigma_max


def affine(steps: int, sigma_min: float | None = None, sigma_max: float | None = None, sigma_0: float = 0.0) -> torch.Tensor:
    """sigma_t affine in t from sigma_1 = sigma_min to sigma_T = sigma_max (default: the DDPM range)."""
    sigma_min, sigma_max = _default_range(steps, sigma_min, sigma_max)
    return _built(sigma_min + (sigma_max - sigma_min) * _ramp(steps), sigma_0, "affine")


def geometric(steps: int, sigma_min: float | None = None, sigma_max: float | None = None, sigma_0: float = 0.0) -> torch.Tensor:
    """log sigma_t affine in t (constant ratio sigma_t / sigma_{t-1}) from sigma_min to sigma_max."""
    sigma_min, sigma_max = _default_range(steps, sigma_min, sigma_max)
    return _built(torch.exp(math.log(sigma_min) + math.log(sigma_max / sigma_min) * _ramp(steps)), sigma_0, "geometric")


def super_geometric(
    steps: int, sigma_min: float | None = None, sigma_max: float | None = None, power: float = 2.0, sigma_0: float = 0.0
) -> torch.Tensor:
    """Super-geometric schedule (paper, Fig. 1): log sigma convex in t.

    ``log sigma_t = log sigma_min + log(sigma_max / sigma_min) * u_t ** power`` with
    ``u_t = (t - 1) / (T - 1)``; ``power = 2`` (quadratic) by default, which mimics DDPM at large t,
    where ``log sigma_t ~ (beta_end - beta_start) t^2 / (4 T)``. ``power = 1`` is geometric.
    The ratio ``sigma_t / sigma_{t-1}`` grows with t: fine steps at low noise, coarse at high noise.
    """
    sigma_min, sigma_max = _default_range(steps, sigma_min, sigma_max)
    if not 1 <= power < math.inf:
        raise ValueError(f"super_geometric needs a finite power >= 1 (log sigma convex in t), got {power}.")
    u = _ramp(steps) ** power
    return _built(torch.exp(math.log(sigma_min) + math.log(sigma_max / sigma_min) * u), sigma_0, f"super-geometric (power {power})")


def karras(
    steps: int, sigma_min: float | None = None, sigma_max: float | None = None, rho: float = 7.0, sigma_0: float = 0.0
) -> torch.Tensor:
    """EDM schedule (Karras et al. 2022, eq. 5): sigma^(1/rho) affine in t, rho = 7 by default."""
    sigma_min, sigma_max = _default_range(steps, sigma_min, sigma_max)
    if not 0 < rho < math.inf:
        raise ValueError(f"karras needs a finite rho > 0 (sigma^(1/rho) affine in t; the EDM value is 7), got {rho}.")
    a, b = _f64(sigma_min) ** (1 / rho), _f64(sigma_max) ** (1 / rho)  # tensors: overflow gives inf, caught below
    return _built((a + (b - a) * _ramp(steps)) ** rho, sigma_0, f"karras (rho {rho})")


SCHEDULES = {
    "ddpm": ddpm,
    "cosine": cosine,
    "affine": affine,
    "geometric": geometric,
    "super-geometric": super_geometric,
    "karras": karras,
}


def schedule_name(spec) -> Optional[str]:
    """The schedule of this module named by ``spec`` (case and ``_``/``-`` ignored: ``"Super_Geometric"`` is
    ``"super-geometric"``), or None when ``spec`` names none (e.g. a file of sigmas, or ``"training"``,
    which is a network's own grid)."""
    key = maybe_choose(spec, ScheduleName)
    return key if key in SCHEDULES else None


def make(name: str, steps: int | None = None, sigma_min: float | None = None, sigma_max: float | None = None) -> torch.Tensor:
    """Build a named schedule. ``ddpm`` / ``cosine`` are 1000-level training grids pruned to ``steps``;
    the others are built directly with ``steps`` levels between ``sigma_min`` and ``sigma_max``."""
    key = schedule_name(name)
    if key is None:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)} or give a file of sigmas.")
    if key in ("ddpm", "cosine"):
        s = SCHEDULES[key]()
        return s if steps is None else prune(s, steps)
    return SCHEDULES[key](steps if steps is not None else 100, sigma_min, sigma_max)


#: a number as a sigma file may write it: decimal, optional exponent (no "_" separators, no "nan"/"inf" words
#: beyond what check_sigmas then refuses with its own message)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)


def load_sigmas(path) -> torch.Tensor:
    """Read a schedule from a text file: whitespace/comma separated numbers, ascending, ``#`` comments
    (which may hold any text, in any encoding)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ValueError(f"cannot read sigma file {path}: {e.strerror}; give a readable text file of noise levels.") from None
    if b"\0" in raw:
        raise ValueError(f"sigma file {path} is not a text file (it holds NUL bytes); write the noise levels as text, one per line.")
    text = raw.decode("utf-8", errors="surrogateescape")  # bytes outside UTF-8 are fine in comments, caught below elsewhere
    values = []
    for tok in (tok for line in text.splitlines() for tok in re.split(r"[\s,]+", line.split("#")[0].strip()) if tok):
        if not _NUMBER.fullmatch(tok):
            shown = tok.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
            raise ValueError(f"malformed sigma file {path}: {shown!r} is not a number; write one noise level per line.")
        values.append(float(tok))
    if not values:
        raise ValueError(f"sigma file {path} holds no numbers; write the ascending noise levels sigma_0..sigma_T.")
    try:
        return check_sigmas(values)
    except ValueError as e:
        raise ValueError(f"sigma file {path}: {e}") from None


def prune_indices(T: int, steps: int, power: float = 1.0, first: Optional[int] = None) -> torch.Tensor:
    """Indices ``0 = a_0 < a_1 < ... < a_n = T`` of an ``n = steps`` subgrid of ``0..T``.

    By default ``a_k = round(T - (n - k) T / n)``, the same arithmetic as diffusers'
    ``timestep_spacing="trailing"`` (numpy's round-half-to-even included), so that pruned DDPM coincides
    with diffusers step for step. When ``n`` divides ``T`` this is the paper's ``sigma'_k = sigma_{a k}``
    with ``a = T / n``.

    With ``power`` or ``first``: ``a_1 = first`` (default: the trailing ``a_1``), ``a_n = T`` and
    ``a_k = round(a_1 + (T - a_1) ((k - 1) / (n - 1))^power)`` in between (each at least one above the
    previous). ``power > 1`` spends more of the steps at low noise, where a pruned grid's big last
    steps blur fine detail; ``power = 1`` spaces ``a_1..a_n`` evenly.
    """
    ok = not isinstance(steps, bool) and isinstance(steps, (int, np.integer, float)) and math.isfinite(steps)
    if not ok or int(steps) != steps or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer in 1..T = 1..{T} to prune a grid of {T} levels, got {steps!r}.")
    steps = int(steps)
    trailing = np.round(np.arange(T, 0, -T / steps)).astype(np.int64)[::-1]  # [a_1, ..., a_n], as diffusers
    if power == 1.0 and first is None:
        return torch.from_numpy(np.concatenate([[0], trailing]))
    if not (isinstance(power, (int, float)) and 0 < power < math.inf):
        raise ValueError(f"power must be a finite number > 0 (1: even spacing), got {power!r}.")
    a1 = int(trailing[0]) if first is None else first
    if isinstance(a1, bool) or int(a1) != a1 or not 1 <= a1 <= T - steps + 1:
        raise ValueError(f"first must be an integer in 1..T - steps + 1 = 1..{T - steps + 1}, got {first!r}.")
    if steps == 1:
        return torch.tensor([0, T])
    u = np.arange(steps) / (steps - 1)
    a = np.round(a1 + (T - a1) * u**power).astype(np.int64)
    for k in range(1, steps):  # rounding can merge neighbours at the dense end: keep them distinct
        a[k] = max(a[k], a[k - 1] + 1)
    for k in range(steps - 2, -1, -1):  # ... without passing T at the top
        a[k] = min(a[k], a[k + 1] - 1)
    return torch.from_numpy(np.concatenate([[0], a]))


def prune(sigmas, steps: int, power: float = 1.0, first: Optional[int] = None) -> torch.Tensor:
    """Subgrid ``sigma'_k = sigmas[a_k]``, ``k = 0..steps`` (see :func:`prune_indices`)."""
    s = check_sigmas(sigmas)
    return s[prune_indices(s.numel() - 1, steps, power, first)]


def prune_grid(grid, steps: int, power: float = 1.0, first: Optional[int] = None,
               subgrid: Optional[Sequence[int]] = None) -> torch.Tensor:
    """A fine grid (a network's training levels, DDPM's 1000) pruned to ``steps`` levels: the searched
    ``subgrid`` (1-based indices t of ``grid``) when it has ``steps`` levels, else :func:`prune` spaced by
    ``power`` and ``first``, with ``first`` lowered where the grid leaves no room for ``steps`` levels above it.
    The one place where a grid becomes the schedule of a run."""
    g = check_sigmas(grid)
    T = g.numel() - 1
    if subgrid is not None and steps == len(subgrid):
        return g[[0, *subgrid]]
    if first is not None and isinstance(steps, int) and 1 <= steps <= T:
        first = min(first, max(1, T - steps + 1))
    return prune(g, steps, power, first)
