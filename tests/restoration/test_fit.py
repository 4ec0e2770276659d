"""The fit check of a restoration: the normalised residual against the chi-square law, the out-of-range share."""

import math

import pytest
import torch

from inrd import restoration as R
from inrd.restoration.fit import OUT_OF_RANGE_MAX, check_fit

NU = 0.02


def _scene(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (0.2 + 0.6 * torch.rand(1, 1, n, n, generator=g, dtype=torch.float64)), g


def test_the_truth_fits_and_a_wrong_noise_level_does_not():
    v, g = _scene()
    op = R.PeriodicBlur(R.gaussian_kernel(1.0))
    y = op.A(v) + NU * torch.randn(v.shape, generator=g, dtype=torch.float64)
    fit = check_fit(op, v, y, NU)
    # at the truth ||A v - y||^2 / nu^2 ~ chi^2(m): r = 1 +- 1 / sqrt(2 m) (0.011 for m = 4096); 4 of them
    assert fit.trusted and fit.warning is None and fit.observed_values == 64 * 64
    assert fit.residual == pytest.approx(1.0, abs=4 / math.sqrt(2 * 64 * 64))
    low, high = check_fit(op, v, y, NU / 3), check_fit(op, v, y, NU * 3)
    assert not low.trusted and low.residual == pytest.approx(3 * fit.residual) and "nu is too low" in low.warning
    assert not high.trusted and high.residual == pytest.approx(fit.residual / 3) and "nu is too high" in high.warning


def test_only_observed_values_count_and_out_of_range_values_are_flagged():
    v, g = _scene()
    mask = (torch.rand(1, 1, 64, 64, generator=g) > 0.5).float()
    op = R.Inpainting(mask)
    y = op.A(v + NU * torch.randn(v.shape, generator=g, dtype=torch.float64)) + (1 - mask)  # junk where unobserved
    fit = check_fit(op, v, y, NU)
    assert fit.observed_values == int(mask.sum()) and fit.residual == pytest.approx(1.0, abs=4 / math.sqrt(2 * fit.observed_values))
    x = v.clone()
    x[..., :8, :] = 1.2  # 12.5 % of the values 10 nu above 1: not an image
    bad = check_fit(op, x, y, NU)
    assert bad.out_of_range == pytest.approx(0.125) and bad.clipped == pytest.approx(0.125) and bad.out_of_range > OUT_OF_RANGE_MAX
    assert not bad.trusted and "12.5% of its values lie beyond [0, 1]" in bad.warning
    x[..., :8, :] = 1 + 2 * NU  # within the noise's reach of 1: clipped, but not out of range
    near = check_fit(op, x, op.A(x), NU)
    assert near.clipped == pytest.approx(0.125) and near.out_of_range == 0.0
