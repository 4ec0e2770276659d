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
