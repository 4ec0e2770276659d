import math

import pytest
import torch

import inrd
from inrd import schedules as S
from inrd.denoisers import EmpiricalDenoiser, EpsDenoiser, GaussianDenoiser
from inrd.sampler import SamplingDiverged


class RecordedNoise:
    """Injectable noise: Z_t drawn once per t from one generator and remembered, so that another
    sampler can be fed exactly the same noise."""

    def __init__(self, seed=0):
        self.g = torch.Generator().manual_seed(seed)
        self.z = {}

    def __call__(self, t, like):
        if t not in self.z:
            self.z[t] = torch.randn(like.shape, generator=self.g, dtype=torch.float64)
        return self.z[t].to(like.dtype)


def exact_eps_model(D: GaussianDenoiser, abar: torch.Tensor):
    """The eps-network a perfectly trained DDPM would have for the data law of D (paper eq. 12/15,
    inverted): x_t is in the [-1, 1] DDPM space, t a 0-indexed timestep."""

    def eps(x, t):
        a = abar[t].reshape(-1, 1, 1, 1)
        s = torch.sqrt((1 - a) / a)  # noise level in [-1, 1] units
        w = x / torch.sqrt(a)
        d01 = D((w + 1) / 2, (s / 2).reshape(-1))
        return (w - (2 * d01 - 1)) / s

    return eps


@pytest.mark.parametrize("steps", [1000, 50, 7])
def test_canonical_inrd_is_diffusers_ddpm(steps, gaussian_law):
    """Paper eqs. (18)-(21): canonical INRD on DDPM sigmas == DDPM ancestral sampling, step for step."""
    diffusers = pytest.importorskip("diffusers")
    import diffusers.schedulers.scheduling_ddpm as ddpm_module

    mean, cov = gaussian_law()
    D = GaussianDenoiser(mean, cov)
    abar = S.ddpm_alphas_cumprod()
    eps = exact_eps_model(D, abar)
    sigmas = S.prune(S.ddpm(), steps)
    idx = S.prune_indices(1000, steps)

    noise = RecordedNoise()
    traj = {}
    v0 = inrd.sample(
        EpsDenoiser(eps, abar), sigmas, "canonical", shape=(3, 1, 4, 4), dtype=torch.float64, noise=noise,
        callback=lambda st: traj.__setitem__(st.t, st.noisy.clone()),
    )

    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, clip_sample=False, timestep_spacing="trailing")
    sched.set_timesteps(steps)
    sched.alphas_cumprod = abar  # float64 instead of diffusers' float32, for a float64 comparison
    sched.one = torch.tensor(1.0, dtype=torch.float64)
    # the same start: U_T = 0.5 + sigma_T Z_T in [0, 1] units is x_T = sqrt(1 - abar_T) Z_T in DDPM space
    x = torch.sqrt(1 - abar[-1]) * noise.z[steps + 1 - 1]
    feed = iter([noise.z[k] for k in range(steps - 1, 0, -1)])  # diffusers adds Z_{k-1} on the step from k
    original = ddpm_module.randn_tensor
    # diffusers also draws noise on its last step when that timestep is > 0 (pruned grids), with the
    # variance clamped to 1e-20 (std 1e-10) instead of 0: feed zeros there, INRD adds nothing.
    ddpm_module.randn_tensor = lambda shape, **kw: next(feed, torch.zeros(shape, dtype=torch.float64))
    try:
        for k, ts in zip(range(steps, 0, -1), sched.timesteps):
            # U_k of INRD is x / sqrt(abar) mapped to [0, 1]
            u = (x / torch.sqrt(abar[ts]) + 1) / 2
            assert torch.allclose(u, traj[k], rtol=0, atol=1e-9 * (1 + sigmas[k].item())), k
            x = sched.step(eps(x, ts.expand(3)), ts, x).prev_sample
    finally:
        ddpm_module.randn_tensor = original
    # float64 end to end: differences are rounding of algebraically equal formulas (measured <= 1.3e-13 at 1000 steps)
    assert torch.allclose((x + 1) / 2, v0, rtol=0, atol=1e-10)
    assert idx[1] - 1 == sched.timesteps[-1]


def test_eps_adapter_and_exact_denoiser_give_the_same_samples(gaussian_law):
    mean, cov = gaussian_law()
    D = GaussianDenoiser(mean, cov)
    abar = S.ddpm_alphas_cumprod()
    sigmas = S.prune(S.ddpm(), 20)
    a = inrd.sample(EpsDenoiser(exact_eps_model(D, abar), abar), sigmas, shape=(2, 1, 4, 4), dtype=torch.float64, seed=3)
    b = inrd.sample(D, sigmas, shape=(2, 1, 4, 4), dtype=torch.float64, seed=3)
    assert torch.allclose(a, b, atol=1e-10)


def test_batch_size_invariance(gaussian_law):
    mean, cov = gaussian_law()
    D = GaussianDenoiser(mean, cov)
    sigmas = S.prune(S.ddpm(), 30)
    big = inrd.sample(D, sigmas, shape=(5, 1, 4, 4), seed=11, init_std=0.3)
    one = inrd.sample(D, sigmas, shape=(1, 1, 4, 4), seed=11, init_std=0.3, first_index=3)
    two = inrd.sample(D, sigmas, shape=(2, 1, 4, 4), seed=11, init_std=0.3)
    assert torch.equal(big[3:4], one)
    assert torch.equal(big[:2], two)
    other_seed = inrd.sample(D, sigmas, shape=(2, 1, 4, 4), seed=12, init_std=0.3)
    assert not torch.allclose(other_seed, two)
    assert not torch.allclose(big[0], big[1])


def test_callback_and_ind_identity(gaussian_law):
    mean, cov = gaussian_law()
    D = GaussianDenoiser(mean, cov)
    sigmas = S.geometric(10, 0.01, 1.0)
    steps = []
    v0 = inrd.sample(D, sigmas, "ind", shape=(2, 1, 4, 4), dtype=torch.float64, callback=steps.append)
    assert [st.t for st in steps] == list(range(10, 0, -1))
    assert [st.gamma for st in steps] == pytest.approx(sigmas[1:].flip(0).tolist())
    assert all(st.rho == 1.0 for st in steps)
    for st in steps:  # IND: V_{t-1} = D(V_t + sigma_t Z_t)
        assert torch.equal(st.x, st.denoised)
        assert torch.allclose(D(st.noisy, st.sigma), st.x)
    assert torch.equal(steps[-1].x, v0)


def test_relaxed_step_formula(gaussian_law):
    mean, cov = gaussian_law()
    D = GaussianDenoiser(mean, cov)
    sigmas = S.geometric(6, 0.01, 1.0)
    steps = []
    inrd.sample(D, sigmas, 0.7, shape=(1, 1, 4, 4), dtype=torch.float64, callback=steps.append)
    for st in steps:  # eq. (13): D^rho = (1 - rho) Id + rho D
        assert torch.allclose(st.x, 0.3 * st.noisy + 0.7 * D(st.noisy, st.sigma), atol=1e-14)


def test_empirical_denoiser_samples_land_on_training_points():
    g = torch.Generator().manual_seed(0)
    data = torch.rand(5, 1, 6, 6, generator=g, dtype=torch.float64)
    D = EmpiricalDenoiser(data)
    out = inrd.sample(D, S.prune(S.ddpm(), 100), shape=(16, 1, 6, 6), dtype=torch.float64, seed=1)
    dist = torch.cdist(out.reshape(16, -1), data.reshape(5, -1))
    nearest = dist.min(dim=1).values
    # the last step denoises at sigma_1 = 0.005 against training points ~1 apart: the softmax weight of
    # any other point is exp(-(d^2)/(2 sigma^2)) ~ 0, so samples are training points up to rounding
    assert nearest.max() < 1e-8
    assert len(set(dist.argmin(dim=1).tolist())) >= 3  # and not all the same one


def test_gaussian_start_and_constant_start(gaussian_law):
    mean, cov = gaussian_law()
    D = GaussianDenoiser(mean, cov)
    sigmas = S.geometric(5, 0.01, 0.2)
    first = []
    inrd.sample(D, sigmas, shape=(2, 1, 4, 4), init=0.5, init_std=2.0, seed=0, callback=first.append)
    noisy = first[0].noisy
    # U_T = 0.5 + init_std Z_{T+1} + gamma_T Z_T: std sqrt(4 + 0.04) over 32 pixels
    assert 1.0 < (noisy - 0.5).std() < 4.0
    start = torch.full((2, 1, 4, 4), 0.25)
    a = inrd.sample(D, sigmas, init=start, seed=0)
    b = inrd.sample(D, sigmas, init=0.25, shape=(2, 1, 4, 4), seed=0)
    assert torch.equal(a, b)


def test_divergence_is_reported():
    sigmas = S.geometric(10, 0.01, 1.0)
    explode = lambda x, s: 10 * x  # noqa: E731  a "denoiser" that amplifies: iterates blow up
    with pytest.raises(SamplingDiverged, match=r"diverged at step t=\d+ \(sigma_t="):
        inrd.sample(explode, sigmas, "ind", shape=(1, 1, 4, 4))
    nan = lambda x, s: x * float("nan")  # noqa: E731
    with pytest.raises(SamplingDiverged, match="t=10 .*non-finite"):
        inrd.sample(nan, sigmas, shape=(1, 1, 4, 4))


def test_validation_happens_before_any_denoiser_call():
    calls = []

    def D(x, s):
        calls.append(s)
        return x

    good = S.geometric(10, 0.01, 1.0)
    bad_cases = [
        (dict(sigmas=[0.0, 0.5, 0.2]), ValueError, "ascending"),
        (dict(sigmas=good, rho=0.01), ValueError, "gamma_1\\^2"),
        (dict(sigmas=good, rho=2.0), ValueError, "outside"),
        (dict(sigmas=good, shape=(1, 4, 4)), ValueError, "shape must be \\(B, C, H, W\\)"),
        (dict(sigmas=good, init=torch.full((1, 1, 4, 4), float("nan"))), ValueError, "NaN"),
        (dict(sigmas=good, shape=(1, 1, 4, 4), init_std=-1.0), ValueError, "init_std"),
        (dict(sigmas=good, shape=(1, 1, 4, 4), start_noise=5.0), ValueError, "start noise"),
    ]
    for kwargs, exc, match in bad_cases:
        with pytest.raises(exc, match=match):
            inrd.sample(D, **{"shape": (1, 1, 4, 4), **kwargs})
    with pytest.raises(TypeError, match="callable"):
        inrd.sample("not a denoiser", good, shape=(1, 1, 4, 4))
    assert calls == []


def test_max_deviation():
    from inrd.sampler import max_deviation

    v = torch.tensor([[0.2, 0.9], [-1.5, 0.5]])
    assert max_deviation(v) == pytest.approx(2.0)  # |-1.5 - 0.5|
    assert max_deviation(v + 1.0) == pytest.approx(1.4)  # |1.9 - 0.5|
    v[0, 0] = float("nan")
    assert math.isnan(max_deviation(v))


def test_bad_denoiser_output_and_start_are_one_line_errors():
    sigmas = S.geometric(5, 0.01, 1.0)
    with pytest.raises(TypeError, match=r"shaped like its input \(1, 1, 4, 4\), got \(1, 1, 2, 2\)"):
        inrd.sample(lambda x, s: x[..., :2, :2], sigmas, shape=(1, 1, 4, 4))
    with pytest.raises(TypeError, match="got ndarray"):
        inrd.sample(lambda x, s: x.numpy(), sigmas, shape=(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"does not broadcast to shape \(2, 1, 4, 4\)"):
        inrd.sample(lambda x, s: x, sigmas, shape=(2, 1, 4, 4), init=torch.zeros(3, 1, 4, 4))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            inrd.sample(lambda x, s: x, sigmas, shape=(1, 1, 4, 4), device="cuda")
    with pytest.raises(ValueError, match="clip must be"):
        inrd.sample(lambda x, s: x, sigmas, shape=(1, 1, 4, 4), clip="x")


def test_clip_modes_follow_their_formulas():
    # a "denoiser" whose output leaves [0, 1]: D(u) = 2u - 0.25, so the three modes differ visibly
    D = lambda x, s: 2 * x - 0.25  # noqa: E731
    v = torch.tensor([[[[0.8, 0.1]]]], dtype=torch.float64)
    rho = 0.3
    u, d, none = inrd.inrd_step(D, v, None, 0.1, rho, 0.0, "none")
    assert torch.allclose(d, torch.tensor([[[[1.35, -0.05]]]], dtype=torch.float64), atol=1e-15)
    assert torch.allclose(none, (1 - rho) * v + rho * d, atol=1e-15)
    _, _, den = inrd.inrd_step(D, v, None, 0.1, rho, 0.0, "denoised")
    assert torch.allclose(den, (1 - rho) * v + rho * d.clamp(0, 1), atol=1e-15)
    _, _, x0 = inrd.inrd_step(D, v, None, 0.1, rho, 0.0, "x0")
    # diffusers' clip_sample: clipped clean estimate plus the kept noise direction (1 - rho)(u - D(u))
    assert torch.allclose(x0, d.clamp(0, 1) + (1 - rho) * (v - d), atol=1e-15)


@pytest.mark.parametrize("kwargs, message", [
    (dict(shape=(1, 1, 4.7, 4)), "positive integer sizes"),
    (dict(shape=(1, 1, 4, 4), seed=1.5), "seed must be >= 0"),
    (dict(shape=(1, 1, 4, 4), first_index=-2), "first_index must be >= 0"),
    (dict(shape=(1, 1, 4, 4), max_abs=-1), "max_abs must be a number > 0"),
    (dict(shape=(1, 1, 4, 4), init=1e308), "init overflows torch.float32"),
    (dict(shape=(1, 1, 4, 4), init=1e6), "beyond the divergence threshold"),
    (dict(shape=(1, 1, 4, 4), init=0.5j), "init must be a number or a tensor"),
    (dict(shape=(2, 1, 4, 4), noise=lambda t, like: torch.zeros(1, 1, 4, 4)), "must return a tensor shaped like the iterate"),
])
def test_silent_coercions_are_one_line_errors(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        inrd.sample(lambda x, s: x, S.geometric(3, 0.01, 1.0), "ind", **kwargs)
