import pytest
import torch

from inrd import restoration as R
from inrd.denoisers import StationaryGaussianDenoiser

NU = 0.01


def _denoiser():
    return StationaryGaussianDenoiser(0.5, torch.full((16, 16), 0.01, dtype=torch.float64))


def test_restore_dispatches_with_documented_defaults():
    y = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    blur = R.PeriodicBlur(R.gaussian_kernel(1.0))
    D = _denoiser()
    # the same call as the algorithm itself, plus the circular padding of a periodic operator
    res = R.restore(y, blur, D, NU, "pnp-pgd", pad=0, iters=5)
    ref = R.pnp_pgd(y, blur, D, 2 * NU, iters=5, noise_level=NU)
    assert torch.equal(res.x, ref.x) and res.params["sigma_denoiser"] == pytest.approx(2 * NU)
    assert res.params["pad"] == 0 and res.params["task"] == "deblur"
    assert R.restore(y, blur, D, NU, "gs-pnp", pad=0).params["iters"] == 30
    assert R.restore(y, blur, lambda u, s: u, NU, "hqs").params["pad"] == 16  # periodic: padded by default
    assert R.restore(y, R.Denoising(), D, NU, "hqs").params["pad"] == 0  # not periodic: no padding
    default = R.restore(y, R.Denoising(), D, NU)
    assert default.params["algorithm"] == R.DEFAULT_ALGORITHM["denoise"].replace("-", "_")
    assert set(R.DEFAULT_ALGORITHM) == {"deblur", "inpaint", "super-resolution", "denoise"}
    assert set(R.DEFAULT_ALGORITHM.values()) <= set(R.ALGORITHMS)
    with pytest.raises(ValueError, match="unknown algorithm 'admm'"):
        R.restore(y, blur, D, NU, "admm")


def test_default_sigma_stays_in_the_trained_range():
    class Net:
        sigma_range = (0.0, 0.3)

    assert R.default_sigma(Net(), 0.01, "gs_pnp") == pytest.approx(0.05)
    assert R.default_sigma(Net(), 0.1, "gs_pnp") == pytest.approx(0.3)  # 5 nu = 0.5 capped

    class Diffusion:
        sigma_range = (0.0050003, 78.7)

    assert R.default_sigma(Diffusion(), 0.01) == pytest.approx(0.0050003)


def test_denoiser_channels_reads_the_sampling_defaults():
    from inrd.denoisers import SamplingDefaults

    gray = SamplingDefaults(rho="ind", schedule="geometric", steps=10, sigma_min=0.01, sigma_max=0.2, channels=1)
    assert R.denoiser_channels(type("A", (), {"sampling_defaults": gray})()) == 1
    assert R.denoiser_channels(type("B", (), {"sampling_defaults": gray.with_(channels=3)})()) == 3
    assert R.denoiser_channels(_denoiser()) is None
