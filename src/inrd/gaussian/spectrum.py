"""Gaussian data laws ``N(m, C)`` seen in an orthonormal eigenbasis of C: arbitrary eigenvalues, stationary
``1/f^alpha`` fields on a periodic grid (the Fourier basis), and the covariance of photograph patches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import numpy as np
import torch

from ..choices import Rho
from .law import W2, Law, _array, _eigenvalues, _like, output_law, w2_distance

__all__ = ["Spectrum", "power_law_grid", "real_fourier_basis"]


@dataclass(frozen=True)
class Spectrum:
    """A Gaussian data law ``N(m, C)`` seen in an orthonormal eigenbasis of C.

    Attributes:
        eigenvalues: (n,) eigenvalues of C ([0, 1]^2 units).
        mean: (n,) coordinates of the data mean in the eigenbasis.
        ones: (n,) coordinates of the constant image 1 (so the start ``V_T = c`` is ``c * ones``).
        counts: (n,) multiplicity of each row (all 1 unless :meth:`compress` merged equal rows).
        name: label for tables.
        shape: image shape (C, H, W) the law lives on, when known.
        basis: (d, d) eigenvectors as columns in pixel space (row-major flattening of ``shape``), when known.
        stationary: True when the eigenbasis is the 2-D Fourier basis and ``eigenvalues`` is the
            (H, W) power spectrum flattened in ``torch.fft.fft2`` order (one channel).
    """

    eigenvalues: np.ndarray
    mean: np.ndarray
    ones: np.ndarray
    counts: np.ndarray = None
    name: str = "custom"
    shape: Optional[tuple] = None
    basis: Optional[np.ndarray] = field(default=None, repr=False)
    stationary: bool = False

    def __post_init__(self):
        lam = _eigenvalues(self.eigenvalues).reshape(-1)
        object.__setattr__(self, "eigenvalues", lam)
        object.__setattr__(self, "mean", _like(self.mean, lam, "mean"))
        object.__setattr__(self, "ones", _like(self.ones, lam, "ones"))
        counts = np.ones_like(lam) if self.counts is None else _like(self.counts, lam, "counts")
        if (counts <= 0).any():
            raise ValueError("counts (multiplicities) must be > 0.")
        object.__setattr__(self, "counts", counts)

    # -- constructors -------------------------------------------------------------------------------

    @classmethod
    def from_eigenvalues(cls, eigenvalues, mean=0.5, ones=1.0, name: str = "custom") -> "Spectrum":
        """Arbitrary eigenvalues. Defaults describe independent pixels (the pixel basis): data mean 0.5
        in every coordinate and the constant image 1 = all-ones coordinates."""
        return cls(eigenvalues=eigenvalues, mean=mean, ones=ones, name=name)

    @classmethod
    def from_covariance(cls, mean, cov, shape=None, name: str = "covariance") -> "Spectrum":
        """From a pixel-space mean (d,) and covariance (d, d) (symmetric PSD); keeps the eigenbasis."""
        cov = _array(cov, "cov")
        d = cov.shape[0] if cov.ndim == 2 else -1
        if cov.ndim != 2 or cov.shape != (d, d):
            raise ValueError(f"cov must be a square (d, d) matrix, got shape {cov.shape}.")
        if not np.allclose(cov, cov.T, atol=1e-12 * max(1.0, float(np.abs(cov).max()))):
            raise ValueError("cov must be symmetric; pass (cov + cov.T) / 2.")
        mean = _array(mean, "mean").reshape(-1)
        if mean.size == 1:
            mean = np.full(d, float(mean[0]))
        if mean.size != d:
            raise ValueError(f"mean has {mean.size} entries but cov is {d} x {d}; give one mean per pixel.")
        lam, vec = np.linalg.eigh((cov + cov.T) / 2)
        if lam.min() < -1e-9 * max(float(lam.max()), 1e-300):
            raise ValueError(f"cov has a negative eigenvalue {lam.min():.3g}; a covariance must be positive semi-definite.")
        lam, vec = np.clip(lam[::-1], 0.0, None), vec[:, ::-1]  # descending
        return cls(
            eigenvalues=lam, mean=vec.T @ mean, ones=vec.sum(axis=0), name=name,
            shape=tuple(shape) if shape is not None else (d,), basis=np.ascontiguousarray(vec),
        )

    @classmethod
    def power_law(cls, size=64, alpha: float = 2.0, std: float = 0.25, mean: float = 0.5) -> "Spectrum":
        """Stationary Gaussian field on a periodic (H, W) grid with power spectrum ``~ 1/|f|^alpha``
        (natural images: alpha ~ 2), per-pixel std ``std`` and mean ``mean`` (see :func:`power_law_grid`).
        Its exact denoiser is ``StationaryGaussianDenoiser(mean, power_law_grid(...))`` (see :meth:`denoiser`)."""
        P = power_law_grid(size, alpha, std).numpy()
        H, W = P.shape
        n = H * W
        mean_c = np.zeros(n)
        ones = np.zeros(n)
        ones[0] = math.sqrt(n)  # orthonormal DFT: the constant image 1 lives at frequency 0, coordinate sqrt(HW)
        mean_c[0] = float(mean) * math.sqrt(n)
        return cls(
            eigenvalues=P.reshape(-1), mean=mean_c, ones=ones, name=f"power-law alpha={alpha:g} {H}x{W} std={std:g}",
            shape=(1, H, W), stationary=True,
        )

    @classmethod
    def patches(
        cls, images: Sequence[str] = ("camera", "astronaut", "coffee", "chelsea"), patch: int = 8, stride: int = 4
    ) -> "Spectrum":
        """Empirical mean and covariance of the ``patch`` x ``patch`` grey patches (every ``stride`` pixels)
        of scikit-image photographs (offline, via :func:`inrd.io.load_image`), in [0, 1] units."""
        from ..io import load_image

        if int(patch) != patch or patch < 1 or int(stride) != stride or stride < 1:
            raise ValueError(f"patch and stride must be positive integers, got patch={patch}, stride={stride}.")
        if isinstance(images, str):
            images = [images]
        if not images:
            raise ValueError("give at least one image for the patch covariance.")
        rows = []
        for name in images:
            x = load_image(name, channels=1)[0, 0].to(torch.float64)
            if min(x.shape) < patch:
                raise ValueError(f"image {name!r} ({tuple(x.shape)}) is smaller than the {patch}x{patch} patches.")
            p = x.unfold(0, patch, stride).unfold(1, patch, stride)  # (nh, nw, patch, patch)
            rows.append(p.reshape(-1, patch * patch).numpy())
        X = np.concatenate(rows)
        mu = X.mean(axis=0)
        cov = (X - mu).T @ (X - mu) / (X.shape[0] - 1)
        return cls.from_covariance(mu, cov, shape=(1, patch, patch), name=f"patches {patch}x{patch} of {','.join(images)}")

    # -- derived quantities -------------------------------------------------------------------------

    @property
    def d(self) -> int:
        return int(round(float(self.counts.sum())))

    @property
    def total_std(self) -> float:
        """``sqrt(sum lam)``: the W2 distance from the data law to the point mass at its mean."""
        return math.sqrt(float(np.sum(self.counts * self.eigenvalues)))

    def start(self, init) -> np.ndarray:
        """Coordinates of the start ``V_T``: a constant image (number) or pixel-basis image ((d,) array)."""
        a = _array(init, "init")
        if a.ndim == 0:
            return float(a) * self.ones
        if self.basis is None:
            raise ValueError("an init image needs the spectrum's eigenbasis; pass a constant init.")
        a = a.reshape(-1)
        if a.size != self.basis.shape[0]:
            raise ValueError(f"init has {a.size} pixels but this spectrum has {self.basis.shape[0]}.")
        return self.basis.T @ a

    def law(self, sigmas, rho: Rho = "canonical", init=0.5, init_std=0.0, start_noise: float = 0.0) -> Law:
        """:func:`output_law` for this data law; ``init`` is an image (constant or pixel array)."""
        return output_law(sigmas, rho, self.eigenvalues, self.mean, self.start(init), init_std, start_noise)

    def w2(self, sigmas, rho: Rho = "canonical", init=0.5, init_std=0.0, start_noise: float = 0.0) -> W2:
        """W2 between the law of INRD's ``V_0`` and this data law (see :class:`W2` for normalisations)."""
        return w2_distance(self.law(sigmas, rho, init, init_std, start_noise), self.eigenvalues, self.mean, self.counts)

    def compress(self, decimals: int = 12) -> "Spectrum":
        """Merge coordinates with equal (eigenvalue, mean, ones) rows, keeping multiplicities in ``counts``:
        the same W2 for a fraction of the work (a 64x64 isotropic spectrum has ~600 distinct rows, not 4096).
        Rows are compared after rounding to ``decimals`` significant digits."""
        rows = np.stack([self.eigenvalues, self.mean, self.ones], axis=1)
        scale = np.where(rows == 0, 1.0, 10.0 ** np.floor(np.log10(np.abs(np.where(rows == 0, 1.0, rows)))))
        key = np.round(rows / scale, decimals) * scale
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        counts = np.bincount(inverse.reshape(-1), weights=self.counts)
        return replace(
            self, eigenvalues=self.eigenvalues[first], mean=self.mean[first], ones=self.ones[first], counts=counts,
            basis=None, stationary=False,
        )

    def pixel_mean(self) -> torch.Tensor:
        """Data mean as a (C, H, W) image (needs the eigenbasis or a stationary spectrum)."""
        if self.stationary:
            return torch.full(self.shape, float(self.mean[0]) / math.sqrt(self.eigenvalues.size), dtype=torch.float64)
        if self.basis is None:
            raise ValueError(f"spectrum {self.name!r} has no known eigenbasis; build it with from_covariance or power_law.")
        return torch.from_numpy(self.basis @ self.mean).reshape(self.shape)

    def denoiser(self):
        """The exact MMSE denoiser of this law, an :mod:`inrd.denoisers` module (``D(x, sigma)``)."""
        from ..denoisers import GaussianDenoiser, StationaryGaussianDenoiser

        if self.stationary:
            m = float(self.mean[0]) / math.sqrt(self.eigenvalues.size)
            return StationaryGaussianDenoiser(m, torch.from_numpy(self.eigenvalues.reshape(self.shape[1:])))
        if self.basis is None:
            raise ValueError(f"spectrum {self.name!r} has no known eigenbasis; build it with from_covariance or power_law.")
        return GaussianDenoiser.from_eigen(self.pixel_mean(), self.eigenvalues, self.basis, self.shape)


def power_law_grid(size=64, alpha: float = 2.0, std: float = 0.25) -> torch.Tensor:
    """Power spectrum ``P(f) = A / |f|^alpha`` on an (H, W) periodic grid, in ``torch.fft.fft2`` order.

    ``f = (fy, fx)`` in cycles per pixel (``torch.fft.fftfreq``). At f = 0, where ``1/|f|^alpha`` is
    infinite, P takes the value of the lowest non-zero frequency ``|f| = 1 / max(H, W)``. ``A`` is set so
    that the per-pixel variance ``(1 / HW) sum_f P(f)`` equals ``std^2``. With the orthonormal DFT these
    are the eigenvalues of the circulant covariance: the ``spectrum`` of ``StationaryGaussianDenoiser``.
    """
    H, W = (size, size) if np.ndim(size) == 0 else tuple(size)
    if int(H) != H or int(W) != W or H < 1 or W < 1:
        raise ValueError(f"size must be a positive integer or (H, W), got {size!r}.")
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite number >= 0 (1/f^alpha spectrum), got {alpha}.")
    if not (math.isfinite(std) and std > 0):
        raise ValueError(f"std must be a finite number > 0 (per-pixel std in [0, 1] units), got {std}.")
    fy = torch.fft.fftfreq(int(H), dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(int(W), dtype=torch.float64)[None, :]
    f = torch.sqrt(fy**2 + fx**2)
    f[0, 0] = 1.0 / max(H, W)
    P = f ** (-float(alpha))
    return P * (std**2 * H * W / P.sum())


def real_fourier_basis(H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """A real orthonormal basis of R^{H x W} made of cosines and sines, each basis vector tied to one
    DFT frequency: returns ``(basis, index)`` with ``basis`` (HW, HW) (columns; row-major pixels) and
    ``index`` (HW,) the flat ``fft2``-order frequency of each column. For a spectrum P symmetric under
    f -> -f, ``basis @ diag(P.flat[index]) @ basis.T`` is the circulant covariance with spectrum P."""
    y = np.arange(H)[:, None]
    x = np.arange(W)[None, :]
    cols, idx = [], []
    for u in range(H):
        for v in range(W):
            cu, cv = (-u) % H, (-v) % W
            k, kc = u * W + v, cu * W + cv
            phase = 2 * np.pi * (u * y / H + v * x / W)
            if k == kc:  # self-conjugate frequency: only the cosine (+-1 pattern or constant)
                cols.append(np.cos(phase).reshape(-1) / math.sqrt(H * W))
                idx.append(k)
            elif k < kc:  # one cosine and one sine per pair {f, -f}
                cols.append(np.cos(phase).reshape(-1) * math.sqrt(2.0 / (H * W)))
                cols.append(np.sin(phase).reshape(-1) * math.sqrt(2.0 / (H * W)))
                idx += [k, kc]
    return np.stack(cols, axis=1), np.asarray(idx)
