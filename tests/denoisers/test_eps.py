"""EpsDenoiser (paper eq. 15) against the exact MMSE denoiser of Gaussian data (paper eqs. 6, 8, 16).

Data x0 ~ N(m, diag(lam)) in [-1, 1] units. DDPM noising x_t = sqrt(a_t) x0 + sqrt(1 - a_t) e gives
x_t ~ N(sqrt(a_t) m, a_t lam + 1 - a_t), so the exact (MMSE) noise prediction is

    eps*(x, t) = E[e | x_t = x] = sqrt(1 - a_t) (x - sqrt(a_t) m) / (a_t lam + 1 - a_t).

Wrapped in EpsDenoiser it must give the MMSE denoiser of u0 = (x0 + 1) / 2 ~ N((m + 1)/2, diag(lam)/4)
in [0, 1] units, i.e. GaussianDenoiser, on every grid timestep: this checks the unit conversions,
the sqrt(abar) input scaling and the 0-based timestep indexing all at once.
"""

import math

import pytest
import torch

from inrd.denoisers import EpsDenoiser, GaussianDenoiser
from inrd.schedules import ddpm, ddpm_alphas_cumprod, prune

ABAR = ddpm_alphas_cumprod(1000)  # float64
LOG_S = 0.5 * torch.log((1 - ABAR) / ABAR)  # log noise level ([-1, 1] units) of timestep k = 0..999
SIGMAS = ddpm()  # [0, 1] units, SIGMAS[k + 1] belongs to timestep k
SHAPE = (3, 4, 4)
D = math.prod(SHAPE)


def abar_at(t: torch.Tensor) -> torch.Tensor:
    """alphabar at a possibly fractional timestep, defined by linear interpolation of log s(t):
    exact ABAR[k] at integers; between grid points the law EpsDenoiser('interp') assumes."""
    t = t.to(torch.float64)
    k = t.floor().long().clamp(0, 998)
    frac = t - k
    log_s = LOG_S[k] + frac * (LOG_S[k + 1] - LOG_S[k])
    return 1 / (1 + torch.exp(2 * log_s))


class GaussianEps:
    """The exact eps of N(m, diag(lam)) data in [-1, 1] units, for integer or fractional timesteps."""

    def __init__(self, m, lam):
        self.m, self.lam = m.reshape(1, *SHAPE), lam.reshape(1, *SHAPE)
        self.calls = []

    def __call__(self, x, t):
        self.calls.append(t.clone())
        a = abar_at(t).reshape(-1, 1, 1, 1)
        return torch.sqrt(1 - a) * (x - torch.sqrt(a) * self.m) / (a * self.lam + 1 - a)


@pytest.fixture(scope="module")
def law():
    g = torch.Generator().manual_seed(0)
    m = (torch.rand(D, generator=g, dtype=torch.float64) * 1.6 - 0.8)  # means inside [-1, 1]
    lam = torch.rand(D, generator=g, dtype=torch.float64) * 0.3 + 1e-3  # variances in [-1, 1] units
    exact = GaussianDenoiser.from_eigen((m.reshape(SHAPE) + 1) / 2, lam / 4, torch.eye(D, dtype=torch.float64))
    return m, lam, exact


def noisy(sigma, B=4, seed=1):
    """Clean Gaussian-ish images in [0, 1] plus noise of std sigma (float64)."""
    g = torch.Generator().manual_seed(seed)
    u0 = torch.rand(B, *SHAPE, generator=g, dtype=torch.float64)
    sig = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1, 1, 1)
    return u0 + sig * torch.randn(B, *SHAPE, generator=g, dtype=torch.float64)


def tol(x):
    # float64 round-off: D = (w - s * eps + 1)/2 cancels terms of size |w| ~ 2|u| + 1 (eq. 15), so errors are a
    # few ulps of max|w| (measured: at most 13 ulps, at the lowest noise levels); 100 ulps allowed.
    return 100 * torch.finfo(torch.float64).eps * float((2 * x.abs() + 1).max())


@pytest.mark.parametrize("k", [0, 1, 9, 99, 249, 500, 998, 999])
def test_grid_timesteps_give_the_exact_mmse_denoiser(law, k):
    m, lam, exact = law
    eps = GaussianEps(m, lam)
    den = EpsDenoiser(eps, ABAR, timestep="nearest")
    sigma = float(SIGMAS[k + 1])
    x = noisy(sigma)
    out = den(x, sigma)
    assert eps.calls[-1].tolist() == [k] * x.shape[0]  # paper's t = k + 1 is the network's 0-based timestep k
    torch.testing.assert_close(out, exact(x, sigma), atol=tol(x), rtol=0)


def test_per_sample_sigmas(law):
    m, lam, exact = law
    ks = torch.tensor([0, 40, 400, 999])
    sig = SIGMAS[ks + 1]
    x = noisy(sig)
    out = EpsDenoiser(GaussianEps(m, lam), ABAR)(x, sig)
    ref = torch.cat([exact(x[i : i + 1], float(sig[i])) for i in range(4)])
    torch.testing.assert_close(out, ref, atol=tol(x), rtol=0)


def test_interp_is_exact_between_grid_points_and_nearest_is_not(law):
    """Between grid points: 'interp' feeds the fractional timestep whose (log-interpolated) noise level
    is sigma, so with an eps-model continuous in that parametrisation D is still the exact MMSE;
    'nearest' feeds the grid neighbour, i.e. eps of a slightly wrong noise level (eq. 15 evaluated by hand)."""
    m, lam, exact = law
    for k in (3, 120, 700):
        frac = 0.37
        log_s = LOG_S[k] + frac * (LOG_S[k + 1] - LOG_S[k])
        sigma = float(torch.exp(log_s) / 2)
        x = noisy(sigma, seed=k)

        eps_i = GaussianEps(m, lam)
        out_i = EpsDenoiser(eps_i, ABAR, timestep="interp")(x, sigma)
        torch.testing.assert_close(eps_i.calls[-1], torch.full((4,), k + frac, dtype=torch.float64), atol=1e-9, rtol=0)
        torch.testing.assert_close(out_i, exact(x, sigma), atol=tol(x), rtol=0)

        eps_n = GaussianEps(m, lam)
        out_n = EpsDenoiser(eps_n, ABAR, timestep="nearest")(x, sigma)
        assert eps_n.calls[-1].tolist() == [k] * 4  # frac 0.37 < 0.5 in log sigma: the lower neighbour
        s = 2 * sigma
        w = 2 * x - 1
        by_hand = (w - s * GaussianEps(m, lam)(w / math.sqrt(1 + s * s), torch.full((4,), k)) + 1) / 2
        torch.testing.assert_close(out_n, by_hand, atol=tol(x), rtol=0)
        # and it is measurably not the exact denoiser: the timestep error is of the order of the grid step
        assert (out_n - exact(x, sigma)).abs().max() > 1e6 * tol(x)  # measured: > 1e8 * tol


def test_out_of_range_sigma_is_refused(law):
    den = EpsDenoiser(GaussianEps(*law[:2]), ABAR)
    x = noisy(0.1)
    lo, hi = den.sigma_range
    assert lo == pytest.approx(0.0050003, abs=1e-7) and hi == pytest.approx(78.7036, abs=1e-4)
    for bad in (0.004, 100.0, torch.tensor([0.1, 0.1, 0.1, 200.0], dtype=torch.float64)):
        with pytest.raises(ValueError, match="outside the trained range"):
            den(x, bad)
    assert torch.equal(den(x, 0.0), x)  # sigma = 0: nothing to denoise


def test_clamp(law):
    m, lam, _ = law
    sigma = float(SIGMAS[1])
    x = noisy(sigma) * 1.6 - 0.3  # values outside [0, 1]; at the lowest noise level D(x) ~ x
    raw = EpsDenoiser(GaussianEps(m, lam), ABAR, clamp=False)(x, sigma)
    clamped = EpsDenoiser(GaussianEps(m, lam), ABAR, clamp=True)(x, sigma)
    assert raw.min() < 0 and raw.max() > 1  # so the test can fail
    torch.testing.assert_close(clamped, raw.clamp(0, 1), atol=0, rtol=0)


def test_float32_input_matches_float64(law):
    """The adapter computes the scale in float64 and runs the model in the input dtype: float32 input
    gives the float64 result to float32 precision: a few float32 ulps of max|w| (1 + 2 sigma), the
    size of the terms that cancel in eq. (15) (measured: 5 ulps; 64 allowed)."""
    m, lam, _ = law
    sigma = float(SIGMAS[300])
    x = noisy(sigma)
    out64 = EpsDenoiser(GaussianEps(m, lam), ABAR)(x, sigma)
    exact64 = GaussianEps(m, lam)

    def eps32(x, t):  # a float32 network: float32 in, float32 out
        assert x.dtype == torch.float32
        return exact64(x.double(), t).float()

    out32 = EpsDenoiser(eps32, ABAR)(x.float(), sigma)
    assert out32.dtype == torch.float32
    bound = 64 * torch.finfo(torch.float32).eps * float((2 * x.abs() + 1).max()) * (1 + 2 * sigma)
    torch.testing.assert_close(out32.double(), out64, atol=bound, rtol=0)


# ----------------------------------------------------------------------------------------------------
# The diffusers adapter: any eps-prediction UNet2DModel through the same EpsDenoiser.


@pytest.fixture(scope="module")
def tiny_unet():
    from diffusers import UNet2DModel

    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = UNet2DModel(
            sample_size=8,
            in_channels=3,
            out_channels=3,
            layers_per_block=1,
            block_out_channels=(8, 16),
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
            norm_num_groups=4,
        )
    return unet.eval()


def test_diffusers_folder_equals_objects_and_eq15(tiny_unet, tmp_path):
    from diffusers import DDPMScheduler

    from inrd.denoisers import diffusers_unet, load

    sched = DDPMScheduler()  # linear betas 1e-4..0.02, T = 1000, eps-prediction
    tiny_unet.save_pretrained(tmp_path)
    sched.save_pretrained(tmp_path)
    from_objects = diffusers_unet.build(model=tiny_unet, scheduler=sched)
    from_folder = load("diffusers", weights=str(tmp_path))
    d = from_folder.sampling_defaults
    assert (d.rho, d.schedule, d.steps, d.channels, d.size, d.init, d.init_std) == ("canonical", "training", 100, 3, 8, 0.5, 0.0)
    assert torch.equal(d.sigmas(), prune(ddpm(), 100))  # canonical INRD on its own (DDPM) grid = pruned DDPM

    u = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ks = torch.tensor([0, 400, 999])
    sigma = SIGMAS[ks + 1]
    # the scheduler's float32 alphas_cumprod put sigma_1 8e-5 (relative) off the float64 DDPM grid, which
    # EpsDenoiser would refuse; the adapter recomputes the same linear schedule in float64: bit-identical grid
    assert torch.equal(from_folder.log_s_grid, from_objects.log_s_grid)
    assert torch.equal(from_objects.log_s_grid, LOG_S)
    with torch.no_grad():
        a = from_objects(u, sigma)
        b = from_folder(u, sigma)
        assert torch.equal(a, b)
        # eq. (15) by hand with the raw UNet at timestep k; sqrt(a) = 1/sqrt(1 + s^2)
        s = (2 * sigma).reshape(-1, 1, 1, 1)
        w = 2 * u - 1
        eps = tiny_unet((w / torch.sqrt(1 + s**2)).float(), ks).sample
        ref = ((w - s * eps + 1) / 2).float()
    assert eps.abs().mean() > 0.05  # measured ~0.28: a random diffusers UNet is not zero-initialised
    assert (a - u).abs().max() > 0.01  # so D is not the identity
    bound = 64 * torch.finfo(torch.float32).eps * (1 + 2 * float(sigma.max()) * float(eps.abs().max()))
    torch.testing.assert_close(a, ref, atol=bound, rtol=0)


def test_diffusers_pipeline_layout_and_errors(tiny_unet, tmp_path):
    from diffusers import DDIMScheduler, DDPMScheduler

    from inrd.denoisers import diffusers_unet

    tiny_unet.save_pretrained(tmp_path / "pipe" / "unet")
    DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).save_pretrained(tmp_path / "pipe" / "scheduler")
    den = diffusers_unet.build(weights=tmp_path / "pipe")
    d = den.sampling_defaults  # not the linear DDPM grid: its own scaled-linear training grid, pruned
    assert d.schedule == "training" and d.rho == "canonical"
    assert float(d.sigmas()[-1]) == pytest.approx(den.sigma_range[1], rel=1e-12)
    assert torch.equal(d.sigmas(), prune(den.train_sigmas, 100))

    bad = DDPMScheduler()
    bad.register_to_config(prediction_type="flow")
    with pytest.raises(ValueError, match="prediction_type is 'flow'; supported: epsilon, v_prediction, sample"):
        diffusers_unet.build(model=tiny_unet, scheduler=bad)

    tiny_unet.save_pretrained(tmp_path / "alone")
    with pytest.raises(ValueError, match="scheduler_config.json"):
        diffusers_unet.build(weights=tmp_path / "alone")
    with pytest.raises(ValueError, match="scheduler="):
        diffusers_unet.build(model=tiny_unet)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        diffusers_unet.build(weights=tmp_path / "nowhere")


@pytest.mark.parametrize("prediction", ["v_prediction", "sample"])
def test_v_and_sample_prediction_give_the_exact_mmse_denoiser(law, prediction):
    # the exact eps turned into the exact v (v = sqrt(a) e - sqrt(1 - a) x0) or x0 must give the same D
    m, lam, exact = law
    eps = GaussianEps(m, lam)

    def other(x, t):
        a = abar_at(t).reshape(-1, 1, 1, 1)
        e = eps(x, t)
        x0 = (x - torch.sqrt(1 - a) * e) / torch.sqrt(a)
        return torch.sqrt(a) * e - torch.sqrt(1 - a) * x0 if prediction == "v_prediction" else x0

    den = EpsDenoiser(other, ABAR, prediction=prediction)
    for k in (0, 99, 500, 999):
        sigma = float(SIGMAS[k + 1])
        x = noisy(sigma)
        torch.testing.assert_close(den(x, sigma), exact(x, sigma), atol=tol(x) * (1 + 2 * sigma), rtol=0)
