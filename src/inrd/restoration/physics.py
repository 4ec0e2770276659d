"""Forward operators ``A`` of ``y = A v + w``, ``w ~ N(0, nu^2 Id)`` (paper, Sec. 3.3), images in [0, 1].

Each operator has ``A(x)``, its exact adjoint ``A_adjoint(y)``, the closed-form proximal map of the
data term ``prox_l2(z, y, gamma) = argmin_x ||A x - y||^2 / 2 + ||x - z||^2 / (2 gamma)`` (deepinv's
``LinearPhysics.prox_l2`` signature, so deepinv operators plug in as well), ``norm(shape)`` = ``||A||``
and ``init(y)``, a cheap image-sized first guess:

* :class:`PeriodicBlur` (deblurring): periodic convolution, diagonal in the DFT basis;
* :class:`Inpainting`: a 0/1 mask (1 = observed pixel), diagonal in the pixel basis;
* :class:`Downsampling` (super-resolution): periodic blur then keep one pixel in ``factor x factor``;
  its prox is exact by the Woodbury identity on the low-resolution grid (Zhao et al., IEEE TIP 2016);
* :class:`Denoising`: A = Id.

:func:`observe` simulates an observation; :func:`estimate_noise` estimates nu from one. Kernels and masks
are read by :mod:`inrd.restoration.inputs` (re-exported here).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ..choices import Task
from ..validate import check_image
from .inputs import MAX_KERNEL_BYTES, check_kernel, check_kernel_sum, gaussian_kernel, load_kernel, load_mask

__all__ = ["gaussian_kernel", "load_kernel", "check_kernel_sum", "load_mask", "PeriodicBlur", "Inpainting",
           "Downsampling", "Denoising", "operator_norm", "power_iteration", "observe", "estimate_noise", "NOISE_ESTIMATOR", "Task",
           "MAX_KERNEL_BYTES"]


class PeriodicBlur:
    """Periodic convolution ``A x = k * x`` by FFT, with its exact adjoint (correlation).

    The kernel's centre is pixel ``(h // 2, w // 2)`` (as deepinv's ``BlurFFT`` and
    ``scipy.ndimage.convolve``): a centred Dirac is Id. A is diagonal in the DFT basis with eigenvalues
    ``K = DFT(k)``, so ``||A|| = max |K|`` and ``(I + gamma A^T A)^{-1}`` are exact.

    Args:
        kernel: (h, w) shared by all channels or (C, h, w), any finite values; not larger than the image.
    """

    task: Task = "deblur"

    def __init__(self, kernel):
        k = load_kernel(kernel) if not isinstance(kernel, torch.Tensor) else kernel.detach().to(torch.float64).cpu()
        check_kernel(k)
        self.kernel = k
        self._cache: dict = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel {tuple(self.kernel.shape)}, sum {self.kernel.sum().item():.4g})"

    def transfer(self, shape, device=None, full: bool = False) -> torch.Tensor:
        """Transfer function (C or 1, H, W//2+1) (rFFT; ``full``: (C or 1, H, W)), complex128, on an (H, W) grid."""
        H, W = int(shape[-2]), int(shape[-1])
        key = (H, W, str(device), full)
        if key not in self._cache:
            h, w = self.kernel.shape[-2:]
            if h > H or w > W:
                raise ValueError(f"blur kernel {h}x{w} is larger than the {H}x{W} image; use a smaller kernel or a larger image (--size).")
            k = self.kernel if self.kernel.ndim == 3 else self.kernel[None]
            pad = torch.zeros(k.shape[0], H, W, dtype=torch.float64)
            pad[:, :h, :w] = k
            pad = torch.roll(pad, shifts=(-(h // 2), -(w // 2)), dims=(-2, -1))  # centre -> pixel (0, 0)
            self._cache[key] = (torch.fft.fft2(pad) if full else torch.fft.rfft2(pad)).to(device)
        return self._cache[key]

    def _check(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"{name} must be a floating (B, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}.")
        if self.kernel.ndim == 3 and self.kernel.shape[0] not in (1, x.shape[1]):
            raise ValueError(f"the blur kernel has {self.kernel.shape[0]} channels but the image has {x.shape[1]}; "
                             f"give an (h, w) kernel or one with a slice per image channel.")
        return x

    def _apply(self, x: torch.Tensor, conj: bool) -> torch.Tensor:
        K = self.transfer(x.shape, x.device)
        X = torch.fft.rfft2(x.to(torch.float64))
        return torch.fft.irfft2(X * (K.conj() if conj else K), s=x.shape[-2:]).to(x.dtype)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """Blur ``k * x`` with periodic boundaries (float64 FFT, output in x's dtype)."""
        return self._apply(self._check(x, "x"), conj=False)

    __call__ = A

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^T y``: correlation with the kernel (exact: <A x, y> = <x, A^T y>)."""
        return self._apply(self._check(y, "y"), conj=True)

    def norm(self, shape) -> float:
        """``||A|| = max |K|`` on images of spatial ``shape`` (..., H, W)."""
        return float(self.transfer(shape).abs().max())

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma) -> torch.Tensor:
        """``(I + gamma A^T A)^{-1}(z + gamma A^T y)``, exact by FFT; ``gamma`` a float or (B,) tensor > 0."""
        self._check(z, "z")
        K = self.transfer(z.shape, z.device)
        g = torch.as_tensor(gamma, dtype=torch.float64, device=z.device).reshape(-1, 1, 1, 1)
        num = torch.fft.rfft2(z.to(torch.float64)) + g * K.conj() * torch.fft.rfft2(y.to(torch.float64))
        return torch.fft.irfft2(num / (1 + g * K.abs() ** 2), s=z.shape[-2:]).to(z.dtype)

    def init(self, y: torch.Tensor) -> torch.Tensor:
        return y.clone()


class Downsampling(PeriodicBlur):
    """Super-resolution: ``A x = S (k * x)``, the periodic blur of :class:`PeriodicBlur` followed by ``S``,
    which keeps pixel (0, 0) of every ``factor x factor`` block (deepinv's ``Downsampling`` with
    circular padding). ``S^T`` puts the low-resolution pixels back with zeros in between.

    With ``P = S H H^T S^T`` (a convolution on the low grid whose transfer is the mean of |K|^2 over
    the ``factor^2`` aliased frequencies), ``||A||^2 = max P`` and, by Woodbury,
    ``(I + g A^T A)^{-1} r = r - g A^T (I + g P)^{-1} A r``: the prox is exact in two FFTs.
    Image sides must be multiples of ``factor``.
    """

    task: Task = "super-resolution"

    def __init__(self, kernel, factor: int):
        super().__init__(kernel)
        if factor not in (2, 3, 4):
            raise ValueError(f"the super-resolution factor must be 2, 3 or 4, got {factor!r}.")
        self.factor = int(factor)

    def __repr__(self) -> str:
        return f"Downsampling(x{self.factor}, kernel {tuple(self.kernel.shape)})"

    def _grid(self, x: torch.Tensor) -> None:
        H, W = x.shape[-2:]
        if H % self.factor or W % self.factor:
            raise ValueError(f"a {H}x{W} image cannot be downsampled by {self.factor}: its sides must be multiples of the factor.")

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self._grid(x)
        f = self.factor
        return super().A(x)[..., ::f, ::f]

    __call__ = A

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self._check(y, "y")
        f = self.factor
        up = y.new_zeros(*y.shape[:2], y.shape[-2] * f, y.shape[-1] * f)
        up[..., ::f, ::f] = y
        return super().A_adjoint(up)

    def _P(self, shape, device) -> torch.Tensor:
        H, W, f = int(shape[-2]), int(shape[-1]), self.factor
        K2 = self.transfer((H, W), device, full=True).abs() ** 2  # (C, H, W)
        return K2.reshape(K2.shape[0], f, H // f, f, W // f).mean(dim=(1, 3))

    def norm(self, shape) -> float:
        return math.sqrt(float(self._P(shape, None).max()))

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma) -> torch.Tensor:
        self._grid(z)
        g = torch.as_tensor(gamma, dtype=torch.float64, device=z.device).reshape(-1, 1, 1, 1)
        r = z.to(torch.float64) + g * self.A_adjoint(y.to(torch.float64))
        low = torch.fft.ifft2(torch.fft.fft2(self.A(r)) / (1 + g * self._P(z.shape, z.device))).real
        return (r - g * self.A_adjoint(low)).to(z.dtype)

    def init(self, y: torch.Tensor) -> torch.Tensor:
        """Bicubic upsampling of y (clamped to [0, 1])."""
        f = self.factor
        return torch.nn.functional.interpolate(y, scale_factor=f, mode="bicubic", align_corners=False).clamp(0, 1)


class Inpainting:
    """``A x = m x`` with a 0/1 mask ``m`` (1 = observed), missing pixels observed as 0. ``A = A^T``,
    ``||A|| = 1``, ``prox_l2(z, y, g) = (z + g m y) / (1 + g m)``."""

    task: Task = "inpaint"

    def __init__(self, mask):
        self.mask = load_mask(mask)

    def __repr__(self) -> str:
        return f"Inpainting({self.mask.shape[-2]}x{self.mask.shape[-1]}, {self.mask.mean().item():.1%} observed)"

    def _m(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            raise ValueError(f"expected a (B, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}.")
        if tuple(x.shape[-2:]) != tuple(self.mask.shape[-2:]):
            raise ValueError(f"the mask is {self.mask.shape[-2]}x{self.mask.shape[-1]} but the image is "
                             f"{x.shape[-2]}x{x.shape[-1]}; give a mask of the image's size.")
        return self.mask.to(device=x.device, dtype=x.dtype)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self._m(x) * x

    __call__ = A
    A_adjoint = A

    def norm(self, shape) -> float:
        return 1.0

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma) -> torch.Tensor:
        m = self._m(z)
        g = torch.as_tensor(gamma, dtype=z.dtype, device=z.device).reshape(-1, 1, 1, 1)
        return (z + g * m * y) / (1 + g * m)

    def init(self, y: torch.Tensor) -> torch.Tensor:
        """Missing pixels filled with the mean of the observed ones (per image and channel)."""
        m = self._m(y)
        mean = (m * y).sum(dim=(-2, -1), keepdim=True) / m.sum(dim=(-2, -1), keepdim=True)
        return m * y + (1 - m) * mean


class Denoising:
    """``A = Id``: ``prox_l2(z, y, g) = (z + g y) / (1 + g)``."""

    task: Task = "denoise"

    def __repr__(self) -> str:
        return "Denoising()"

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return x

    __call__ = A
    A_adjoint = A

    def norm(self, shape) -> float:
        return 1.0

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma) -> torch.Tensor:
        g = torch.as_tensor(gamma, dtype=z.dtype, device=z.device).reshape(-1, 1, 1, 1)
        return (z + g * y) / (1 + g)

    def init(self, y: torch.Tensor) -> torch.Tensor:
        return y.clone()


def operator_norm(physics, like: torch.Tensor, iters: int = 50, seed: int = 0) -> float:
    """``||A||``: exact when the operator has ``norm(shape)``, else power iteration on A^T A (``iters``
    steps from a seeded start; a slight under-estimate)."""
    if hasattr(physics, "norm") and not isinstance(physics, torch.nn.Module):
        return physics.norm(like.shape)
    return power_iteration(physics, like, iters, seed)


def power_iteration(physics, like: torch.Tensor, iters: int = 50, seed: int = 0) -> float:
    """``||A||`` by ``iters`` steps of power iteration on A^T A from a seeded Gaussian start shaped like
    ``like``; it approaches ||A|| from below."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(like.shape, generator=g, dtype=like.dtype).to(like.device)
    x = x / x.norm()
    lam = 0.0
    for _ in range(iters):
        z = physics.A_adjoint(physics.A(x))
        lam = float((x * z).sum())
        x = z / z.norm().clamp(min=1e-30)
    return math.sqrt(max(lam, 0.0))


def observe(x: torch.Tensor, physics, noise_level: float, seed: int = 0) -> torch.Tensor:
    """Simulate ``y = A x + nu w``, w ~ N(0, Id) drawn in float32 on the CPU from ``seed`` (the same
    seed gives the same observation on every device), in x's dtype and device."""
    check_image(x, "x")
    nu = float(noise_level)
    if not (nu >= 0 and math.isfinite(nu)):
        raise ValueError(f"noise level must be finite and >= 0 ([0, 1] units), got {noise_level!r}.")
    Ax = physics.A(x)
    g = torch.Generator().manual_seed(int(seed))
    w = torch.randn(Ax.shape, generator=g, dtype=torch.float32).to(device=Ax.device, dtype=Ax.dtype)
    return Ax + nu * w


#: how :func:`estimate_noise` works, recorded beside its value
NOISE_ESTIMATOR = "median(|HH|) / 0.6745 over the finest Haar diagonal coefficients (Donoho & Johnstone 1994)"


def estimate_noise(y: torch.Tensor, mask: Optional[torch.Tensor] = None) -> float:
    """Estimate nu from an observation: the finest orthonormal Haar diagonal coefficients
    ``HH = (a - b - c + d) / 2`` of 2x2 blocks keep white noise's std and little of a smooth (or
    blurred) image, and their median absolute value / 0.6745 is the std of Gaussian noise, robust to
    the edges that leak in (:data:`NOISE_ESTIMATOR`). With a ``mask`` only fully observed blocks count.
    Biased upwards on textured images (edges count as noise)."""
    check_image(y, "observation")
    H, W = (y.shape[-2] // 2) * 2, (y.shape[-1] // 2) * 2
    if H < 2 or W < 2:
        raise ValueError(f"cannot estimate the noise of a {y.shape[-2]}x{y.shape[-1]} image; give --noise-level NU.")
    v = y[..., :H, :W].double()
    hh = (v[..., 0::2, 0::2] - v[..., 0::2, 1::2] - v[..., 1::2, 0::2] + v[..., 1::2, 1::2]) / 2
    if mask is not None:
        m = mask[..., :H, :W].to(v)
        full = (m[..., 0::2, 0::2] * m[..., 0::2, 1::2] * m[..., 1::2, 0::2] * m[..., 1::2, 1::2]) > 0
        hh = hh[full.expand_as(hh)]
        if hh.numel() < 16:
            raise ValueError("too few fully observed 2x2 blocks to estimate the noise; give --noise-level NU.")
    return float(hh.abs().flatten().median()) / 0.6745
