"""Exact MMSE denoisers ``D*_sigma(u) = E[U_0 | U_0 + sigma Z = u]`` (paper eq. 16) for laws where it
has a closed form. They are the ground truth of the tests and a teaching tool: INRD driven by an exact
denoiser samples exactly what the schedule allows, nothing hides behind training error.

All work on (B, C, H, W) images in [0, 1] units; arithmetic in float64, output in the input's dtype.
"""

from __future__ import annotations

import math

import torch
from deepinv.models import Denoiser

from ..validate import check_image, sigma_vector

__all__ = ["GaussianDenoiser", "StationaryGaussianDenoiser", "GaussianMixtureDenoiser", "EmpiricalDenoiser"]


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).to(torch.float64)


class GaussianDenoiser(Denoiser):
    """MMSE denoiser of ``N(mean, cov)``: ``D(u) = m + C (C + sigma^2 I)^{-1} (u - m)``, applied in the
    eigenbasis of C (``cov = V diag(lambda) V^T``), so each sigma costs two matrix products.

    Args:
        mean: (C, H, W) tensor (or anything broadcastable to it together with ``image_shape``).
        cov: (d, d) symmetric positive semi-definite matrix, d = C*H*W.
    """

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor, image_shape=None):
        super().__init__()
        cov = torch.as_tensor(cov, dtype=torch.float64)
        d = cov.shape[0]
        if cov.ndim != 2 or cov.shape != (d, d):
            raise ValueError(f"cov must be a square (d, d) matrix, got {tuple(cov.shape)}.")
        if not torch.allclose(cov, cov.T, atol=1e-10 * cov.abs().max().clamp(min=1)):
            raise ValueError("cov must be symmetric; pass (cov + cov.T) / 2.")
        lam, vec = torch.linalg.eigh(cov)
        if lam.min() < -1e-8 * lam.abs().max().clamp(min=1e-300):
            raise ValueError(f"cov has a negative eigenvalue {lam.min().item():.3g}; a covariance must be positive semi-definite.")
        self._init(mean, lam.clamp(min=0), vec, image_shape)

    def _init(self, mean, lam, vec, image_shape):
        mean = torch.as_tensor(mean, dtype=torch.float64)
        self.image_shape = tuple(image_shape or mean.shape)
        d = math.prod(self.image_shape)
        if lam.shape != (d,):
            raise ValueError(f"covariance has size {lam.shape[0]} but images {self.image_shape} have d = {d} pixels.")
        self.register_buffer("mean", mean.expand(self.image_shape).reshape(d).clone())
        self.register_buffer("eigenvalues", lam)
        self.register_buffer("eigenvectors", vec)

    @classmethod
    def from_eigen(cls, mean, eigenvalues, eigenvectors, image_shape=None) -> "GaussianDenoiser":
        """Build from ``cov = V diag(eigenvalues) V^T`` with V orthonormal (columns are eigenvectors)."""
        self = cls.__new__(cls)
        Denoiser.__init__(self)
        lam = torch.as_tensor(eigenvalues, dtype=torch.float64)
        if (lam < 0).any():
            raise ValueError("eigenvalues of a covariance must be >= 0.")
        self._init(mean, lam, torch.as_tensor(eigenvectors, dtype=torch.float64), image_shape)
        return self

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        check_image(x, "x")
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"x has image shape {tuple(x.shape[1:])}, this Gaussian model is for {self.image_shape}.")
        s2 = sigma_vector(sigma, x).to(torch.float64)[:, None] ** 2
        shrink = self.eigenvalues / (self.eigenvalues + s2)  # (B, d); sigma = 0 with lambda = 0 gives NaN:
        shrink = torch.where(s2 > 0, shrink, torch.ones_like(shrink))  # no noise -> identity
        c = (_flat(x) - self.mean) @ self.eigenvectors
        out = self.mean + (shrink * c) @ self.eigenvectors.T
        return out.reshape(x.shape).to(x.dtype)

    def covariance(self) -> torch.Tensor:
        return (self.eigenvectors * self.eigenvalues) @ self.eigenvectors.T


class StationaryGaussianDenoiser(Denoiser):
    """MMSE denoiser of a stationary (periodic) Gaussian field, applied by FFT (Wiener filter):
    ``D(u) = m + F^{-1}[ P / (P + sigma^2) F(u - m) ]`` with the orthonormal 2-D DFT F.

    Args:
        mean: per-channel mean, a float or a (C,) tensor.
        spectrum: power spectrum P >= 0 of shape (C, H, W) (or (H, W), shared by all channels): the
            eigenvalues of the circulant covariance in the orthonormal Fourier basis, in [0, 1]^2 units.
            Channels are independent.
    """

    def __init__(self, mean, spectrum: torch.Tensor, channels: int | None = None):
        super().__init__()
        P = torch.as_tensor(spectrum, dtype=torch.float64)
        if P.ndim == 2:
            P = P.expand(channels or 1, *P.shape)
        if P.ndim != 3 or (P < 0).any() or not torch.isfinite(P).all():
            raise ValueError("spectrum must be a finite non-negative (C, H, W) or (H, W) tensor.")
        C = P.shape[0]
        m = torch.as_tensor(mean, dtype=torch.float64).reshape(-1).expand(C).clone()
        self.register_buffer("spectrum", P.clone())
        self.register_buffer("mean", m.reshape(C, 1, 1))

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        check_image(x, "x")
        if tuple(x.shape[1:]) != tuple(self.spectrum.shape):
            raise ValueError(f"x has image shape {tuple(x.shape[1:])}, the spectrum is {tuple(self.spectrum.shape)}.")
        s2 = sigma_vector(sigma, x).to(torch.float64).reshape(-1, 1, 1, 1) ** 2
        gain = torch.where(s2 > 0, self.spectrum / (self.spectrum + s2), torch.ones_like(s2))
        r = x.to(torch.float64) - self.mean
        out = self.mean + torch.fft.ifft2(gain * torch.fft.fft2(r, norm="ortho"), norm="ortho").real
        return out.to(x.dtype)


class GaussianMixtureDenoiser(Denoiser):
    """MMSE denoiser of a Gaussian mixture ``sum_k w_k N(m_k, C_k)``: the posterior-weighted average
    of the components' Wiener estimates, weights ``softmax_k(log w_k + log N(u; m_k, C_k + sigma^2 I))``.

    Args:
        weights: (K,) positive mixture weights (normalised here).
        means: (K, C, H, W).
        covs: (K, d, d) covariances, d = C*H*W.
    """

    def __init__(self, weights, means, covs):
        super().__init__()
        w = torch.as_tensor(weights, dtype=torch.float64)
        means = torch.as_tensor(means, dtype=torch.float64)
        covs = torch.as_tensor(covs, dtype=torch.float64)
        K = w.numel()
        if (w <= 0).any() or means.shape[0] != K or covs.shape[0] != K:
            raise ValueError("need K positive weights, K means and K covariances.")
        self.image_shape = tuple(means.shape[1:])
        d = math.prod(self.image_shape)
        if covs.shape[1:] != (d, d):
            raise ValueError(f"covs must be (K, {d}, {d}) for images {self.image_shape}, got {tuple(covs.shape)}.")
        lam, vec = torch.linalg.eigh((covs + covs.transpose(1, 2)) / 2)
        self.register_buffer("log_weights", torch.log(w / w.sum()))
        self.register_buffer("means", means.reshape(K, d))
        self.register_buffer("eigenvalues", lam.clamp(min=0))
        self.register_buffer("eigenvectors", vec)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        check_image(x, "x")
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"x has image shape {tuple(x.shape[1:])}, this mixture is for {self.image_shape}.")
        s2 = sigma_vector(sigma, x).to(torch.float64)[:, None, None] ** 2  # (B, 1, 1)
        r = _flat(x)[:, None, :] - self.means[None]  # (B, K, d)
        c = torch.einsum("bkd,kde->bke", r, self.eigenvectors)  # coordinates in each eigenbasis
        var = self.eigenvalues[None] + s2  # (B, K, d)
        loglik = -0.5 * (torch.log(var).sum(-1) + (c**2 / var).sum(-1))
        resp = torch.softmax(self.log_weights + loglik, dim=1)  # (B, K)
        est = self.means[None] + torch.einsum("bke,kde->bkd", self.eigenvalues[None] / var * c, self.eigenvectors)
        out = (resp[..., None] * est).sum(1)
        return out.reshape(x.shape).to(x.dtype)


class EmpiricalDenoiser(Denoiser):
    """MMSE denoiser of the empirical law of a dataset (a finite set of images):
    ``D(u) = sum_i softmax_i(-||u - x_i||^2 / (2 sigma^2)) x_i``. INRD with it can only produce
    training images, a sharp test of a sampler (and a reminder of why networks must generalise).

    Args:
        images: (N, C, H, W) training images in [0, 1].
    """

    def __init__(self, images: torch.Tensor):
        super().__init__()
        check_image(torch.as_tensor(images), "images")
        self.register_buffer("images", torch.as_tensor(images, dtype=torch.float64))

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        check_image(x, "x")
        if x.shape[1:] != self.images.shape[1:]:
            raise ValueError(f"x has image shape {tuple(x.shape[1:])}, the dataset is {tuple(self.images.shape[1:])}.")
        s = sigma_vector(sigma, x).to(torch.float64)
        if (s == 0).any():
            raise ValueError("the empirical MMSE denoiser needs sigma > 0 (at sigma = 0 it is the identity off the data).")
        data = self.images.reshape(self.images.shape[0], -1)
        d2 = torch.cdist(_flat(x), data) ** 2  # (B, N)
        w = torch.softmax(-d2 / (2 * s[:, None] ** 2), dim=1)
        return (w @ data).reshape(x.shape).to(x.dtype)
