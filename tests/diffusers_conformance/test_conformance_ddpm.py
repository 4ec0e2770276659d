"""diffusers' DDPM and DDIM scheduler checks (full loops, custom timesteps, eta), run on INRDScheduler.

Written for this project from the contract of diffusers' ``test_scheduler_ddpm.py`` / ``test_scheduler_ddim.py``.
Differences, argued:

* DDPM's full loops step through all T timesteps without ``set_timesteps``; INRD needs its grid first
  (rho_t and gamma_t depend on it), so the loops call ``set_timesteps(1000)``, the same timesteps.
* DDPMScheduler(clip_sample=True) recomputes the noise direction from the clipped x0: that is INRD's
  ``use_clipped_model_output=True`` (the relaxed clipped denoiser); the loops use it.
* DDIM's published numbers use "leading" spacing with ``steps_offset=1`` (timesteps 901, 801, ... 1);
  INRD always runs the trailing grid (999, 899, ... 99), so its DDIM checks compare against
  ``DDIMScheduler(timestep_spacing="trailing")`` step for step instead of against those numbers.
"""

from __future__ import annotations

import diffusers
import pytest
import torch

from inrd.diffusers import INRDScheduler

EPS32 = torch.finfo(torch.float32).eps
EPS64 = torch.finfo(torch.float64).eps


def dummy_model(sample, t):
    """diffusers' dummy model: ``sample * t / (t + 1)``."""
    return sample * t / (t + 1)


def dummy_sample_deter(dtype=torch.float32):
    n = 4 * 3 * 8 * 8
    return (torch.arange(n, dtype=dtype).reshape(3, 8, 8, 4) / n).permute(3, 0, 1, 2)


def dummy_noise_deter(dtype=torch.float32):
    n = 4 * 3 * 8 * 8
    return (torch.arange(n, dtype=dtype).flip(-1).reshape(3, 8, 8, 4) / n).permute(3, 0, 1, 2)


def full_loop(sched, sample, timesteps=None):
    generator = torch.manual_seed(0)
    for t in sched.timesteps if timesteps is None else timesteps:
        sample = sched.step(dummy_model(sample, int(t)), t, sample, generator=generator).prev_sample
    return sample


def ddpm_like(**kw) -> INRDScheduler:
    sched = INRDScheduler(clip_sample=True, use_clipped_model_output=True, **kw)
    sched.set_timesteps(1000)
    return sched


def float64_ddpm(**kw):
    """DDPMScheduler(clip_sample=True) whose (float32) alphas_cumprod are used in float64."""
    ref = diffusers.DDPMScheduler(clip_sample=True, **kw)
    ref.alphas_cumprod = ref.alphas_cumprod.double()
    ref.one = torch.tensor(1.0, dtype=torch.float64)
    ref.betas, ref.alphas = ref.betas.double(), ref.alphas.double()
    return ref


@pytest.mark.parametrize("prediction_type, total, mean", [("epsilon", 258.9606, 0.3372), ("v_prediction", 202.0296, 0.2631)])
def test_full_loop_gives_diffusers_published_numbers(prediction_type, total, mean):
    """DDPM's test_full_loop_no_noise / _with_v_prediction: the same sums, to diffusers' own tolerances."""
    sample = full_loop(ddpm_like(prediction_type=prediction_type), dummy_sample_deter())
    assert abs(sample.abs().sum().item() - total) < 1e-2
    assert abs(sample.abs().mean().item() - mean) < 1e-3


def test_full_loop_with_noise_gives_diffusers_published_numbers():
    """DDPM's test_full_loop_with_noise: add_noise at timestep 1, then the last two steps. INRD gives 387.9677
    (float32), 0.021 from the published 387.9466, which is more than diffusers' 1e-2: at t = 1 DDPM's float32
    coefficients (beta_t / (1 - abar_t), ...) lose a factor 1 / (1 - abar_1) = 4.5e3 of relative accuracy, i.e.
    up to 5.4e-4 per entry of |x| <= 1, 0.41 on the sum of 768 entries; in float64 the two loops agree to
    1e-10 (387.52834804, test below and test_full_loop_is_ddpm_in_float64). The mean keeps diffusers' tolerance."""
    sched = ddpm_like()
    timesteps = sched.timesteps[998:]
    sample = sched.add_noise(dummy_sample_deter(), dummy_noise_deter(), timesteps[:1])
    sample = full_loop(sched, sample, timesteps)
    ddpm_float32_error = sample.numel() * EPS32 / (1 - float(sched.alphas_cumprod[1]))
    assert abs(sample.abs().sum().item() - 387.9466) < ddpm_float32_error
    assert abs(sample.abs().mean().item() - 0.5051) < 1e-3

    x = sched.add_noise(dummy_sample_deter(torch.float64), dummy_noise_deter(torch.float64), timesteps[:1])
    a, b = full_loop(sched, x, timesteps), full_loop(float64_ddpm(), x, timesteps)
    assert (a - b).abs().max().item() <= 1e4 * EPS64 * max(1.0, b.abs().max().item())


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])  # "sample": the dummy model's x0 at t = 0 is 0
def test_full_loop_is_ddpm_in_float64(prediction_type):
    """The 1000-step loop in float64 against DDPMScheduler run in float64 on the same noise. The dummy
    model makes the loop contract (|x| shrinks), so rounding does not grow: measured 4.7e-13 (max |x_0| = 1);
    diffusers loses 1 / (1 - abar_t) relative accuracy at small t (tests/test_diffusers.py), hence 1e4 eps."""
    sched = ddpm_like(prediction_type=prediction_type)
    sample = full_loop(sched, dummy_sample_deter(torch.float64))
    ref = full_loop(float64_ddpm(prediction_type=prediction_type), dummy_sample_deter(torch.float64), sched.timesteps)
    assert sample.dtype == torch.float64
    assert (sample - ref).abs().max().item() <= 1e4 * EPS64 * max(1.0, ref.abs().max().item())
    assert ref.abs().max() > 0.1


def test_custom_timesteps_and_previous_timestep():
    """DDPM's test_custom_timesteps: set_timesteps(timesteps=[...]) runs those timesteps, previous_timestep
    names the next one (-1 after the last)."""
    sched = INRDScheduler()
    timesteps = [100, 87, 50, 1, 0]
    sched.set_timesteps(timesteps=timesteps)
    assert sched.timesteps.tolist() == timesteps and sched.custom_timesteps and sched.num_inference_steps == 5
    assert [int(sched.previous_timestep(t)) for t in sched.timesteps] == [87, 50, 1, 0, -1]


def test_custom_timesteps_are_ddpm_on_them():
    """A custom grid steps as DDPMScheduler(custom timesteps) in float64 (the canonical relaxation on it)."""
    timesteps = [999, 700, 400, 100, 3]
    sched = INRDScheduler(clip_sample=True, use_clipped_model_output=True)
    sched.set_timesteps(timesteps=timesteps)
    ref = float64_ddpm()
    ref.set_timesteps(timesteps=timesteps)
    x = dummy_sample_deter(torch.float64)
    a, b = full_loop(sched, x), full_loop(ref, x, ref.timesteps)
    # + DDPM's 1e-20 variance floor: its last step (t = 3 > 0) adds 1e-10 Z (|Z| <= 6), INRD's gamma_0 is 0
    assert (a - b).abs().max().item() <= 1e4 * EPS64 * max(1.0, b.abs().max().item()) + 6e-10


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"timesteps": [100, 87, 50, 51, 0]}, "strictly descending"),
        ({"timesteps": [100, 87, 50, 1, 0], "num_inference_steps": 5}, "exactly one"),
        ({"timesteps": [1000]}, r"in 0\.\.999"),
        ({}, "exactly one"),
        ({"timesteps": [500.5]}, "got 500.5"),
    ],
)
def test_custom_timesteps_refused(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        INRDScheduler().set_timesteps(**kwargs)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------------
# DDIM: eta as an INRD relaxation, and the condition of the DDIM equality
# ---------------------------------------------------------------------------------------------------


def trailing_ddim_loop(sched, n, eta=None, seed=0):
    sched.set_timesteps(n)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    for t in sched.timesteps:
        kw = {} if eta is None else {"eta": eta}
        x = sched.step(dummy_model(x, int(t)) - 0.3 * x, t, x, generator=g, **kw).prev_sample
    return x


def float64_ddim():
    ref = diffusers.DDIMScheduler(timestep_spacing="trailing", clip_sample=False)
    ref.alphas_cumprod = ref.alphas_cumprod.double()
    ref.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return ref


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_eta_is_ddim_with_that_eta(eta):
    """DDIM's test_eta, as a value: INRDScheduler(ddim_eta=eta) is DDIMScheduler(eta, trailing) in float64,
    noise included (both draw Z the same way, only where the step adds noise). Measured <= 1.2e-14 at max |x| = 12.6."""
    a = trailing_ddim_loop(INRDScheduler(ddim_eta=eta), 10, eta=eta)
    b = trailing_ddim_loop(float64_ddim(), 10, eta=eta)
    assert (a - b).abs().max().item() <= 1e3 * EPS64 * max(1.0, b.abs().max().item())


@pytest.mark.parametrize("n", [7, 333])
def test_ddim_equality_needs_n_to_divide_T(n):
    """rho="ddim" steps to the previous trailing level; DDIM steps back by T // n, which lands on the trailing
    grid only when n divides T. With n = 7 DDIM goes 999 -> 857 while the grid's next level is 856, so the two
    differ, by far more than rounding (measured 0.046 for n = 7, 0.013 for n = 333, at max |x| ~ 10); the
    timesteps the network sees still agree, as the trailing grid is the same."""
    inrd, ddim = INRDScheduler(rho="ddim"), float64_ddim()
    a = trailing_ddim_loop(inrd, n, eta=0.0)
    b = trailing_ddim_loop(ddim, n, eta=0.0)
    assert torch.equal(inrd.timesteps, ddim.timesteps)
    assert any(int(inrd.previous_timestep(t)) != max(int(t) - 1000 // n, -1) for t in inrd.timesteps)
    assert (a - b).abs().max().item() > 1e-4


def test_step_eta_other_than_the_schedulers_is_refused():
    """A pipeline's default eta = 0 is accepted (diffusers documents eta as ignored by non-DDIM schedulers);
    another eta cannot change a relaxation fixed by set_timesteps: one line saying how to build it."""
    sched = INRDScheduler(rho="ind")
    x = trailing_ddim_loop(sched, 4, eta=0.0)
    assert torch.equal(x, trailing_ddim_loop(INRDScheduler(rho="ind"), 4))
    with pytest.raises(ValueError, match=r"from_config\(pipe.scheduler.config, ddim_eta=0.5\)") as info:
        trailing_ddim_loop(sched, 4, eta=0.5)
    assert "\n" not in str(info.value)
    trailing_ddim_loop(INRDScheduler(ddim_eta=0.5), 4, eta=0.5)  # its own eta is fine
    with pytest.raises(ValueError, match="either ddim_eta or a relaxation"):
        INRDScheduler(ddim_eta=0.5, rho="ind")


@pytest.mark.parametrize("n", [1, 10, 333])
@pytest.mark.parametrize("beta_schedule", ["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"])
def test_canonical_is_trailing_ddpm_for_every_beta_schedule(beta_schedule, n):
    """Canonical INRD is DDPMScheduler(trailing) on every beta schedule and step count, in float64 with the same
    noise (the dummy model minus a contraction, so the loop is stable). + DDPM's 1e-10 Z at a last timestep > 0
    (its 1e-20 variance floor; tests/test_diffusers.py). Measured <= 1.2e-10 relative, that floor included."""
    kw = {"beta_schedule": beta_schedule}
    if beta_schedule == "scaled_linear":
        kw.update(beta_start=0.00085, beta_end=0.012)
    ref = diffusers.DDPMScheduler(timestep_spacing="trailing", clip_sample=False, **kw)
    ref.alphas_cumprod = ref.alphas_cumprod.double()
    ref.one = torch.tensor(1.0, dtype=torch.float64)
    a = trailing_ddim_loop(INRDScheduler(**kw), n)
    b = trailing_ddim_loop(ref, n)
    assert (a - b).abs().max().item() <= 1e4 * EPS64 * max(1.0, b.abs().max().item()) + 6e-10
    assert b.abs().max() > 0.1
