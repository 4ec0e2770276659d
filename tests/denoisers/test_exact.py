import math

import pytest
import torch

from inrd.denoisers import EmpiricalDenoiser, GaussianDenoiser, GaussianMixtureDenoiser, StationaryGaussianDenoiser


def test_gaussian_denoiser_is_the_wiener_formula(gaussian_law):
    mean, cov = gaussian_law()
    D = GaussianDenoiser(mean, cov)
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.1, 1.0], dtype=torch.float64)
    out = D(x, sigma)
    for i in range(3):  # D(u) = m + C (C + s^2 I)^{-1} (u - m), solved directly
        r = (x[i] - mean).reshape(-1)
        expect = mean.reshape(-1) + cov @ torch.linalg.solve(cov + sigma[i] ** 2 * torch.eye(16, dtype=torch.float64), r)
        assert torch.allclose(out[i].reshape(-1), expect, atol=1e-12)
    assert torch.allclose(D(x, 0.0), x, rtol=0, atol=1e-14)  # no noise: identity (up to the basis round trip)


def test_gaussian_denoiser_is_the_posterior_mean_by_monte_carlo():
    # 1-D check of E[U0 | U0 + sigma Z = u] by conditioning samples on a thin slab around u
    D = GaussianDenoiser(torch.full((1, 1, 1), 0.4), torch.tensor([[0.04]]))
    g = torch.Generator().manual_seed(0)
    u0 = 0.4 + 0.2 * torch.randn(2_000_000, generator=g, dtype=torch.float64)
    u = u0 + 0.1 * torch.randn(2_000_000, generator=g, dtype=torch.float64)
    sel = (u - 0.6).abs() < 0.005
    mc = u0[sel].mean().item()
    exact = D(torch.full((1, 1, 1, 1), 0.6, dtype=torch.float64), 0.1).item()
    assert exact == pytest.approx(0.4 + 0.04 / 0.05 * 0.2)
    # ~15000 selected samples, posterior std sqrt(0.04 * 0.01 / 0.05) = 0.089: SE 7e-4; 5 SE
    assert abs(mc - exact) < 5 * 0.089 / math.sqrt(sel.sum().item()) + 0.002  # + slab-width bias


def test_stationary_equals_dense_circulant():
    H = W = 6
    g = torch.Generator().manual_seed(1)
    fy = torch.fft.fftfreq(H, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(W, dtype=torch.float64)[None, :]
    P = 0.01 / (fx**2 + fy**2 + 0.02)  # symmetric in f -> real covariance
    D = StationaryGaussianDenoiser(0.5, P)
    # dense covariance: C = F^* diag(P) F with the orthonormal DFT
    eye = torch.eye(H * W, dtype=torch.float64).reshape(H * W, H, W)
    cols = torch.fft.ifft2(P * torch.fft.fft2(eye, norm="ortho"), norm="ortho").real.reshape(H * W, H * W)
    dense = GaussianDenoiser(torch.full((1, H, W), 0.5, dtype=torch.float64), cols)
    x = torch.rand(2, 1, H, W, generator=g, dtype=torch.float64)
    assert torch.allclose(D(x, 0.1), dense(x, 0.1), atol=1e-12)


def test_mixture_with_one_component_is_gaussian(gaussian_law):
    mean, cov = gaussian_law()
    mix = GaussianMixtureDenoiser([1.0], mean[None], cov[None])
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    assert torch.allclose(mix(x, 0.2), GaussianDenoiser(mean, cov)(x, 0.2), atol=1e-12)


def test_mixture_matches_numerical_integration():
    # 1-D mixture 0.3 N(0.2, 0.01) + 0.7 N(0.8, 0.02): E[U0 | u] by quadrature on a fine grid
    w = torch.tensor([0.3, 0.7])
    means = torch.tensor([0.2, 0.8]).reshape(2, 1, 1, 1)
    covs = torch.tensor([0.01, 0.02]).reshape(2, 1, 1)
    D = GaussianMixtureDenoiser(w, means, covs)
    grid = torch.linspace(-1.5, 2.5, 400001, dtype=torch.float64)
    prior = 0.3 * torch.exp(-((grid - 0.2) ** 2) / 0.02) / math.sqrt(0.01) + 0.7 * torch.exp(-((grid - 0.8) ** 2) / 0.04) / math.sqrt(0.02)
    for u, s in [(0.5, 0.1), (0.1, 0.3), (0.9, 0.05)]:
        lik = torch.exp(-((u - grid) ** 2) / (2 * s**2))
        expect = (grid * prior * lik).sum() / (prior * lik).sum()
        got = D(torch.full((1, 1, 1, 1), u, dtype=torch.float64), s).item()
        assert got == pytest.approx(expect.item(), abs=1e-8)


def test_empirical_denoiser_limits():
    data = torch.tensor([0.1, 0.9], dtype=torch.float64).reshape(2, 1, 1, 1)
    D = EmpiricalDenoiser(data)
    x = torch.full((1, 1, 1, 1), 0.45, dtype=torch.float64)
    assert D(x, 1e-3).item() == pytest.approx(0.1)  # small sigma: nearest point
    assert D(x, 1e3).item() == pytest.approx(0.5, abs=1e-6)  # large sigma: the mean
    # two points: the posterior mean is the logistic weighting, exactly
    s = 0.2
    w9 = 1 / (1 + math.exp(((0.45 - 0.9) ** 2 - (0.45 - 0.1) ** 2) / (2 * s**2)))
    assert D(x, s).item() == pytest.approx(0.1 + 0.8 * w9, abs=1e-12)
    with pytest.raises(ValueError, match="sigma > 0"):
        D(x, 0.0)


def test_bad_inputs(gaussian_law):
    mean, cov = gaussian_law()
    D = GaussianDenoiser(mean, cov)
    with pytest.raises(ValueError, match="image shape"):
        D(torch.rand(1, 1, 5, 5, dtype=torch.float64), 0.1)
    with pytest.raises(ValueError, match="NaN"):
        D(torch.full((1, 1, 4, 4), float("nan")), 0.1)
    with pytest.raises(ValueError, match="\\(B, C, H, W\\)"):
        D(torch.rand(1, 4, 4), 0.1)
    with pytest.raises(ValueError, match="one value per image"):
        D(torch.rand(2, 1, 4, 4), torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match=">= 0"):
        D(torch.rand(1, 1, 4, 4), -0.1)
    with pytest.raises(ValueError, match="negative eigenvalue"):
        GaussianDenoiser(mean, -cov)
    with pytest.raises(ValueError, match="symmetric"):
        GaussianDenoiser(mean, cov + torch.triu(torch.ones_like(cov), 1))
