"""The INRD sampler (paper, Section 2.3):

    V_{t-1} = D^{rho_t}_{sigma_t}(V_t + gamma_t Z_t),   t = T, ..., 1,
    D^rho_sigma = (1 - rho) Id + rho D_sigma                       (eq. 13)
    gamma_t^2 = sigma_t^2 - (1 - rho_{t+1})^2 sigma_{t+1}^2        (eq. 20)

With the canonical relaxation and the DDPM sigmas this is DDPM ancestral sampling step for step
(eqs. 18-21); with rho = 1 it is IND. Images in [0, 1], sigmas in the same units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from .choices import Clip, Rho, names_of
from .noise import NoiseSource, PerSampleNoise, sample_seed
from .relaxations import Scheme, scheme
from .validate import check_device, check_index

__all__ = ["sample", "inrd_step", "Step", "Clip", "Scheme", "PerSampleNoise", "SamplingDiverged", "sample_seed", "max_deviation"]


@dataclass
class Step:
    """What the callback receives after step t: ``x`` is V_{t-1}, ``noisy`` is V_t + gamma_t Z_t."""

    t: int
    sigma: float
    rho: float
    gamma: float
    x: torch.Tensor
    noisy: torch.Tensor
    denoised: torch.Tensor


class SamplingDiverged(RuntimeError):
    """Raised when an iterate becomes non-finite or explodes; ``last`` is the last sane iterate."""

    def __init__(self, message: str, t: int, last: torch.Tensor):
        super().__init__(message)
        self.t = t
        self.last = last


def max_deviation(v: torch.Tensor) -> float:
    """``max |v - 1/2|``, the divergence check of :func:`sample`: one pass (aminmax), no temporary the size
    of ``v``, one synchronisation; NaN propagates (then the result is NaN)."""
    lo, hi = torch.aminmax(v)
    return float(torch.maximum(hi - 0.5, 0.5 - lo))


def inrd_step(denoiser: Callable, v: torch.Tensor, z: Optional[torch.Tensor], sigma: float, rho: float, gamma: float,
              clip: Clip = "none") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One INRD step: ``u = V_t + gamma_t Z_t``, ``d = D_{sigma_t}(u)``, ``V_{t-1} = (1 - rho_t) u + rho_t d``
    (eq. 13). Returns ``(u, d, V_{t-1})``. ``z=None`` means gamma_t = 0."""
    u = torch.add(v, z, alpha=gamma) if z is not None else v
    d = denoiser(u, sigma)
    if not isinstance(d, torch.Tensor) or d.shape != u.shape:
        got = tuple(d.shape) if isinstance(d, torch.Tensor) else type(d).__name__
        raise TypeError(f"the denoiser must return a tensor shaped like its input {tuple(u.shape)}, got {got}.")
    d = d.to(u.dtype)
    if clip == "x0":
        return u, d, d.clamp(0, 1) + (1 - rho) * (u - d)
    if clip == "denoised":
        d = d.clamp(0, 1)
    return u, d, (torch.lerp(u, d, rho) if rho != 1.0 else d)


def _is_count(n) -> bool:
    """A positive integer (an integral float such as 4.0 counts; 4.7 or True do not)."""
    try:
        return not isinstance(n, bool) and float(n) == int(n) >= 1
    except (TypeError, ValueError, OverflowError):
        return False


def _module_device_dtype(denoiser) -> tuple[Optional[torch.device], Optional[torch.dtype]]:
    if isinstance(denoiser, torch.nn.Module):
        for p in denoiser.parameters():
            return p.device, p.dtype
    return None, None


def _start(denoiser, init, shape, device, dtype) -> torch.Tensor:
    """The start V_T (before its Gaussian noise), validated: a finite constant or a broadcastable tensor."""
    mdev, mdtype = _module_device_dtype(denoiser)
    if isinstance(init, torch.Tensor):
        if not init.is_floating_point() or not torch.isfinite(init).all():  # complex tensors are not floating
            raise ValueError("init must be a finite floating tensor (no NaN or infinite values); give a finite start image.")
        device = device or init.device
        dtype = dtype or init.dtype
        if shape is None:
            if init.ndim != 4:
                raise ValueError(f"init tensor must be (B, C, H, W) when shape is not given, got {tuple(init.shape)}.")
            shape = tuple(init.shape)
    else:
        try:
            if isinstance(init, (bool, complex)):
                raise TypeError
            init = float(init)
        except (TypeError, ValueError):
            raise TypeError(f"init must be a number or a tensor, got {type(init).__name__}.") from None
        if not np.isfinite(init):
            raise ValueError(f"init must be a finite constant, got {init}.")
    if shape is None or len(shape) != 4 or not all(_is_count(n) for n in shape):
        raise ValueError(f"shape must be (B, C, H, W) with positive integer sizes, got {shape}.")
    shape = tuple(int(n) for n in shape)
    init = torch.as_tensor(init, device=check_device(device or mdev or "cpu"), dtype=dtype or mdtype or torch.float32)
    if not torch.isfinite(init).all():
        raise ValueError(f"init overflows {init.dtype} (its largest value is {torch.finfo(init.dtype).max:.3g}); start from values near [0, 1].")
    try:
        return init.expand(shape).clone()
    except RuntimeError:
        raise ValueError(f"init of shape {tuple(init.shape)} does not broadcast to shape {shape}.") from None


def _checked(noise: NoiseSource) -> NoiseSource:
    """An injected noise source whose draws must have the iterate's shape (no silent broadcast)."""
    if not callable(noise):
        raise TypeError(f"noise must be callable as noise(t, like) -> Z_t, got {type(noise).__name__}.")

    def draw(t: int, like: torch.Tensor) -> torch.Tensor:
        z = noise(t, like)
        if not isinstance(z, torch.Tensor) or z.shape != like.shape:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"the noise source returned {got} at step t={t}; it must return a tensor shaped like the iterate {tuple(like.shape)}.")
        return z

    return draw


def _setup(denoiser, sigmas, rho, shape, init, init_std, start_noise, seed, first_index, noise, device, dtype, max_abs, clip):
    """Every check of :func:`sample`: returns the scheme, the start V_T (before its noise), the noise source
    and the divergence threshold."""
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as D(x, sigma), got {type(denoiser).__name__}.")
    if clip not in names_of(Clip):
        raise ValueError(f"clip must be one of {', '.join(names_of(Clip))}, got {clip!r}.")
    if isinstance(init_std, (bool, complex)) or not (np.isfinite(init_std) and init_std >= 0):
        raise ValueError(f"init_std must be a finite number >= 0, got {init_std}.")
    if isinstance(sigmas, Scheme):
        if rho is not None or start_noise:
            raise ValueError("sigmas is a Scheme, which fixes rho and the start noise; drop rho= / start_noise= or pass plain sigmas.")
        plan = sigmas
    else:
        plan = scheme(sigmas, "canonical" if rho is None else rho, start_noise)
    if max_abs is not None and (isinstance(max_abs, (bool, complex)) or not float(max_abs) > 0):
        raise ValueError(f"max_abs must be a number > 0 (the divergence threshold on |V - 0.5|), got {max_abs!r}.")
    v = _start(denoiser, init, shape, device, dtype)
    if noise is None:
        noise = PerSampleNoise(check_index(seed, "seed"), v.shape[0], first=check_index(first_index, "first_index"))
    else:
        noise = _checked(noise)
    max_abs = 1e3 * (1.0 + float(plan.sigmas[-1]) + init_std) if max_abs is None else float(max_abs)
    if not max_deviation(v) <= max_abs:  # a start the divergence check would reject at once (or NaN)
        raise ValueError(f"the start V_T reaches |V - 0.5| = {max_deviation(v):.3g}, beyond the divergence threshold max_abs = "
                         f"{max_abs:.3g}; start from values near [0, 1] (init) or raise max_abs.")
    return plan, v, noise, max_abs


@torch.no_grad()
def sample(
    denoiser: Callable,
    sigmas,
    rho: Optional[Rho] = None,
    *,
    shape: Optional[Sequence[int]] = None,
    init: Union[float, torch.Tensor] = 0.5,
    init_std: float = 0.0,
    start_noise: float = 0.0,
    seed: int = 0,
    first_index: int = 0,
    noise: Optional[NoiseSource] = None,
    callback: Optional[Callable[[Step], None]] = None,
    progress: bool = False,
    device=None,
    dtype: Optional[torch.dtype] = None,
    max_abs: Optional[float] = None,
    clip: Clip = "none",
) -> torch.Tensor:
    """Run INRD and return V_0, a ``(B, C, H, W)`` tensor (in [0, 1] units; not clamped).

    Args:
        denoiser: ``D(x, sigma) -> x_hat`` on [0, 1] images, sigma a float in the same units.
        sigmas: ascending schedule ``sigma_0..sigma_T`` (see :mod:`inrd.schedules`), or a
            :class:`~inrd.relaxations.Scheme` (sigmas, rhos and gammas resolved once; ``rho`` and
            ``start_noise`` are then its own).
        rho: relaxation ``"canonical"`` (DDPM, the default), ``"ind"``, ``"ddim"``, a number or a length-T+1 tensor.
        shape: ``(B, C, H, W)``; may be omitted when ``init`` is a 4-D tensor.
        init: start V_T: a constant (the paper's 0.5) or a tensor broadcastable to ``shape``.
        init_std: std s_T of Gaussian noise added to the start (the paper's s_T >> sigma_T for DRUNet).
        start_noise: noise level already carried by V_T; ``gamma_T^2 = sigma_T^2 - start_noise^2``.
        seed, first_index: sample ``first_index + i`` of the batch uses its own generator derived
            from ``(seed, first_index + i)``; ignored when ``noise`` is given.
        noise: injectable noise source ``noise(t, like) -> Z_t`` (t = T+1 for the start noise), called
            for t = T+1 (if ``init_std`` > 0), T, ..., 1 in that order; ``like`` only gives the shape,
            dtype and device (Z_{t-1} is drawn while D_{sigma_t} runs).
        callback: called with a :class:`Step` after every step.
        max_abs: raise :class:`SamplingDiverged` when ``max |V_t - 0.5|`` exceeds it (default
            ``1e3 * (1 + sigma_T + init_std)``, far above any noise the schedule itself injects).
        clip: ``"none"`` (default, the paper's D), ``"denoised"`` or ``"x0"`` (diffusers' semantics), see :data:`Clip`.
    """
    # all validation happens here, before the first denoiser call
    plan, v, noise, max_abs = _setup(denoiser, sigmas, rho, shape, init, init_std, start_noise, seed, first_index, noise,
                                     device, dtype, max_abs, clip)
    T, sigmas, rhos, gams = plan.T, plan.sigmas, plan.rhos, plan.gammas
    draw = lambda t: noise(t, v) if t >= 1 and gams[t] > 0 else None  # noqa: E731  Z_t, None when gamma_t = 0
    if init_std > 0:
        v += init_std * noise(T + 1, v)

    z = draw(T)
    for t in tqdm(range(T, 0, -1), disable=not progress, desc="INRD", unit="step"):
        sigma, r, g = float(sigmas[t]), float(rhos[t]), float(gams[t])
        u, d, v_new = inrd_step(denoiser, v, z, sigma, r, g, clip)
        z = draw(t - 1)  # drawn before the check synchronises: on a GPU it overlaps the network still running
        worst = max_deviation(v_new)
        if not np.isfinite(worst) or worst > max_abs:
            what = "non-finite values" if not np.isfinite(worst) else f"max |V - 0.5| = {worst:.3g} > {max_abs:.3g}"
            raise SamplingDiverged(
                f"INRD diverged at step t={t} (sigma_t={sigma:.4g}, rho_t={r:.4g}, gamma_t={g:.4g}): {what}; the denoiser "
                f"is unstable on this schedule (try a larger init_std, fewer/larger sigmas or rho < 1).", t, v)
        v = v_new
        if callback is not None:
            callback(Step(t, sigma, r, g, v, u, d))
    return v
