import math

import pytest
import torch

from inrd.metrics import psnr


def test_psnr_known_values():
    x = torch.zeros(2, 3, 4, 5)
    y = x.clone()
    y[0] += 0.1  # MSE 0.01 -> 20 dB exactly
    y[1] += 0.01  # MSE 1e-4 -> 40 dB
    p = psnr(y, x)
    assert p.dtype == torch.float64 and p.shape == (2,)
    assert p.tolist() == pytest.approx([20.0, 40.0], abs=1e-5)  # float32 0.1 and 0.01: ~1e-7 relative error
    # max_val rescales: the same error on a [0, 255] range is 20 log10(255) dB higher
    assert psnr(y * 255, x * 255, max_val=255.0).tolist() == pytest.approx(p.tolist(), abs=1e-6)


def test_psnr_per_image_not_pooled():
    x = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    y = x.clone()
    y[0, 0, 0, 0] = 1.0  # MSE 1/64 -> 10 log10(64)
    p = psnr(y, x)
    assert p[0].item() == pytest.approx(10 * math.log10(64), abs=1e-12)
    assert math.isinf(p[1].item())  # identical images


def test_psnr_accepts_single_image_and_rejects_bad_input():
    x = torch.rand(3, 8, 8)
    assert psnr(x, x + 0.1).shape == (1,)
    with pytest.raises(ValueError, match="equal shape"):
        psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 7))
    with pytest.raises(ValueError, match="max_val"):
        psnr(x, x, max_val=0)
    with pytest.raises(TypeError):
        psnr(x.numpy(), x)


# ---- radial power spectrum and pixel-marginal W1 ---------------------------------------------------

from inrd.metrics import pixel_w1, radial_power_spectrum, spectrum_distance, wasserstein1_1d  # noqa: E402


def _bin_sizes(H, W):
    ky = torch.fft.fftfreq(H, dtype=torch.float64)[:, None] * H
    kx = torch.fft.fftfreq(W, dtype=torch.float64)[None, :] * W
    r = torch.sqrt(ky**2 + kx**2).round().long()
    return torch.tensor([(r == k).sum() for k in range(1, min(H, W) // 2 + 1)], dtype=torch.float64)


def test_spectrum_of_a_cosine_sits_at_its_frequency():
    # a * cos(2 pi f j / W) has DFT a HW / 2 at (0, +-f) and 0 elsewhere: power (a HW/2)^2 / HW at two
    # frequencies, averaged over the n_f frequencies whose radius rounds to f. Exact up to fft round-off.
    H = W = 32
    a, f = 0.3, 5
    j = torch.arange(W, dtype=torch.float64)
    x = (a * torch.cos(2 * math.pi * f * j / W)).expand(H, W)[None, None]
    radius, power = radial_power_spectrum(x)
    assert radius.tolist() == list(range(1, 17))
    n = _bin_sizes(H, W)
    expected = torch.zeros(16, dtype=torch.float64)
    expected[f - 1] = 2 * (a * H * W / 2) ** 2 / (H * W) / n[f - 1]
    assert torch.allclose(power, expected, rtol=1e-12, atol=1e-20)


def test_spectrum_of_white_noise_is_flat_at_its_variance():
    # E P(k) = s^2 at every k != 0; each |F(k)|^2 is s^2 HW times an Exp(1) variable, independent up to the
    # Hermitian pairs, so a radius bin of n_k frequencies over N images has relative sd 1 / sqrt(N n_k / 2).
    # Bound: 5 sd (float64 noise, fixed seed).
    N, s = 256, 0.1
    x = s * torch.randn(N, 1, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _, power = radial_power_spectrum(x)
    sd = 1 / torch.sqrt(N * _bin_sizes(32, 32) / 2)
    assert ((power / s**2 - 1).abs() < 5 * sd).all(), (power / s**2).tolist()


def test_spectrum_distance_of_a_rescaled_set_is_the_log_of_the_power_ratio():
    x = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    d = spectrum_distance(x, 2 * x)  # power x 4 at every radius
    assert d["distance"] == pytest.approx(math.log10(4), abs=1e-12)
    assert d["band_log_ratio"] == pytest.approx([-math.log10(4)] * 3, abs=1e-12)
    assert spectrum_distance(x, x + 0.3)["distance"] == pytest.approx(0, abs=1e-12)  # the mean is not a frequency
    with pytest.raises(ValueError, match="same-size"):
        spectrum_distance(x, x[..., :16, :16])
    with pytest.raises(ValueError, match="NaN"):
        spectrum_distance(x, torch.full_like(x, float("nan")))


def test_pixel_w1_known_values():
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert pixel_w1(x, x + 0.125) == pytest.approx(0.125, abs=1e-15)  # a shift by c moves every quantile by c
    assert pixel_w1(x, x[torch.randperm(4)].flip(-1)) == 0.0  # only the marginal counts
    # unequal sizes: Q_a = 0 on (0, 1/2], 1 after; Q_b = 0, 1/2, 1 on thirds -> |diff| = 1/2 on (1/3, 2/3)
    assert wasserstein1_1d(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.5, 1.0])) == pytest.approx(1 / 6, abs=1e-15)
    with pytest.raises(ValueError, match="channels"):
        pixel_w1(x, x.expand(4, 3, 8, 8))
