import pytest
import torch

import inrd
from inrd import schedules as S
from inrd.diagnostics import StabilityRecorder, noise_level


@pytest.mark.parametrize("sigma", [0.01, 0.1, 1.0])
def test_noise_level_of_white_noise(sigma):
    g = torch.Generator().manual_seed(0)
    x = 0.5 + sigma * torch.randn(3, 1, 128, 128, generator=g)
    est = noise_level(x)
    # 4096 HH coefficients per image: the MAD estimator's relative std is about 1.17/sqrt(4096) = 1.8 %
    assert torch.allclose(est, torch.full((3,), sigma, dtype=torch.float64), rtol=0.08)


def test_noise_level_ignores_smooth_content():
    ramp = torch.linspace(0, 1, 64).expand(1, 1, 64, 64).clone()
    assert noise_level(ramp).item() < 1e-6  # a linear ramp has zero diagonal Haar detail


def test_recorder_follows_the_schedule():
    sigmas = S.geometric(20, 0.01, 0.5)
    rec = StabilityRecorder()
    # identity "denoiser" with IND: V_{t-1} = V_t + sigma_t Z keeps accumulating noise
    inrd.sample(lambda x, s: x, sigmas, "ind", shape=(2, 1, 64, 64), callback=rec)
    assert [r["t"] for r in rec.rows] == list(range(20, 0, -1))
    first = rec.rows[0]
    assert first["noise_in"] == pytest.approx(0.5, rel=0.1)  # V_T + sigma_T Z from a constant start
    assert all(r["expected_out"] == 0 for r in rec.rows)  # rho = 1: nothing should be left
    assert rec.summary()["noise_in_over_sigma_max"] > 1.5  # the identity leaves all noise in: unstable
