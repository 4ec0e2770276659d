"""The INRD sampler (paper, Section 2.3):

    V_{t-1} = D^{rho_t}_{sigma_t}(V_t + gamma_t Z_t),   t = T, ..., 1,
    D^rho_sigma = (1 - rho) Id + rho D_sigma                       (eq. 13)
    gamma_t^2 = sigma_t^2 - (1 - rho_{t+1})^2 sigma_{t+1}^2        (eq. 20)

With the canonical relaxation and the DDPM sigmas this is DDPM ancestral sampling step for step
(eqs. 18-21); with rho = 1 it is IND. Images in [0, 1], sigmas in the same units.
"""

from __future__ import annotations

import concurrent.futures
import os
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from .schedules import Relaxation, check_sigmas, gammas as _gammas, relaxation

__all__ = ["sample", "Step", "PerSampleNoise", "SamplingDiverged", "sample_seed"]


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


def sample_seed(seed: int, index: int) -> int:
    """64-bit seed of sample ``index`` under run seed ``seed`` (numpy SeedSequence: independent streams)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0])


#: rows of at least this many values are filled in parallel threads (``normal_`` releases the GIL);
#: below it a thread hand-off costs more than the draw (measured: a 3x32x32 row takes ~20 us)
_PARALLEL_ROW = 1 << 16
_POOL: tuple[int, Optional[concurrent.futures.ThreadPoolExecutor]] = (0, None)


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    # one pool per process: a forked child inherits the pool object but not its threads (work sent to
    # it would never run), so a new process makes its own
    global _POOL
    pid, pool = _POOL
    if pool is None or pid != os.getpid():
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="inrd-noise")
        _POOL = (os.getpid(), pool)
    return pool


class PerSampleNoise:
    """Gaussian noise with one generator per sample, so sample i of seed s is the same image whatever
    the batch size or the position of the batch (``first`` is the index of the batch's first sample).

    Noise is drawn in float32 on ``device`` (CPU by default, which also makes it device-independent)
    and then cast/moved to the iterate's dtype and device. Large rows are drawn in parallel threads, each
    generator by one thread, so the values do not depend on the number of threads; for a CUDA iterate
    they are drawn into pinned memory and copied asynchronously.
    """

    def __init__(self, seed: int, batch: int, first: int = 0, device: Union[str, torch.device] = "cpu"):
        self.indices = list(range(first, first + batch))
        self.generators = [torch.Generator(device).manual_seed(sample_seed(seed, i)) for i in self.indices]
        self.device = device

    def __call__(self, t: int, like: torch.Tensor) -> torch.Tensor:
        if like.shape[0] != len(self.generators):
            raise ValueError(f"noise source made for {len(self.generators)} samples, iterate has {like.shape[0]}.")
        # fill one preallocated tensor row by row (row.normal_(generator=g) is torch.randn(row.shape,
        # generator=g) bit for bit; no per-sample allocation, no stack copy)
        pin = like.device.type == "cuda" and torch.device(self.device).type == "cpu"
        z = torch.empty((len(self.generators), *like.shape[1:]), device=self.device, dtype=torch.float32, pin_memory=pin)
        fill = [(row, g) for row, g in zip(z, self.generators)]
        if len(fill) > 1 and z[0].numel() >= _PARALLEL_ROW:
            list(_pool().map(lambda rg: rg[0].normal_(generator=rg[1]), fill))
        else:
            for row, g in fill:
                row.normal_(generator=g)
        return z.to(device=like.device, dtype=like.dtype, non_blocking=True)


def max_deviation(v: torch.Tensor) -> float:
    """``max |v - 1/2|``, the divergence check of :func:`sample`: one pass (aminmax), no temporary the size
    of ``v``, one synchronisation; NaN propagates (then the result is NaN)."""
    lo, hi = torch.aminmax(v)
    return float(torch.maximum(hi - 0.5, 0.5 - lo))


NoiseSource = Callable[[int, torch.Tensor], torch.Tensor]


def _module_device_dtype(denoiser) -> tuple[Optional[torch.device], Optional[torch.dtype]]:
    if isinstance(denoiser, torch.nn.Module):
        for p in denoiser.parameters():
            return p.device, p.dtype
    return None, None


@torch.no_grad()
def sample(
    denoiser: Callable,
    sigmas,
    rho: Relaxation = "canonical",
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
) -> torch.Tensor:
    """Run INRD and return V_0, a ``(B, C, H, W)`` tensor (in [0, 1] units; not clamped).

    Args:
        denoiser: ``D(x, sigma) -> x_hat`` on [0, 1] images, sigma a float in the same units.
        sigmas: ascending schedule ``sigma_0..sigma_T`` (see :mod:`inrd.schedules`).
        rho: relaxation ``"canonical"`` (DDPM), ``"ind"``, ``"ddim"``, a number or a length-T+1 tensor.
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
    """
    sigmas = check_sigmas(sigmas)
    rhos = relaxation(sigmas, rho)
    gams = _gammas(sigmas, rhos, start_noise=start_noise)  # validates everything before any denoiser call
    T = sigmas.numel() - 1
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable as D(x, sigma), got {type(denoiser).__name__}.")
    if init_std < 0 or not np.isfinite(init_std):
        raise ValueError(f"init_std must be a finite number >= 0, got {init_std}.")

    mdev, mdtype = _module_device_dtype(denoiser)
    if isinstance(init, torch.Tensor):
        if not torch.isfinite(init).all():
            raise ValueError("init contains NaN or infinite values; give a finite start image.")
        device = device or init.device
        dtype = dtype or (init.dtype if init.is_floating_point() else None)
        if shape is None:
            if init.ndim != 4:
                raise ValueError(f"init tensor must be (B, C, H, W) when shape is not given, got {tuple(init.shape)}.")
            shape = tuple(init.shape)
    elif not np.isfinite(float(init)):
        raise ValueError(f"init must be a finite constant, got {init}.")
    if shape is None or len(shape) != 4 or any(int(n) < 1 for n in shape):
        raise ValueError(f"shape must be (B, C, H, W) with positive sizes, got {shape}.")
    device = torch.device(device or mdev or "cpu")
    dtype = dtype or mdtype or torch.float32
    shape = tuple(int(n) for n in shape)

    v = torch.as_tensor(init, device=device, dtype=dtype).expand(shape).clone()
    noise = noise or PerSampleNoise(seed, shape[0], first=first_index)
    if init_std > 0:
        v += init_std * noise(T + 1, v)
    if max_abs is None:
        max_abs = 1e3 * (1.0 + float(sigmas[-1]) + init_std)

    def draw(t):  # Z_t, or None when gamma_t = 0
        return noise(t, v) if t >= 1 and float(gams[t]) > 0 else None

    z = draw(T)
    for t in tqdm(range(T, 0, -1), disable=not progress, desc="INRD", unit="step"):
        sigma, r, g = float(sigmas[t]), float(rhos[t]), float(gams[t])
        u = torch.add(v, z, alpha=g) if z is not None else v  # v + gamma_t Z_t, one pass
        d = denoiser(u, sigma)
        v_new = torch.lerp(u, d.to(u.dtype), r) if r != 1.0 else d  # (1 - rho) u + rho D(u), eq. (13), one pass
        # Z_{t-1} is drawn before the check's synchronisation: on a GPU this CPU work overlaps the
        # network still running (same generators, same order: the noise does not change)
        z = draw(t - 1)
        worst = max_deviation(v_new)
        if not np.isfinite(worst) or worst > max_abs:
            what = "non-finite values" if not np.isfinite(worst) else f"max |V - 0.5| = {worst:.3g} > {max_abs:.3g}"
            raise SamplingDiverged(
                f"INRD diverged at step t={t} (sigma_t={sigma:.4g}, rho_t={r:.4g}, gamma_t={g:.4g}): {what}; "
                f"the denoiser is unstable on this schedule (try a larger init_std, fewer/larger sigmas or rho < 1).",
                t,
                v,
            )
        v = v_new
        if callback is not None:
            callback(Step(t, sigma, r, g, v, u, d))
    return v
