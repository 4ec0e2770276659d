"""Closed-form analysis of INRD on Gaussian data.

For data ``X ~ N(m, C)`` the exact MMSE denoiser is linear (paper eq. 16):
``D*_sigma(u) = m + C (C + sigma^2 I)^{-1} (u - m)``. In an orthonormal eigenbasis of C every
coordinate evolves on its own. For one coordinate with eigenvalue ``lam`` and data mean ``m``, write

    a_t = lam / (lam + sigma_t^2)          (Wiener gain of D*_{sigma_t})
    c_t = 1 - rho_t + rho_t a_t            (gain of the relaxed denoiser D^{rho_t}, eq. 13)

then one INRD step ``V_{t-1} = D^{rho_t}_{sigma_t}(V_t + gamma_t Z_t)`` reads

    V_{t-1} - m = c_t (V_t - m + gamma_t Z_t),

so from a Gaussian start ``V_T = init + init_std Z`` the law of ``V_0`` is Gaussian with, per coordinate,

    e_{t-1} = c_t e_t,   v_{t-1} = c_t^2 (v_t + gamma_t^2),   e_T = init - m,  v_T = init_std^2,

and ``E[V_0] = m + e_0``, ``Var V_0 = v_0``. The rho_t and gamma_t are those of
:func:`inrd.schedules.relaxation` and :func:`inrd.schedules.gammas`, the very numbers
:func:`inrd.sample` uses. Both laws being diagonal in the same basis, the Wasserstein-2 distance
between the law of ``V_0`` and the data law is

    W2^2 = sum_i (E[V_0]_i - m_i)^2 + sum_i (sqrt(v0_i) - sqrt(lam_i))^2      (bias^2 + spread^2).

Normalisations used in reports (:class:`W2`):

* ``relative = W2 / sqrt(sum_i lam_i)``: 0 is perfect, 1 is the distance from the data law to a point
  mass at its mean (what a sampler that only outputs the mean achieves);
* ``rms = W2 / sqrt(d)``: per-pixel root mean square, in [0, 1] image units (x 255 for grey levels).

Everything here is float64 numpy, vectorised over eigenvalues. Spectra (:class:`Spectrum`): arbitrary
eigenvalues, stationary power-law fields (``1/f^alpha`` on a periodic grid, the spectrum of
:class:`inrd.denoisers.StationaryGaussianDenoiser`), and the covariance of image patches of the
scikit-image photographs. :func:`best_subgrid` searches the n-step subgrid of a fine schedule with the
lowest W2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch

from .schedules import Relaxation, check_sigmas, gammas, prune_indices, relaxation

__all__ = [
    "Law",
    "W2",
    "output_law",
    "w2",
    "w2_distance",
    "Spectrum",
    "power_law_grid",
    "real_fourier_basis",
    "SubgridResult",
    "best_subgrid",
    "subgrid_w2",
]


# --------------------------------------------------------------------------------------------------
# Exact law of V_0 and its W2 distance to the data law
# --------------------------------------------------------------------------------------------------


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


def output_law(sigmas, rho: Relaxation, eigenvalues, mean, init=0.5, init_std=0.0, start_noise: float = 0.0) -> Law:
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


def w2(sigmas, rho: Relaxation, eigenvalues, mean, init=0.5, init_std=0.0, start_noise: float = 0.0, weights=None) -> W2:
    """W2 distance between the law of INRD's ``V_0`` (:func:`output_law`, same arguments) and the data law."""
    law = output_law(sigmas, rho, eigenvalues, mean, init=init, init_std=init_std, start_noise=start_noise)
    return w2_distance(law, eigenvalues, mean, weights)


# --------------------------------------------------------------------------------------------------
# Spectra
# --------------------------------------------------------------------------------------------------


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
        from .io import load_image

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

    def law(self, sigmas, rho: Relaxation = "canonical", init=0.5, init_std=0.0, start_noise: float = 0.0) -> Law:
        """:func:`output_law` for this data law; ``init`` is an image (constant or pixel array)."""
        return output_law(sigmas, rho, self.eigenvalues, self.mean, self.start(init), init_std, start_noise)

    def w2(self, sigmas, rho: Relaxation = "canonical", init=0.5, init_std=0.0, start_noise: float = 0.0) -> W2:
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
        from .denoisers import GaussianDenoiser, StationaryGaussianDenoiser

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


# --------------------------------------------------------------------------------------------------
# Best n-step subgrid of a fine schedule
# --------------------------------------------------------------------------------------------------


def _local_rho(rho, s_prev, s_cur):
    """rho_t from (sigma_{t-1}, sigma_t) for relaxations defined step by step (as in schedules.relaxation)."""
    if isinstance(rho, str):
        key = rho.lower()
        if key == "canonical":
            return 1.0 - (s_prev / s_cur) ** 2
        if key == "ind":
            return np.ones_like(np.asarray(s_cur, dtype=np.float64))
        if key == "ddim":
            return 1.0 - s_prev / s_cur
        raise ValueError(f"unknown relaxation {rho!r}; the subgrid search takes 'canonical', 'ind', 'ddim' or a number.")
    if isinstance(rho, (int, float)) and 0 <= rho <= 1:
        return np.full_like(np.asarray(s_cur, dtype=np.float64), float(rho))
    raise ValueError(f"the subgrid search needs a relaxation defined step by step ('canonical', 'ind', 'ddim' or a number in [0, 1]), got {rho!r}.")


class SubgridResult(NamedTuple):
    """Outcome of :func:`best_subgrid`: ``indices`` into the fine grid (``0 = a_0 < ... < a_n = T``),
    the subgrid ``sigmas``, its W2, that of uniform pruning, and the number of sweeps and moves made."""

    indices: np.ndarray
    sigmas: torch.Tensor
    w2: W2
    uniform: W2
    sweeps: int
    moves: int


def subgrid_w2(spectrum: Spectrum, fine_sigmas, indices, rho: Relaxation = "canonical", **start) -> W2:
    """W2 of the subgrid ``fine_sigmas[indices]`` (exact, through :func:`output_law`); ``start``:
    ``init``, ``init_std``, ``start_noise`` as for :meth:`Spectrum.w2`."""
    s = check_sigmas(fine_sigmas)[torch.as_tensor(np.asarray(indices), dtype=torch.long)]
    return spectrum.w2(s, rho, **start)


def best_subgrid(
    spectrum: Spectrum,
    fine_sigmas,
    steps: int,
    rho: Relaxation = "canonical",
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
    _local_rho(rho, S[:1], S[1:2])  # validates rho
    kw = {"init": float(init), "init_std": float(init_std), "start_noise": float(start_noise)}
    uniform = subgrid_w2(spectrum, S, idx, rho, **kw)
    n = int(steps)
    lam, w = spectrum.eigenvalues, spectrum.counts
    e_start = spectrum.start(kw["init"]) - spectrum.mean
    v_start = np.full_like(lam, float(kw["init_std"]) ** 2)
    start2 = float(kw["start_noise"]) ** 2
    sq_lam = np.sqrt(lam)

    def coefs(sig):
        """rho_t, gamma_t^2, c_t (t = 1..n) of the subgrid ``sig`` (index 0 unused)."""
        r = np.full(n + 1, np.nan)
        r[1:] = _local_rho(rho, sig[:-1], sig[1:])
        g2 = np.zeros(n + 1)
        g2[1:n] = sig[1:n] ** 2 - (1 - r[2:]) ** 2 * sig[2:] ** 2
        g2[n] = sig[n] ** 2 - start2
        c = 1.0 - r[:, None] + r[:, None] * (lam / (lam + sig[:, None] ** 2))
        return r, np.clip(g2, 0.0, None), c

    def objective(e0, v0):
        return np.sum(w * (e0**2 + (np.sqrt(v0) - sq_lam) ** 2), axis=-1)

    sweeps = moves = 0
    best = uniform.w2**2
    for sweeps in range(1, max_sweeps + 1):
        moved = False
        # Laws of V_{k+1} for every k (steps n..k+2), top-down. They use sigma_{k+1}..sigma_n only, which
        # this sweep (k ascending) has not touched yet when k is visited.
        _, g2, c = coefs(S[idx])
        heads = [None] * (n + 1)
        e, v = e_start.copy(), v_start.copy()
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
            r_up = _local_rho(rho, sk, s_up)  # rho_{k+1}
            r_k = _local_rho(rho, s_dn, sk)  # rho_k
            g2_k = sk**2 - (1 - r_up) ** 2 * s_up**2  # gamma_k^2
            g2_dn = s_dn**2 - (1 - r_k) ** 2 * sk**2 if k > 1 else np.zeros_like(sk)  # gamma_{k-1}^2
            ok = ((g2_k >= -1e-12 * sk**2) & (g2_dn >= -1e-12 * sk**2))[:, 0]
            g2_k, g2_dn = np.clip(g2_k, 0, None), np.clip(g2_dn, 0, None)
            c_up = 1 - r_up + r_up * (lam / (lam + s_up**2))  # (J, n_lam)
            c_k = 1 - r_k + r_k * (lam / (lam + sk**2))
            # g2[k + 1] = gamma_{k+1}^2 depends on rho_{k+2} (or on the start): not on sigma_k
            e0 = P * (c_k * c_up * e)
            v0 = P**2 * (c_k**2 * (c_up**2 * (v + g2[k + 1]) + g2_k) + g2_dn) + R
            score = np.where(ok, objective(e0, v0), np.inf)
            j = int(np.argmin(score))
            if score[j] < best * (1 - 1e-12) and cand[j] != idx[k]:
                idx[k] = cand[j]
                best = float(score[j])
                moves += 1
                moved = True
            else:
                j = int(np.searchsorted(cand, idx[k]))
            R = R + P**2 * g2_dn[j, 0]
            P = P * c_k[j]
        if not moved:
            break
    final = subgrid_w2(spectrum, S, idx, rho, **kw)
    return SubgridResult(indices=idx, sigmas=torch.from_numpy(S[idx]), w2=final, uniform=uniform, sweeps=sweeps, moves=moves)
