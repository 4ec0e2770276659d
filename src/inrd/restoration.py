"""Plug-and-play restoration (paper, Section 3.3) with per-iteration stability diagnostics.

Problem: ``y = A v_c + w``, ``w ~ N(0, nu^2 Id)``, A a periodic convolution, images in [0, 1] and
``nu`` (``noise_level``) in the same units. Data fidelity, as in the paper:

    f(v) = ||A v - y||^2 / (2 nu^2),        grad f(v) = A^T (A v - y) / nu^2.

**Raw PnP-PGD** (:func:`pnp_pgd`), the scheme of the paper's Fig. 4:

    v_{n+1} = D_sigma(v_n - tau grad f(v_n)).

Step-size convention: ``stepsize`` is the paper's tau, so it carries units of nu^2 (grad f has a
1/nu^2 inside). grad f is L-Lipschitz with ``L = ||A||^2 / nu^2``; the default is the classical
proximal-gradient step ``tau = 1 / L = nu^2 / ||A||^2``, which makes the gradient step
``v - A^T(A v - y) / ||A||^2`` (for a normalised blur kernel ||A|| = 1, so tau = nu^2). Any
``tau <= 2 / L`` keeps ``Id - tau grad f`` non-expansive; beyond that the gradient step alone amplifies
the frequencies the blur keeps, so :func:`pnp_pgd` warns. The result records ``tau * L``
(``stepsize_normalized``), the unit-free number to compare between problems.

Nothing guarantees that raw PnP-PGD converges: its fixed-point map is non-expansive only if the
denoiser is, which trained networks are not. Hence the diagnostics (:func:`diagnose`) and a convergent
alternative beside it, :func:`gs_pnp` (Hurault et al., ICLR 2022, the paper's ref. [11]).

Operators: :class:`PeriodicBlur` (our FFT convolution with an exact adjoint, closed-form proximal
map and operator norm). Any object with ``A(x)`` and ``A_adjoint(y)`` also works, e.g. deepinv's
``BlurFFT``. :func:`tikhonov_deconvolution` / :func:`tikhonov_oracle` are the linear baseline;
:class:`CircularPad` lets a CNN denoiser see the periodic image that A assumes (optional: the raw
scheme of the paper does not pad).

Measured with the pretrained FFDNet (nu = 0.01, Gaussian blur 1.6, 128x128 crops of 14 photographs,
``inrd reproduce pnp-table``, docs/restoration.md): raw PnP-PGD stays 1.3-1.4 dB below the best
Tikhonov filter (weight chosen with the truth) on average, and below the truth-free
:func:`tikhonov_discrepancy` on most images; GS-PnP with the same network beats the oracle filter by
0.74 dB on average (11 of 14 images).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .metrics import psnr as _psnr
from .validate import check_image

__all__ = [
    "PeriodicBlur",
    "gaussian_kernel",
    "load_kernel",
    "operator_norm",
    "tikhonov_deconvolution",
    "tikhonov_oracle",
    "tikhonov_discrepancy",
    "observe",
    "CircularPad",
    "plot_diagnostics",
    "load_denoiser",
    "default_sigma",
    "pnp_pgd",
    "gs_pnp",
    "diagnose",
    "PnPResult",
    "DIAGNOSE_DEFAULTS",
]


# --------------------------------------------------------------------------------------------------
# Kernels and the periodic convolution operator
# --------------------------------------------------------------------------------------------------


def gaussian_kernel(std: float, size: Optional[int] = None, dtype=torch.float64) -> torch.Tensor:
    """Isotropic Gaussian kernel of standard deviation ``std`` pixels, (size, size), summing to 1.

    ``size`` defaults to ``2 * ceil(3 std) + 1`` (odd, +-3 std: the truncated mass is < 0.3 %).
    """
    if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
        raise ValueError(f"Gaussian kernel std must be a finite number > 0 (pixels), got {std!r}.")
    size = int(size) if size is not None else 2 * math.ceil(3 * std) + 1
    if size < 1:
        raise ValueError(f"kernel size must be >= 1, got {size}.")
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * std**2))
    k = g[:, None] * g[None, :]
    return (k / k.sum()).to(dtype)


def load_kernel(spec) -> torch.Tensor:
    """A blur kernel from ``"gaussian:STD"`` (optionally ``"gaussian:STD:SIZE"``), a ``.npy`` file or a
    text file of numbers (``numpy.loadtxt``), or a tensor/array. Returns a float64 (h, w) or (C, h, w)
    tensor, as given (not renormalised: a user kernel that does not sum to 1 changes the brightness,
    on purpose or not; :class:`PeriodicBlur` reports the sum)."""
    if isinstance(spec, (torch.Tensor, np.ndarray)):
        k = torch.as_tensor(np.asarray(spec) if isinstance(spec, np.ndarray) else spec, dtype=torch.float64)
    else:
        spec = str(spec)
        m = re.fullmatch(r"gaussian:([^:]+)(?::(\d+))?", spec.strip(), flags=re.IGNORECASE)
        if m:
            try:
                std = float(m.group(1))
            except ValueError:
                raise ValueError(f"kernel {spec!r}: the std after 'gaussian:' must be a number, e.g. gaussian:1.6.") from None
            return gaussian_kernel(std, int(m.group(2)) if m.group(2) else None)
        p = Path(spec)
        if not p.is_file():
            raise ValueError(f"kernel {spec!r} is neither 'gaussian:STD' nor an existing .npy / .txt file.")
        try:
            k = torch.as_tensor(np.load(p) if p.suffix.lower() == ".npy" else np.loadtxt(p, ndmin=2), dtype=torch.float64)
        except Exception as e:  # numpy raises several types for unreadable files
            raise ValueError(f"cannot read kernel file {p}: {e}") from None
    _check_kernel(k)
    return k


def _check_kernel(k: torch.Tensor) -> None:
    if k.ndim not in (2, 3) or k.numel() == 0:
        raise ValueError(f"a blur kernel must be a non-empty (h, w) or (C, h, w) array, got shape {tuple(k.shape)}.")
    if not torch.isfinite(k).all():
        raise ValueError("the blur kernel contains NaN or infinite values.")
    if not (k != 0).any():
        raise ValueError("the blur kernel is all zeros; A would erase the image.")


class PeriodicBlur:
    """Periodic (circular) convolution ``A x = k * x`` computed by FFT, with its exact adjoint.

    Convention: the kernel's centre is the pixel ``(h // 2, w // 2)``, so a kernel with a single 1 at
    its centre is the identity and a symmetric kernel does not shift the image (the same centring as
    deepinv's ``BlurFFT`` and ``scipy.ndimage.convolve``). ``A`` is a true convolution (the kernel is
    flipped); ``A_adjoint`` is the correlation, i.e. convolution with the flipped kernel, whose transfer
    function is the complex conjugate. A is diagonal in the DFT basis with eigenvalues ``K = DFT(k)``,
    so ``||A|| = max |K|`` and ``(A^T A + c I)^{-1}`` are exact and cheap.

    Args:
        kernel: (h, w) kernel shared by all channels, or (C, h, w) with one kernel per channel; any
            finite values (see :func:`load_kernel`). Must not be larger than the image.
    """

    def __init__(self, kernel):
        k = load_kernel(kernel) if not isinstance(kernel, torch.Tensor) else kernel.detach().to(torch.float64).cpu()
        _check_kernel(k)
        self.kernel = k
        self._cache: dict = {}

    def __repr__(self) -> str:
        return f"PeriodicBlur(kernel {tuple(self.kernel.shape)}, sum {self.kernel.sum().item():.4g})"

    def transfer(self, shape, device=None) -> torch.Tensor:
        """rFFT transfer function (C or 1, H, W//2+1), complex128, of the kernel on an (H, W) grid."""
        H, W = int(shape[-2]), int(shape[-1])
        key = (H, W, str(device))
        if key not in self._cache:
            h, w = self.kernel.shape[-2:]
            if h > H or w > W:
                raise ValueError(f"blur kernel {h}x{w} is larger than the {H}x{W} image; use a smaller kernel or a larger image (--size).")
            k = self.kernel if self.kernel.ndim == 3 else self.kernel[None]
            pad = torch.zeros(k.shape[0], H, W, dtype=torch.float64)
            pad[:, :h, :w] = k
            pad = torch.roll(pad, shifts=(-(h // 2), -(w // 2)), dims=(-2, -1))  # centre -> pixel (0, 0)
            self._cache[key] = torch.fft.rfft2(pad).to(device)
        return self._cache[key]

    def _check(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"{name} must be a floating (B, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}.")
        if self.kernel.ndim == 3 and self.kernel.shape[0] not in (1, x.shape[1]):
            raise ValueError(f"the kernel has {self.kernel.shape[0]} channels but {name} has {x.shape[1]}.")
        return x

    def _apply(self, x: torch.Tensor, conj: bool) -> torch.Tensor:
        K = self.transfer(x.shape, x.device)
        K = K.conj() if conj else K
        X = torch.fft.rfft2(x.to(torch.float64))
        return torch.fft.irfft2(X * K, s=x.shape[-2:]).to(x.dtype)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """Blur: ``(k * x)`` with periodic boundaries (float64 FFT, output in x's dtype)."""
        return self._apply(self._check(x, "x"), conj=False)

    __call__ = A

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Adjoint ``A^T y``: correlation with the kernel (exact: <A x, y> = <x, A^T y>)."""
        return self._apply(self._check(y, "y"), conj=True)

    def norm(self, shape) -> float:
        """Operator 2-norm ``||A|| = max |K|`` on images of spatial ``shape`` (..., H, W)."""
        return float(self.transfer(shape).abs().max())

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma) -> torch.Tensor:
        """``argmin_x  ||A x - y||^2 / 2 + ||x - z||^2 / (2 gamma)`` = ``(I + gamma A^T A)^{-1}(z + gamma A^T y)``
        in closed form (deepinv's ``LinearPhysics.prox_l2`` signature). ``gamma`` a float or (B,) tensor > 0."""
        self._check(z, "z")
        K = self.transfer(z.shape, z.device)
        g = torch.as_tensor(gamma, dtype=torch.float64, device=z.device).reshape(-1, 1, 1, 1)
        num = torch.fft.rfft2(z.to(torch.float64)) + g * K.conj() * torch.fft.rfft2(y.to(torch.float64))
        return torch.fft.irfft2(num / (1 + g * K.abs() ** 2), s=z.shape[-2:]).to(z.dtype)


def operator_norm(physics, like: torch.Tensor, iters: int = 50, seed: int = 0) -> float:
    """``||A||`` for any operator: exact for :class:`PeriodicBlur`, else power iteration on A^T A
    (``iters`` steps from a seeded random start; a slight under-estimate, so the default step from it
    is slightly larger than 1/L, well inside the non-expansive range tau < 2/L)."""
    if isinstance(physics, PeriodicBlur):
        return physics.norm(like.shape)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(like.shape, generator=g, dtype=like.dtype).to(like.device)
    x = x / x.norm()
    lam = 0.0
    for _ in range(iters):
        z = physics.A_adjoint(physics.A(x))
        lam = float((x * z).sum())
        x = z / z.norm().clamp(min=1e-30)
    return math.sqrt(max(lam, 0.0))


def tikhonov_deconvolution(y: torch.Tensor, blur: PeriodicBlur, lam: float, reg: str = "gradient") -> torch.Tensor:
    """Linear (Wiener/Tikhonov) deconvolution, exact by FFT:

    ``x = argmin ||A x - y||^2 / 2 + lam ||R x||^2 / 2``, i.e. ``X = conj(K) Y / (|K|^2 + lam |R|^2)``,

    with ``reg="gradient"`` (R = periodic forward differences, |R|^2 = 4 - 2 cos w1 - 2 cos w2: the
    Wiener filter of a 1/|w|^2 image spectrum) or ``reg="identity"`` (R = I). ``lam`` is unit-free
    (about nu^2 divided by the prior variance of R x); a DC component the kernel removes (K(0) = 0)
    stays at 0 with the gradient prior.
    """
    check_image(y, "y")
    if not (lam > 0 and math.isfinite(lam)):
        raise ValueError(f"the Tikhonov weight lam must be finite and > 0, got {lam}.")
    H, W = y.shape[-2:]
    K = blur.transfer(y.shape, y.device)
    if reg == "gradient":
        w1 = 2 * math.pi * torch.fft.fftfreq(H, dtype=torch.float64, device=y.device)[:, None]
        w2 = 2 * math.pi * torch.fft.rfftfreq(W, dtype=torch.float64, device=y.device)[None, :]
        R2 = 4 - 2 * torch.cos(w1) - 2 * torch.cos(w2)
    elif reg == "identity":
        R2 = torch.ones(1, dtype=torch.float64, device=y.device)
    else:
        raise ValueError(f"reg must be 'gradient' or 'identity', got {reg!r}.")
    den = K.abs() ** 2 + lam * R2
    X = K.conj() * torch.fft.rfft2(y.to(torch.float64)) / torch.where(den > 0, den, torch.ones_like(den))
    return torch.fft.irfft2(X, s=(H, W)).to(y.dtype)


def tikhonov_oracle(y, blur: PeriodicBlur, x_true, lams=None, reg: str = "gradient"):
    """The best :func:`tikhonov_deconvolution` over a grid of ``lam`` *chosen with the truth* (an
    upper bound on what this linear method can do: a fair, generous baseline). Default grid: 49 values
    ``10^(-6 + k/8)``, k = 0..48, i.e. 1e-6 to 1. Returns ``(x, lam, psnr)``; the PSNR is the batch mean."""
    check_image(x_true, "x_true")
    lams = [10 ** (-6 + k / 8) for k in range(49)] if lams is None else list(lams)
    best = None
    for lam in lams:
        x = tikhonov_deconvolution(y, blur, lam, reg)
        p = float(_psnr(x, x_true).mean())
        if best is None or p > best[2]:
            best = (x, float(lam), p)
    return best


def tikhonov_discrepancy(y, blur: PeriodicBlur, noise_level: float, reg: str = "gradient", iters: int = 60):
    """:func:`tikhonov_deconvolution` with ``lam`` from Morozov's discrepancy principle: the largest lam
    with ``||A x_lam - y||^2 <= m nu^2`` (m values per image), i.e. the smoothest solution that explains
    y up to the noise. The truth-free counterpart of :func:`tikhonov_oracle`: it knows nu, as PnP does.
    The residual grows with lam, so a bisection on log10(lam) in [-8, 2] finds it (``iters`` halvings:
    lam to a factor 10^(10 / 2^iters)); one lam per image of the batch. Returns ``(x, lams)``.
    Measured (Gaussian blur 1.6, nu = 0.01, 14 photographs, ``inrd reproduce pnp-table``): 0.34-0.80 dB
    (mean 0.52) below the oracle, with a 2-7.5 times larger lam (the principle over-smooths, as is known)."""
    check_image(y, "y")
    nu = float(noise_level)
    if not (nu > 0 and math.isfinite(nu)):
        raise ValueError(f"noise_level must be finite and > 0 ([0, 1] units), got {noise_level!r}.")
    xs, lams = [], []
    for yb in y.split(1):
        target = yb[0].numel() * nu**2
        lo, hi = -8.0, 2.0
        for _ in range(iters):
            mid = (lo + hi) / 2
            r = blur.A(tikhonov_deconvolution(yb, blur, 10**mid, reg)) - yb
            lo, hi = (mid, hi) if float(r.double().pow(2).sum()) <= target else (lo, mid)
        xs.append(tikhonov_deconvolution(yb, blur, 10**lo, reg))
        lams.append(10**lo)
    return torch.cat(xs), lams


def observe(x: torch.Tensor, physics, noise_level: float, seed: int = 0) -> torch.Tensor:
    """Simulate ``y = A x + nu w``, w ~ N(0, Id) drawn in float32 on the CPU from ``seed`` (so the
    same seed gives the same observation on every device), in x's dtype and device."""
    check_image(x, "x")
    nu = float(noise_level)
    if not (nu >= 0 and math.isfinite(nu)):
        raise ValueError(f"noise level must be finite and >= 0 ([0, 1] units), got {noise_level!r}.")
    Ax = physics.A(x)
    g = torch.Generator().manual_seed(int(seed))
    w = torch.randn(Ax.shape, generator=g, dtype=torch.float32).to(device=Ax.device, dtype=Ax.dtype)
    return Ax + nu * w


class CircularPad(torch.nn.Module):
    """``D'(x, sigma) = crop(D(pad_circular(x, pad), sigma))``: let a denoiser see the periodic image
    that a periodic blur A assumes. Without it a CNN treats the wrap-around seam (left/right and
    top/bottom edges blurred into each other by A) as image content and, in raw PnP-PGD, the error
    there can grow. Measured (FFDNet, 96x96 crops, Gaussian blur 1.6, nu = 0.01, sigma = 0.01, 100
    iterations): without padding the camera crop ended at 19.8 dB with stripes along the border, with
    ``pad=16`` at 26.1 dB. Not part of the paper's raw scheme, hence off unless asked for."""

    def __init__(self, denoiser: Callable, pad: int = 16):
        super().__init__()
        if not isinstance(pad, (int, np.integer)) or pad < 0:
            raise ValueError(f"pad must be an integer >= 0 (pixels), got {pad!r}.")
        self.denoiser = denoiser
        self.pad = int(pad)
        if hasattr(denoiser, "sigma_range"):
            self.sigma_range = denoiser.sigma_range

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        p = self.pad
        if p == 0:
            return self.denoiser(x, sigma)
        if p > min(x.shape[-2:]):
            raise ValueError(f"pad {p} exceeds the image size {tuple(x.shape[-2:])}; use a smaller pad.")
        out = self.denoiser(torch.nn.functional.pad(x, (p, p, p, p), mode="circular"), sigma)
        return out[..., p:-p, p:-p]


#: registry denoisers whose builder takes ``channels=1|3`` (the others fix their channel count)
_CHANNEL_OPTION = ("ffdnet", "drunet", "tv", "bm3d")


def load_denoiser(name, channels: int, weights=None, device=None):
    """``(D, channels)``: registry denoiser ``name`` for images with ``channels`` channels, or for the
    channel count the denoiser is fixed to (``sampling_defaults["channels"]``, e.g. 3 for DiffUNet,
    1 for inrd-small); convert the image to the returned count. A callable passes through."""
    from . import denoisers

    if isinstance(name, str) and name.lower() in _CHANNEL_OPTION:
        D = denoisers.load(name, weights=weights, device=device, channels=channels)
    else:
        D = denoisers.load(name, weights=weights, device=device)
    want = getattr(D, "sampling_defaults", None) or {}
    return D, int(want.get("channels") or channels)


def default_sigma(denoiser, noise_level: float, algorithm: str = "pnp_pgd") -> float:
    """Default ``sigma_denoiser`` for PnP: the smallest trained level of a diffusion network
    (``sigma_range[0] > 0``: sigma_1 = 0.0050003 for DDPM, the paper's choice for DiffUNet), else
    ``2 * noise_level`` for :func:`pnp_pgd` and ``5 * noise_level`` for :func:`gs_pnp`.

    GS-PnP (FFDNet as N, 96x96 crops of camera / astronaut / coffee / chelsea, 60 iterations, sigma in
    {1, 2, 3, 5} nu): 5 nu was best on 3 images (by 0.1-1.5 dB) and 0.1 dB from the best on the 4th;
    ``D^GS`` denoises less than N itself, hence the larger level.

    PnP-PGD: the factor is measured with FFDNet, ``CircularPad(16)``, tau = 1/L, 100
    iterations, Gaussian blur 1.6, nu = 0.01, on 8 images (64x64 crops and 128x128 resized versions of
    scikit-image photographs): final PSNR averaged 26.68 / 27.02 / 26.63 dB for sigma = 1.5 / 2 / 3 nu,
    worst image 21.99 / 24.63 / 24.18 dB (1.5 nu drifted 2.6 dB below its peak there), and 4 / 4 / 6
    runs converged (residual < 1e-4). sigma = nu converged on none of 8 crops (0.1-5 dB drifts)."""
    if algorithm not in ("pnp_pgd", "gs_pnp"):
        raise ValueError(f"algorithm must be 'pnp_pgd' or 'gs_pnp', got {algorithm!r}.")
    lo = float((getattr(denoiser, "sigma_range", None) or (0.0,))[0])
    return lo if lo > 0 else (2.0 if algorithm == "pnp_pgd" else 5.0) * float(noise_level)


# --------------------------------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------------------------------

#: Thresholds of :func:`diagnose`. ``tol``: relative residual ||v_{n+1} - v_n|| / ||v_n|| under which a
#: run counts as converged. For iterates converging linearly at rate q, the distance to the limit is
#: about ``r_n ||v_n|| q / (1 - q)``: with tol = 1e-4 and q <= 0.9 that is <= 1e-3 of the image norm, an
#: RMS error ~5e-4 for [0, 1] images, well below one 8-bit grey level (1/255 ~ 4e-3). Measured with
#: FFDNet on 96x96 crops: a run whose PSNR drifted by 3.5 dB over 100 iterations kept residuals near
#: 1e-3, so 1e-3 would be too loose; stable runs reach 1e-5 to 1e-6. ``growth``: a run diverges if its
#: recent steps are this many times larger than its smallest steps earlier (an order of magnitude:
#: an oscillation at a plateau stays within a factor ~2). ``blowup``: or if the iterate's norm grew
#: this much over the initial one (an image in [0, 1] with ten times the observation's norm is no
#: longer an image).
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
        p = np.asarray(psnr, dtype=np.float64)
        k = int(np.nanargmax(p)) if np.isfinite(p).any() else 0
        ev.update(psnr_peak=float(p[k]), psnr_peak_iter=k + 1, psnr_final=float(p[-1]), psnr_drop=float(p[k] - p[-1]))
    if not finite:
        ev["reason"] = f"non-finite iterate after iteration {N}"
        return "diverging", ev
    if N == 0:
        ev["reason"] = "no iteration run"
        return "stalled", ev
    if len(nrm) != N + 1:
        raise ValueError(f"norm must hold N + 1 = {N + 1} values (||v_0|| .. ||v_N||), got {len(nrm)}.")
    w = min(N, window or max(3, N // 10))
    step = r * nrm[:-1]  # ||v_{n+1} - v_n||
    last = r[-w:]
    ev.update(window=w, final_residual=float(last.max()), residual_min=float(r.min()))
    if N >= 2 * w:
        prev = r[-2 * w : -w]
        ev["trend"] = float(np.exp(np.mean(np.log(np.maximum(last, 1e-300))) - np.mean(np.log(np.maximum(prev, 1e-300)))))
    norm_ratio = float(nrm[-1] / max(nrm[0], 1e-300))
    means = np.convolve(step, np.ones(w) / w, mode="valid")  # windowed means of the absolute step
    step_growth = float(means[-1] / max(means[:-1].min(), 1e-300)) if len(means) > 1 else 1.0
    ev.update(norm_ratio=norm_ratio, step_growth=step_growth)
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


@dataclass
class PnPResult:
    """Output of :func:`pnp_pgd` / :func:`gs_pnp`. Lists hold one value per iteration n = 1..N:
    ``psnr`` of v_n against the truth (empty without ``x_true``), ``residual`` ||v_n - v_{n-1}|| /
    ||v_{n-1}||, ``fidelity`` f(v_n) = ||A v_n - y||^2 / (2 nu^2) (about m / 2 at the truth, m the
    number of measurements), ``norm`` ||v_0|| .. ||v_N|| (N + 1 values); ``objective`` F(v_n) for
    :func:`gs_pnp`. For a batch the values are pooled over the batch (the PSNR is the batch mean)."""

    x: torch.Tensor
    psnr: list = field(default_factory=list)
    residual: list = field(default_factory=list)
    fidelity: list = field(default_factory=list)
    norm: list = field(default_factory=list)
    objective: list = field(default_factory=list)
    verdict: str = ""
    evidence: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Everything but the image, JSON-ready."""
        d = asdict(self)
        d.pop("x")
        return d


# --------------------------------------------------------------------------------------------------
# Algorithms
# --------------------------------------------------------------------------------------------------


def _positive(name, value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0, got {value!r}.") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}.")
    return v


def _setup(y, physics, iters, noise_level, init, x_true):
    check_image(y, "observation y")
    if not (hasattr(physics, "A") and hasattr(physics, "A_adjoint")):
        raise TypeError("physics must provide A(x) and A_adjoint(y) (e.g. inrd.restoration.PeriodicBlur or deepinv's BlurFFT).")
    if not isinstance(iters, (int, np.integer)) or iters < 1:
        raise ValueError(f"iters must be an integer >= 1, got {iters!r}.")
    nu = _positive("noise_level (nu, the std of w in f = ||Av - y||^2 / (2 nu^2))", noise_level)
    if init is None:
        aty = physics.A_adjoint(y)
        v = y.clone() if aty.shape == y.shape else aty  # square A (blur): start from y
    else:
        v = check_image(init, "init").clone()
    if x_true is not None:
        check_image(x_true, "x_true")
        if x_true.shape != v.shape:
            raise ValueError(f"x_true has shape {tuple(x_true.shape)} but the iterates have {tuple(v.shape)}.")
    return v, nu


def _fid(physics, v, y, nu):
    Av = physics.A(v)
    return Av, float((Av - y).double().pow(2).sum()) / (2 * nu**2)


def _sigma_check(sigma, denoiser):
    s = _positive("sigma_denoiser", sigma)
    rng = getattr(denoiser, "sigma_range", None)
    if rng is not None and not (rng[0] * (1 - 1e-6) <= s <= rng[1] * (1 + 1e-6)):
        warnings.warn(f"sigma_denoiser = {s:g} is outside the denoiser's range [{rng[0]:g}, {rng[1]:g}].", stacklevel=3)
    return s


def pnp_pgd(
    y: torch.Tensor,
    physics,
    denoiser: Callable,
    sigma_denoiser: float,
    stepsize: Optional[float] = None,
    iters: int = 100,
    init: Optional[torch.Tensor] = None,
    x_true: Optional[torch.Tensor] = None,
    noise_level: float = 0.01,
    callback: Optional[Callable] = None,
    **diagnose_options,
) -> PnPResult:
    """Raw PnP-PGD (paper, Sec. 3.3): ``v_{n+1} = D_sigma(v_n - tau grad f(v_n))``,
    ``f(v) = ||A v - y||^2 / (2 nu^2)``. No convergence guarantee (see :func:`gs_pnp`).

    Args:
        y: observation (B, C, H, W), finite.
        physics: the operator A (``A(x)``, ``A_adjoint(y)``): :class:`PeriodicBlur`, deepinv ``BlurFFT``...
        denoiser: ``D(x, sigma)`` ([0, 1] units); called under ``torch.no_grad``.
        sigma_denoiser: sigma passed to D at every iteration (> 0).
        stepsize: tau, in units of nu^2 (module docstring); default ``nu^2 / ||A||^2`` (= 1 / L).
        iters: number of iterations N.
        init: v_0; default y (or A^T y if A is not square).
        x_true: ground truth, for the PSNR curve.
        noise_level: nu > 0, the std of w in [0, 1] units.
        callback: called as ``callback(n, v_n)`` after each iteration.
        diagnose_options: ``tol``, ``growth``, ``blowup``, ``window`` for :func:`diagnose`.

    The run stops early if an iterate is non-finite (``x`` is then the last finite iterate and the
    verdict is ``diverging``).
    """
    v, nu = _setup(y, physics, iters, noise_level, init, x_true)
    sigma = _sigma_check(sigma_denoiser, denoiser)
    L = operator_norm(physics, v) ** 2 / nu**2
    if L <= 0:
        raise ValueError("the operator A is zero; nothing can be restored.")
    tau = 1.0 / L if stepsize is None else _positive("stepsize (tau, in units of nu^2)", stepsize)
    if tau * L > 2:
        warnings.warn(f"stepsize tau = {tau:g} is {tau * L:.3g} / L > 2 / L: the gradient step itself is expansive.", stacklevel=2)
    res = PnPResult(x=v)
    res.params = dict(
        algorithm="pnp_pgd", sigma_denoiser=sigma, stepsize=tau, stepsize_normalized=tau * L,
        lipschitz=L, noise_level=nu, iters=int(iters),
    )
    res.norm.append(float(v.double().norm()))
    Av, _ = _fid(physics, v, y, nu)
    finite = True
    with torch.no_grad():
        for n in range(iters):
            z = v - (tau / nu**2) * physics.A_adjoint(Av - y)
            v_new = denoiser(z, sigma)
            if not torch.isfinite(v_new).all():
                finite = False
                break
            Av, fid = _fid(physics, v_new, y, nu)
            res.residual.append(float((v_new - v).double().norm() / max(res.norm[-1], 1e-300)))
            res.norm.append(float(v_new.double().norm()))
            res.fidelity.append(fid)
            if x_true is not None:
                res.psnr.append(float(_psnr(v_new, x_true).mean()))
            v = v_new
            if callback is not None:
                callback(n + 1, v)
    res.x = v
    res.params["iters_run"] = len(res.residual)
    res.verdict, res.evidence = diagnose(res.residual, res.norm, res.psnr, finite=finite, **diagnose_options)
    return res


def gs_pnp(
    y: torch.Tensor,
    physics,
    network: Callable,
    sigma_denoiser: float,
    iters: int = 100,
    lam: Optional[float] = None,
    step: float = 1.0,
    init: Optional[torch.Tensor] = None,
    x_true: Optional[torch.Tensor] = None,
    noise_level: float = 0.01,
    gamma: float = 0.1,
    eta: float = 0.5,
    max_backtracks: int = 20,
    callback: Optional[Callable] = None,
    **diagnose_options,
) -> PnPResult:
    """Convergent PnP: proximal gradient descent with backtracking on an explicit objective,
    after S. Hurault, A. Leclaire, N. Papadakis, "Gradient step denoiser for convergent plug-and-play",
    ICLR 2022 (the paper's ref. [11]; their "GS-PnP" algorithm).

    Objective ``F(v) = f(v) + lam g_sigma(v)`` with the paper's ``f(v) = ||A v - y||^2 / (2 nu^2)`` and
    the potential ``g_sigma(v) = ||v - N_sigma(v)||^2 / 2`` of a differentiable network ``N``. Its
    gradient step ``v - grad g_sigma(v)`` is the *gradient-step denoiser* ``D^GS_sigma``. Iteration:

        v_{n+1} = prox_{tau f}(v_n - tau lam grad g_sigma(v_n)),    tau lam = ``step`` initially,

    with ``prox_{tau f}`` exact (``physics.prox_l2``, closed form for a periodic blur). With ``step = 1``
    a step is ``prox_{tau f} o D^GS_sigma``, Hurault et al.'s choice.

    Convergence (Hurault et al.'s theorem for GS-PnP, via Attouch-Bolte-Svaiter): if ``grad g_sigma`` is
    L_g-Lipschitz and ``tau lam L_g < 1``, then F(v_n) is non-increasing, ``||v_{n+1} - v_n|| -> 0``, and
    (F being real-analytic / KL for smooth networks) v_n converges to a critical point of F. L_g is
    not known, so the step is found by backtracking (their Alg. 1): while
    ``F(v_n) - F(v_{n+1}) < (gamma / tau) ||v_{n+1} - v_n||^2`` shrink ``tau <- eta tau``. This forces
    the sufficient decrease, hence ``sum ||v_{n+1} - v_n||^2 <= tau_0 F(v_0) / gamma`` (F >= 0) whatever the
    network. Caveat: the Lipschitz assumption needs a smooth network (GS-DRUNet uses ELU); with a
    ReLU network (FFDNet) g is only piecewise smooth, the decrease is still enforced by backtracking
    when it succeeds, and a failed backtracking is reported as ``backtracking_failures``.

    With ``N`` = the DRUNet inside deepinv's ``GSDRUNet`` (``model.student_grad``) and its trained
    weights this is Hurault et al.'s GS-PnP (their lam and step values aside); with another denoiser as N, ``D^GS = N + J_N^T (Id - N)`` denoises
    less than N (for a symmetric linear N with eigenvalue w: 1 - (1 - w)^2 >= w), so a larger sigma suits.

    Args:
        network: ``N(x, sigma)``, differentiable by autograd (an error says so if its output is detached).
        lam: weight of the prior; default ``1 / sigma^2``: for an MMSE-like denoiser
            ``D^GS = Id - grad g ~ Id + sigma^2 grad log p_sigma`` (Tweedie), so ``g / sigma^2 ~ -log p_sigma``
            and F is then a negative log-posterior.
        step: initial ``tau lam`` (dimensionless, in (0, 1]).
        gamma, eta: sufficient-decrease constant in (0, 1/2) and backtracking factor in (0, 1).
        Other arguments as :func:`pnp_pgd`.
    """
    v, nu = _setup(y, physics, iters, noise_level, init, x_true)
    sigma = _sigma_check(sigma_denoiser, network)
    lam = 1.0 / sigma**2 if lam is None else _positive("lam", lam)
    step = _positive("step", step)
    if not (0 < gamma < 0.5 and 0 < eta < 1):
        raise ValueError(f"need 0 < gamma < 1/2 and 0 < eta < 1, got gamma={gamma}, eta={eta}.")
    if not hasattr(physics, "prox_l2"):
        raise TypeError("gs_pnp needs physics.prox_l2(z, y, gamma) (PeriodicBlur and deepinv LinearPhysics have it).")
    tau = step / lam

    def potential(x):  # g_sigma(x) (pooled over the batch) and its gradient, by autograd
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            out = network(x, sigma)
            if not out.requires_grad:
                raise ValueError("gs_pnp needs a network differentiable by autograd; its output is detached from the input.")
            r = x - out
            g = 0.5 * r.double().pow(2).sum()
            (grad,) = torch.autograd.grad(g, x)
        return float(g.detach()), grad.detach()

    def F(x, gx):
        return _fid(physics, x, y, nu)[1] + lam * gx

    def T(x, grad, t):  # prox_{t f}(x - t lam grad g)
        return physics.prox_l2(x - t * lam * grad, y, t / nu**2)

    res = PnPResult(x=v)
    res.params = dict(
        algorithm="gs_pnp", reference="Hurault, Leclaire, Papadakis, ICLR 2022", sigma_denoiser=sigma,
        lam=lam, step=step, noise_level=nu, iters=int(iters), gamma=gamma, eta=eta,
    )
    res.norm.append(float(v.double().norm()))
    g, grad = potential(v)
    Fv = F(v, g)
    failures = 0
    finite = True
    taus = []
    for n in range(iters):
        t = tau
        for _ in range(max_backtracks + 1):
            with torch.no_grad():
                v_new = T(v, grad, t)
            if not torch.isfinite(v_new).all():
                t *= eta
                continue
            g_new, grad_new = potential(v_new)
            F_new = F(v_new, g_new)
            d2 = float((v_new - v).double().pow(2).sum())
            if math.isfinite(F_new) and Fv - F_new >= gamma / t * d2:
                break
            t *= eta
        else:
            failures += 1  # keep the last candidate: the run continues, the failure is reported
            if not torch.isfinite(v_new).all():
                finite = False
                break
        tau = t  # Alg. 1 keeps the reduced step for the next iterations
        taus.append(t * lam)
        res.residual.append(float((v_new - v).double().norm() / max(res.norm[-1], 1e-300)))
        res.norm.append(float(v_new.double().norm()))
        res.fidelity.append(_fid(physics, v_new, y, nu)[1])
        res.objective.append(F_new)
        if x_true is not None:
            res.psnr.append(float(_psnr(v_new, x_true).mean()))
        v, g, grad, Fv = v_new, g_new, grad_new, F_new
        if callback is not None:
            callback(n + 1, v)
    res.x = v.detach()
    res.params.update(iters_run=len(res.residual), final_step=taus[-1] if taus else step, backtracking_failures=failures)
    res.verdict, res.evidence = diagnose(res.residual, res.norm, res.psnr, finite=finite, **diagnose_options)
    return res


def plot_diagnostics(path, runs: dict, title: str = "", reference: Optional[dict] = None) -> Path:
    """PSNR (if recorded) and relative residual per iteration of several runs ``{label: PnPResult}``,
    with horizontal reference PSNR lines ``{label: dB}`` (e.g. observation, Tikhonov); PNG, atomic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import save_figure

    has_psnr = any(r.psnr for r in runs.values())
    fig, axes = plt.subplots(1, 2 if has_psnr else 1, figsize=(10 if has_psnr else 5.5, 3.6), squeeze=False)
    ax_r = axes[0][-1]
    for label, r in runs.items():
        n = np.arange(1, len(r.residual) + 1)
        line = ax_r.semilogy(n, np.maximum(r.residual, 1e-12), label=f"{label} ({r.verdict})")[0]
        if has_psnr and r.psnr:
            axes[0][0].plot(n, r.psnr, color=line.get_color(), label=label)
    tol = next(iter(runs.values())).evidence.get("tol") if runs else None
    if tol:
        ax_r.axhline(tol, color="gray", ls=":", lw=1, label=f"tol {tol:g}")
    ax_r.set_xlabel("iteration n")
    ax_r.set_ylabel("||v_n - v_{n-1}|| / ||v_{n-1}||")
    ax_r.legend(fontsize=7)
    if has_psnr:
        ax = axes[0][0]
        for (label, value), ls in zip((reference or {}).items(), ("--", ":", "-.")):
            ax.axhline(value, color="k", ls=ls, lw=1, label=f"{label} {value:.2f} dB")
        ax.set_xlabel("iteration n")
        ax.set_ylabel("PSNR (dB)")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return Path(path)
