"""Gaussian data laws in their eigenbasis (inrd.gaussian.spectrum): the Fourier basis of stationary fields,
photograph patches, compression of equal rows (exact: the same W2)."""

import math

import numpy as np
import pytest
import torch

import inrd
from inrd import gaussian as G
from inrd import schedules as S


def test_real_fourier_basis_diagonalises_the_stationary_denoiser():
    spec = G.Spectrum.power_law((4, 6), alpha=1.5, std=0.2, mean=0.5)
    basis, index = G.real_fourier_basis(4, 6)
    np.testing.assert_allclose(basis.T @ basis, np.eye(24), atol=1e-12)
    dense = G.Spectrum.from_covariance(np.full(24, 0.5), (basis * spec.eigenvalues[index]) @ basis.T, shape=(1, 4, 6))
    x = torch.rand(3, 1, 4, 6, dtype=torch.float64)
    for sigma in (0.01, 0.3):
        torch.testing.assert_close(spec.denoiser()(x, sigma), dense.denoiser()(x, sigma), rtol=0, atol=1e-12)
    # the power-law normalisation: per-pixel variance std^2
    assert spec.eigenvalues.mean() == pytest.approx(0.2**2, rel=1e-12)
    assert spec.total_std == pytest.approx(0.2 * math.sqrt(24), rel=1e-12)


def test_patch_spectrum_of_skimage_photographs():
    spec = G.Spectrum.patches(("camera",), patch=4, stride=8)
    assert spec.eigenvalues.shape == (16,) and spec.shape == (1, 4, 4)
    assert np.all(np.diff(spec.eigenvalues) <= 0) and spec.eigenvalues.min() >= 0
    np.testing.assert_allclose(spec.basis.T @ spec.basis, np.eye(16), atol=1e-12)
    # the mean patch is nearly flat: its coordinates sit on the top eigenvector (the local mean)
    x = inrd.io.load_image("camera", channels=1)[0, 0].double()
    patches = x.unfold(0, 4, 8).unfold(1, 4, 8).reshape(-1, 16).numpy()
    assert spec.total_std**2 == pytest.approx(patches.var(0, ddof=1).sum(), rel=1e-10)
    np.testing.assert_allclose(spec.basis @ spec.mean, patches.mean(0), atol=1e-12)
    # natural-image spectrum: the local mean dominates, the rest decays over decades
    assert spec.eigenvalues[0] > 0.5 * spec.total_std**2 and spec.eigenvalues[0] / spec.eigenvalues[-1] > 100


def test_compress_keeps_w2():
    spec = G.Spectrum.power_law(16, mean=0.45)
    small = spec.compress()
    assert small.eigenvalues.size < spec.eigenvalues.size / 4 and small.d == 256
    sig = S.karras(15)
    a, b = spec.w2(sig, "canonical"), small.w2(sig, "canonical")
    assert a.w2 == pytest.approx(b.w2, rel=1e-12) and a.bias == pytest.approx(b.bias, rel=1e-12)


def test_bad_inputs_raise_clear_value_errors():
    with pytest.raises(ValueError, match="negative eigenvalue"):
        G.Spectrum.from_covariance([0.5, 0.5], [[1.0, 0.0], [0.0, -1.0]])
    with pytest.raises(ValueError, match="one mean per pixel"):
        G.Spectrum.from_covariance([0.5, 0.5, 0.5], np.eye(2))
    with pytest.raises(ValueError, match="alpha"):
        G.power_law_grid(8, alpha=-1)
    with pytest.raises(ValueError, match="size"):
        G.power_law_grid(0)
    with pytest.raises(ValueError, match="no known eigenbasis"):
        G.Spectrum.from_eigenvalues([0.1, 0.2]).denoiser()
    with pytest.raises(ValueError, match="neither a file nor"):
        G.Spectrum.patches(("no-such-image",))
