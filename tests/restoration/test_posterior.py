import math

import pytest
import torch

from inrd import restoration as R
from inrd import schedules
from inrd.denoisers import StationaryGaussianDenoiser
from inrd.io import load_image
from inrd.metrics import psnr
from inrd.sampler import sample

NU = 0.01


def _gaussian_denoiser(H=16):
    w = 2 * math.pi * torch.fft.fftfreq(H, dtype=torch.float64)
    return StationaryGaussianDenoiser(0.5, 0.01 / (1 + 20 * (w[:, None] ** 2 + w[None, :] ** 2)))


def test_without_data_term_it_is_the_inrd_sampler():
    # lam -> infinity removes the data step (prox weight sigma^2 / (lam nu^2) ~ 4e-10): the loop is then
    # inrd.sample with the same schedule, relaxation, start and per-sample noise (float64: ~1e-9 apart)
    D = _gaussian_denoiser()
    y = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    res = R.inrd_posterior(y, R.Denoising(), D, samples=2, steps=10, rho="canonical", lam=1e12, seed=3, noise_level=NU)
    ref = sample(D, schedules.geometric(10, NU / 2, R.POSTERIOR_SIGMA_MAX), rho="canonical", init=y.repeat(2, 1, 1, 1), seed=3)
    assert torch.allclose(res.samples, ref, atol=1e-8)
    assert torch.allclose(res.x, ref.mean(0, keepdim=True), atol=1e-8)
    assert torch.allclose(res.std, ref.std(0, keepdim=True), atol=1e-8)


def test_samples_do_not_depend_on_how_many_are_drawn():
    D = _gaussian_denoiser()
    op = R.PeriodicBlur(R.gaussian_kernel(1.0))
    y = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a = R.inrd_posterior(y, op, D, samples=2, steps=8, seed=5, noise_level=NU)
    b = R.inrd_posterior(y, op, D, samples=3, steps=8, seed=5, noise_level=NU)
    assert torch.equal(a.samples, b.samples[:2])
    assert not torch.equal(b.samples[0], b.samples[2])  # distinct noise per sample
    one = R.inrd_posterior(y, op, D, samples=1, steps=8, seed=5, noise_level=NU)
    assert torch.allclose(one.samples, a.samples[:1], atol=1e-13)  # batched FFTs may round differently
    assert torch.equal(one.std, torch.zeros_like(one.x))
    assert len(a.psnr) == 0 and len(a.residual) == len(a.sigma) == 8 and a.sigma[0] == pytest.approx(0.2)


def test_posterior_errors():
    y = torch.rand(1, 1, 16, 16)
    op = R.Denoising()
    with pytest.raises(ValueError, match="samples"):
        R.inrd_posterior(y, op, _gaussian_denoiser(), samples=0, noise_level=NU)
    with pytest.raises(ValueError, match="sigma_min = 0.3 must be below sigma_max"):
        R.inrd_posterior(y, op, _gaussian_denoiser(), sigma_min=0.3, noise_level=NU)
    with pytest.raises(ValueError, match="noise_level"):
        R.inrd_posterior(y, op, _gaussian_denoiser(), noise_level=-0.01)


def test_ffdnet_posterior_deblurs():
    # real data, 64x64 crop of camera, Gaussian blur 1.6, nu = 0.01, 3 samples x 30 steps ("ind", lam 1).
    # Measured (no circular padding, the default): mean of the samples 30.48 dB (samples 30.21 / 30.27 /
    # 30.18), oracle Tikhonov 25.96 dB, mean per-pixel std 0.0068 (the posterior's spread is of the order of nu)
    from inrd.denoisers import load

    x = load_image("camera")[..., 80:144, 210:274].contiguous()
    op = R.PeriodicBlur(R.gaussian_kernel(1.6))
    y = R.observe(x, op, NU, seed=0)
    res = R.restore(y, op, load("ffdnet", channels=1), NU, "inrd-posterior", x_true=x)
    _, _, p_tik = R.tikhonov_oracle(y, op, x)
    assert res.psnr[-1] >= p_tik + 2.0
    assert res.psnr[-1] > max(res.params["psnr_per_sample"])  # averaging samples helps
    assert 0.3 * NU < res.std.mean().item() < 3 * NU


def test_inrd_small_posterior_stays_in_its_trained_range():
    # any denoiser plugs in: our DDPM network (gray) starts its schedule at its smallest trained level
    from inrd.denoisers import load

    D = load("inrd-small")
    x = load_image("camera")[..., 80:144, 210:274].contiguous()
    op = R.PeriodicBlur(R.gaussian_kernel(1.6))
    y = R.observe(x, op, NU, seed=0)
    res = R.restore(y, op, D, NU, "inrd-posterior", samples=2, x_true=x)
    assert res.params["sigma_min"] == pytest.approx(D.sigma_range[0]) and res.params["sigma_min"] > NU / 2
    # measured: observed 22.91 dB, posterior mean of 2 samples 26.49 dB
    assert res.psnr[-1] > psnr(y, x).item() + 2.5


def test_posterior_is_the_inrd_loop_with_a_data_consistent_denoiser():
    # the module docstring's equations written out by hand (independent of inrd.sample): the posterior's
    # samples must be this loop; float64, the only difference is lerp's rounding against (1 - rho) U + rho X
    from inrd.noise import PerSampleNoise
    from inrd.relaxations import scheme

    D = _gaussian_denoiser()
    op = R.PeriodicBlur(R.gaussian_kernel(1.0))
    y = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    res = R.inrd_posterior(y, op, D, samples=2, steps=6, rho="canonical", seed=4, noise_level=NU)
    plan = scheme(schedules.geometric(6, NU / 2, R.POSTERIOR_SIGMA_MAX), "canonical")
    Y = y.repeat(2, 1, 1, 1)
    V, noise = op.init(y).repeat(2, 1, 1, 1), PerSampleNoise(4, 2)
    for t in range(6, 0, -1):
        s = float(plan.sigmas[t])
        U = V + float(plan.gammas[t]) * noise(t, V)
        X = op.prox_l2(D(U, s), Y, s**2 / NU**2)
        V = (1 - float(plan.rhos[t])) * U + float(plan.rhos[t]) * X
    assert torch.allclose(res.samples, V, rtol=0, atol=1e-12)
    assert torch.equal(res.samples, sample(R.DataConsistent(D, op, Y, NU, 1.0), plan, init=op.init(y).repeat(2, 1, 1, 1), seed=4))


def test_the_first_level_is_at_least_nu_and_the_trained_range_bounds_nu():
    """sigma_T = max(POSTERIOR_SIGMA_MAX, nu): the start physics.init(y) carries noise nu; a nu above the top of the
    denoiser's trained range is refused naming it."""

    class Ranged:
        sigma_range = (0.0, 75 / 255)

        def __call__(self, x, sigma):
            return x

    y = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert R.inrd_posterior(y, R.Denoising(), Ranged(), samples=1, steps=3, noise_level=NU).params["sigma_max"] == R.POSTERIOR_SIGMA_MAX
    res = R.inrd_posterior(y, R.Denoising(), Ranged(), samples=1, steps=3, noise_level=0.25)
    assert res.params["sigma_max"] == 0.25 and res.params["sigma_min"] == 0.125 and max(res.sigma) == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"above the denoiser's trained range \[0, 0.2941\]: inrd-posterior"):
        R.inrd_posterior(y, R.Denoising(), Ranged(), noise_level=0.3)


def test_inpainting_starts_at_hqs_and_recovers_what_the_mean_fill_loses():
    # 64x64 crop of coffee (RGB), half the pixels missing, nu = 0.01, FFDNet, 3 samples x 30 steps.
    # restore() starts the sampler at HQS's result (its 40 levels, HQS_TASK_OPTIONS): exactly
    # inrd_posterior(init=hqs(...).x). Measured: cold start from the mean fill 25.44 dB, warm start 35.59 dB,
    # HQS alone 36.62 dB (on the restore table's 96 px crops the warm start is 0.0-1.0 dB below HQS).
    from inrd.denoisers import load

    x = load_image("coffee")[..., 150:214, 250:314].contiguous()
    op = R.Inpainting((torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0)) >= 0.5).float())
    y = R.observe(x, op, NU, seed=0)
    D = load("ffdnet", channels=3)
    warm = R.restore(y, op, D, NU, "inrd-posterior", task="inpaint")
    assert warm.params["start"] == "hqs" and warm.params["start_iters"] == R.HQS_TASK_OPTIONS["inpaint"]["iters"]
    h = R.hqs(y, op, D, noise_level=NU, **R.HQS_TASK_OPTIONS["inpaint"])
    assert torch.equal(warm.x, R.inrd_posterior(y, op, D, init=h.x, noise_level=NU).x)
    cold = R.restore(y, op, D, NU, "inrd-posterior", task="inpaint", start="init")
    assert cold.params["start"] == "init"
    assert torch.equal(cold.x, R.inrd_posterior(y, op, D, noise_level=NU).x)
    p_warm, p_cold, p_hqs = (float(psnr(r.x, x)[0]) for r in (warm, cold, h))
    assert p_warm > p_cold + 5.0
    assert p_warm > p_hqs - 1.5
    with pytest.raises(ValueError, match="start"):
        R.restore(y, op, D, NU, "inrd-posterior", task="inpaint", start="middle")
