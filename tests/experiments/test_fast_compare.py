"""``inrd.experiments.fast_compare.compare``: the per-step and final errors it reports are the errors
of the denoiser it is given (checked with a denoiser whose error is known exactly)."""

import math

import pytest
import torch

from inrd import schedules
from inrd.denoisers import GaussianDenoiser
from inrd.experiments.fast_compare import compare


def gaussian(seed=0, d=12):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    cov = (q * torch.logspace(-2, -4, d, dtype=torch.float64)) @ q.T
    return GaussianDenoiser(torch.full((1, 2, 6), 0.5, dtype=torch.float64), (cov + cov.T) / 2)


def test_compare_of_a_denoiser_with_itself_is_exact():
    D = gaussian()
    r = compare(D, D, schedules.prune(schedules.ddpm(), 5), shape=(2, 1, 2, 6), seed=0, dtype=torch.float64)
    assert [row["t"] for row in r["steps"]] == [5, 4, 3, 2, 1]
    assert r["rel_err_max"] == 0 and r["err_over_sigma_max"] == 0 and r["psnr"] == [math.inf, math.inf]


def test_compare_reports_a_known_error():
    """``fast = D + c``: every step's error is c everywhere, so err_over_sigma[t] = c / sigma_t and
    rel_err[t] = c sqrt(n) / ||D(u_t)||; in float64 up to rounding (rel 1e-9: c = 1e-3 is subtracted from
    values ~0.5, a relative rounding of 1e-16 / 1e-3)."""
    D, c = gaussian(), 1e-3
    sigmas = schedules.prune(schedules.ddpm(), 6)
    r = compare(D, lambda x, sigma: D(x, sigma) + c, sigmas, shape=(3, 1, 2, 6), seed=1, dtype=torch.float64)
    for row in r["steps"]:
        assert row["sigma"] == pytest.approx(float(sigmas[row["t"]]), rel=1e-15)
        assert row["err_over_sigma"] == pytest.approx(c / row["sigma"], rel=1e-9)
    assert r["err_over_sigma_max"] == pytest.approx(c / float(sigmas[1]), rel=1e-9)
    # V_0 differs by delta_0 = c sum_t rho_t P_t 1 with P_t products of the commuting PSD maps (1 - rho) I + rho W
    # (W = C (C + sigma^2 I)^-1) and P_1 = I, rho_1 = 1 (sigma_0 = 0): mean(delta_0) >= c, so MSE >= c^2 and
    # PSNR <= 60 dB (clamping is inactive: pixels are 0.5 +- 0.1 std)
    assert all(p <= -20 * math.log10(c) + 1e-9 for p in r["psnr"]) and r["psnr_min"] == min(r["psnr"])
