import math

import pytest
import torch

from inrd.restoration.noise_level import (
    DEFAULT_ESTIMATOR,
    DESCRIPTIONS,
    ESTIMATORS,
    estimate_noise_level,
    estimator_for,
    haar_mad,
    pca_patches,
)
from inrd.restoration.physics import estimate_noise


def smooth(channels: int, n: int = 128) -> torch.Tensor:
    """A smooth (band-limited, a few cycles per image) (1, C, n, n) image in [0.1, 0.9]."""
    t = torch.linspace(0, 1, n, dtype=torch.float64)
    x = 0.5 + 0.2 * torch.sin(2 * math.pi * (1.5 * t[:, None] + 0.5 * t[None, :])) \
        + 0.15 * torch.cos(4 * math.pi * t[None, :]) * t[:, None]
    return torch.stack([x * (0.8 + 0.1 * c) for c in range(channels)])[None]


def noisy(channels: int, nu: float, seed: int) -> torch.Tensor:
    x = smooth(channels)
    return x + nu * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("nu", [0.01, 0.05, 0.2])
def test_default_estimator_on_known_gaussian_noise(channels, nu):
    # theory: MAD / 0.6745 of n Gaussian coefficients has relative std sqrt(1.3626 / n) (asymptotic
    # variance of the normal-consistent MAD); one 128x128 channel has n = 64^2 finest diagonal
    # coefficients (1.8 %), the channel average of C independent ones sqrt(C) less. 4 std of slack
    # (7.3 % gray, 4.2 % colour); the smooth image's leak into the finest band is far below (measured:
    # mean error -0.2 % gray, -0.8 % colour over 20 seeds, worst 3.1 %)
    tol = 4 * math.sqrt(1.3626 / (64 * 64 * channels))
    for seed in range(3):
        est = estimate_noise_level(noisy(channels, nu, seed))
        assert abs(est / nu - 1) <= tol, (DEFAULT_ESTIMATOR, seed, est)


@pytest.mark.parametrize("channels", [1, 3])
def test_pca_on_known_gaussian_noise(channels):
    # measured over 20 seeds at nu in {0.01, 0.05, 0.1}: mean error -0.6 to -1.1 %, worst 3.6 %; 6 % allowed
    for nu in (0.01, 0.1):
        est = pca_patches(noisy(channels, nu, 0))
        assert abs(est / nu - 1) <= 0.06, est


def test_all_estimators_read_no_noise_on_a_clean_smooth_image():
    x = smooth(3)
    for name, f in ESTIMATORS.items():
        assert f(x) < 0.002, name  # 0.5 of an 8-bit level; the 0.01 noise above reads 0.01


@pytest.mark.parametrize("estimator", [haar_mad, pca_patches])
def test_mask_keeps_only_observed_pixels(estimator):
    # left half noise 0.1, right half 0.02: observing only the right half must read 0.02
    x = smooth(3)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    w[..., :64] *= 0.1
    w[..., 64:] *= 0.02
    mask = torch.zeros(1, 1, 128, 128)
    mask[..., 64:] = 1
    assert abs(estimator(x + w, mask) / 0.02 - 1) < 0.1
    assert estimator(x + w) > 0.03  # without the mask the noisy half counts


def test_default_with_a_mask_and_names():
    y = noisy(3, 0.05, 5)
    mask = torch.ones(1, 1, 128, 128)
    mask[..., :10, :] = 0
    if DEFAULT_ESTIMATOR == "wavelet":  # scikit-image's rule has no mask: the same rule on observed blocks
        assert estimate_noise_level(y, mask) == estimate_noise(y, mask) and estimator_for(mask) == "haar-mad"
    assert estimator_for() == DEFAULT_ESTIMATOR and set(DESCRIPTIONS) == set(ESTIMATORS)
    with pytest.raises(ValueError, match="takes no mask"):
        estimate_noise_level(y, mask, estimator="wavelet")
    assert estimate_noise_level(y, estimator="PCA") == pca_patches(y)
    with pytest.raises(ValueError, match="noise estimator must be"):
        estimate_noise_level(y, estimator="bm3d")
    with pytest.raises(ValueError, match="too few"):
        pca_patches(torch.rand(1, 3, 12, 12))
