"""INRDScheduler against diffusers' DDPM / DDIM schedulers, alone and inside real pipelines built from
tiny configs with random weights (nothing is downloaded).

Tolerances. A scheduler step is a handful of multiply-adds whose terms are all bounded, in the units
of x_{t-1}, by ``M = sqrt(abar_{t-1} / abar_t) (|x_t| + sqrt(1 - abar_t) |model_output|) + std |Z|``;
each float operation rounds to half an ulp, so two orderings of the same real-number step differ by a
few ulps of M. diffusers' ``DDPMScheduler`` also forms ``beta_t = 1 - abar_t / abar_{t-1}`` and divides
by ``1 - abar_t`` in the working precision, which loses a factor ``1 / (1 - abar_t)`` of relative
accuracy at small t (1e4 on the 1000-step grid); inrd computes its coefficients in float64. Hence the
per-step bound ``16 eps M (1 + 1 / (1 - abar_t))`` with eps the machine epsilon of the dtype.
"""

from __future__ import annotations

import json
import math

import diffusers
import pytest
import torch

from inrd.diffusers import INRDScheduler

EPS32 = torch.finfo(torch.float32).eps
EPS64 = torch.finfo(torch.float64).eps


def tiny_unet(seed: int = 0) -> diffusers.UNet2DModel:
    torch.manual_seed(seed)
    return diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
    ).eval()


def step_bound(sched: INRDScheduler, timestep, x, model_output, eps: float) -> float:
    """The per-step rounding bound of the module docstring (std |Z| <= 6 std: Z is a Gaussian draw)."""
    k = sched._level(timestep)
    a, a_prev = float(sched.abar[k]), float(sched.abar[k - 1])
    std = float(sched.gammas[k - 1]) * math.sqrt(a_prev)
    m = math.sqrt(a_prev / a) * (x.abs().max().item() + math.sqrt(1 - a) * model_output.abs().max().item()) + 6 * std
    return 16 * eps * m * (1 + 1 / (1 - a))


def record_steps(sched):
    """Wrap ``sched.step`` to record every call's inputs and the generator state before it."""
    calls = []
    step = sched.step

    def spy(model_output, timestep, sample, generator=None, return_dict=True, **kw):
        calls.append((model_output.clone(), timestep, sample.clone(), None if generator is None else generator.get_state()))
        return step(model_output, timestep, sample, generator=generator, return_dict=return_dict, **kw)

    sched.step = spy
    return calls


def replay(calls, inrd: INRDScheduler, ref, eps: float, **ref_kw) -> float:
    """Re-run every recorded step with inrd and with ``ref`` (same input, same noise); return the
    largest difference relative to its bound (must be <= 1)."""
    worst = 0.0
    for model_output, t, x, state in calls:
        g1, g2 = torch.Generator().set_state(state), torch.Generator().set_state(state)
        a = INRDScheduler.step(inrd, model_output, t, x, generator=g1).prev_sample
        b = ref.step(model_output, t, x, generator=g2, **ref_kw).prev_sample
        worst = max(worst, (a - b).abs().max().item() / step_bound(inrd, t, x, model_output, eps))
    return worst


def ddpm_pipeline(sched, unet=None):
    pipe = diffusers.DDPMPipeline(unet=unet or tiny_unet(), scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---------------------------------------------------------------------------------------------------
# The scheduler alone, in float64
# ---------------------------------------------------------------------------------------------------


def gaussian_eps(x, t, abar, c2=0.3):
    """Exact eps-prediction E[eps | x_t] for data x_0 ~ N(0, c2 I): ``sqrt(1 - a) x_t / (a c2 + 1 - a)``.
    Its INRD step is 1-Lipschitz in the VE frame (the MMSE denoiser of a Gaussian contracts and the
    relaxation interpolates it with the identity), so rounding errors add up without amplification."""
    a = float(abar[int(t)])
    return math.sqrt(1 - a) * x / (a * c2 + 1 - a)


def float64_reference(cls, **kw):
    """A diffusers scheduler whose alphas_cumprod (the same float32 values) are used in float64."""
    ref = cls(timestep_spacing="trailing", clip_sample=False, **kw)
    ref.alphas_cumprod = ref.alphas_cumprod.double()
    ref.one = ref.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return ref


def run(sched, n, seed=0, timesteps=None, **kw):
    sched.set_timesteps(n) if timesteps is None else sched.set_timesteps(timesteps=timesteps)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    bound = 0.0
    for t in sched.timesteps:
        eps = gaussian_eps(x, t, sched.alphas_cumprod)
        prev = sched.step(eps, t, x, generator=g, **kw).prev_sample
        if isinstance(sched, INRDScheduler):  # error made at this step, carried unamplified to x_0 (VE frame)
            k = sched._level(t)
            bound += step_bound(sched, t, x, eps, EPS64) / math.sqrt(float(sched.abar[k - 1]))
        x = prev
    return x, bound


@pytest.mark.parametrize("n", [1000, 50, 7])
def test_canonical_is_ddpm_in_float64(n):
    x, bound = run(INRDScheduler(rho="canonical"), n)
    ref, _ = run(float64_reference(diffusers.DDPMScheduler), n)
    # DDPMScheduler clamps its variance at 1e-20 (it takes logs), so when the last timestep is > 0 it
    # adds 1e-10 Z to the final sample (|Z| <= 6 here); INRD's gamma_0 is 0
    assert (x - ref).abs().max().item() <= bound + 6e-10
    assert ref.std() > 0.1  # a non-trivial sample (the data std is sqrt(0.3))


def test_power_spacing_is_ddpm_on_the_same_custom_timesteps():
    from inrd.schedules import prune_indices

    inrd = INRDScheduler(rho="canonical", timestep_power=2.5, timestep_first=10)
    x, bound = run(inrd, 20)
    idx = prune_indices(1000, 20, 2.5, 10)
    assert torch.equal(inrd.timesteps, (idx[1:] - 1).flip(0))  # network timesteps a_k - 1, from the top
    ref, _ = run(float64_reference(diffusers.DDPMScheduler), None, timesteps=inrd.timesteps.tolist())
    assert (x - ref).abs().max().item() <= bound + 6e-10  # as above: DDPM's 1e-20 variance floor at the last step
    assert ref.std() > 0.1


@pytest.mark.parametrize("n", [1000, 50, 10])  # DDIM steps back by T // n: on the trailing grid only when n divides T
def test_ddim_is_ddim_eta0_in_float64(n):
    x, bound = run(INRDScheduler(rho="ddim"), n)
    ref, _ = run(float64_reference(diffusers.DDIMScheduler), n, eta=0.0)
    assert (x - ref).abs().max().item() <= bound


def compare_steps(inrd: INRDScheduler, ref, n: int = 20, **ref_kw) -> int:
    """Step both schedulers from the same random (x_t, model output) at every timestep of an n-step grid,
    with the same noise, in float64; return how many x0 entries were clipped."""
    inrd.set_timesteps(n)
    ref.set_timesteps(n)
    g = torch.Generator().manual_seed(1)
    clipped = 0
    for t in inrd.timesteps:
        x = 2 * torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
        out = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
        state = g.get_state()
        a = inrd.step(out, t, x, generator=torch.Generator().set_state(state))
        b = ref.step(out, t, x, generator=torch.Generator().set_state(state), **ref_kw)
        last = isinstance(ref, diffusers.DDPMScheduler) and t == inrd.timesteps[-1]  # + DDPM's 1e-10 Z, see above
        assert (a.prev_sample - b.prev_sample).abs().max() <= step_bound(inrd, t, x, out, EPS64) + 6e-10 * last
        x0_bound = 16 * EPS64 * (x.abs().max() + out.abs().max()) / math.sqrt(float(inrd.abar[inrd._level(t)]))
        assert (a.pred_original_sample - b.pred_original_sample).abs().max() <= x0_bound
        clipped += int((a.pred_original_sample.abs() == inrd.config.clip_sample_range).sum())
    return clipped


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
@pytest.mark.parametrize("rho, ref_cls, ref_kw", [("canonical", diffusers.DDPMScheduler, {}), ("ddim", diffusers.DDIMScheduler, {"eta": 0.0})])
def test_prediction_types_match_diffusers(prediction_type, rho, ref_cls, ref_kw):
    compare_steps(INRDScheduler(rho=rho, prediction_type=prediction_type), float64_reference(ref_cls, prediction_type=prediction_type), **ref_kw)


@pytest.mark.parametrize(
    "rho, use_clipped, ref_cls, ref_kw",
    [
        ("canonical", True, diffusers.DDPMScheduler, {}),  # DDPM's clip = the relaxed clipped denoiser
        ("ddim", False, diffusers.DDIMScheduler, {"eta": 0.0}),  # DDIM's clip keeps the raw eps
        ("ddim", True, diffusers.DDIMScheduler, {"eta": 0.0, "use_clipped_model_output": True}),
    ],
)
def test_clip_sample_semantics_match_diffusers(rho, use_clipped, ref_cls, ref_kw):
    inrd = INRDScheduler(rho=rho, clip_sample=True, clip_sample_range=0.5, use_clipped_model_output=use_clipped)
    ref = float64_reference(ref_cls)
    ref.register_to_config(clip_sample=True, clip_sample_range=0.5)
    assert compare_steps(inrd, ref, **ref_kw) > 100  # the clip was active


def test_the_two_clip_semantics_differ_exactly_by_the_raw_direction():
    """V_x0 - V_denoised = clip(D) + (1 - rho)(u - D) - (1 - rho) u - rho clip(D) = (1 - rho)(clip(D) - D)."""
    kw = dict(rho="canonical", clip_sample=True)
    raw, relaxed = INRDScheduler(**kw), INRDScheduler(**kw, use_clipped_model_output=True)
    for s in (raw, relaxed):
        s.set_timesteps(10)
    t = raw.timesteps[5]
    x, eps = torch.randn(1, 1, 8, 8, dtype=torch.float64), 3 * torch.randn(1, 1, 8, 8, dtype=torch.float64)
    a, b = raw.step(eps, t, x, generator=torch.Generator().manual_seed(0)), relaxed.step(eps, t, x, generator=torch.Generator().manual_seed(0))
    k = raw._level(t)
    abar, abar_prev, rho = float(raw.abar[k]), float(raw.abar[k - 1]), float(raw.rhos[k])
    d = x / math.sqrt(abar) - math.sqrt((1 - abar) / abar) * eps
    expected = math.sqrt(abar_prev) * (1 - rho) * (d.clamp(-1, 1) - d)
    assert (expected != 0).any()
    assert (a.prev_sample - b.prev_sample - expected).abs().max() <= step_bound(raw, t, x, eps, EPS64)


# ---------------------------------------------------------------------------------------------------
# In a DDPMPipeline (float32, random tiny UNet2DModel)
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prediction_type, n", [("epsilon", 20), ("epsilon", 7), ("v_prediction", 20)])
def test_canonical_equals_ddpm_in_pipeline(prediction_type, n):
    ref = diffusers.DDPMScheduler(timestep_spacing="trailing", clip_sample=False, prediction_type=prediction_type)
    inrd = INRDScheduler.from_config(ref.config, rho="canonical")
    assert inrd.config.prediction_type == prediction_type
    calls = record_steps(inrd)
    images = ddpm_pipeline(inrd)(batch_size=2, num_inference_steps=n, generator=torch.Generator().manual_seed(0), output_type="np").images
    ref.set_timesteps(n)
    assert torch.equal(inrd.timesteps, ref.timesteps)
    assert len(calls) == n and images.shape == (2, 8, 8, 1)
    assert replay(calls, inrd, ref, EPS32) <= 1.0


def test_ddim_equals_ddim_eta0_in_pipeline():
    ref = diffusers.DDIMScheduler(timestep_spacing="trailing", clip_sample=False)
    inrd = INRDScheduler.from_config(ref.config, rho="ddim")
    calls = record_steps(inrd)
    ddpm_pipeline(inrd)(batch_size=2, num_inference_steps=10, generator=torch.Generator().manual_seed(0), output_type="np")
    ref.set_timesteps(10)
    assert replay(calls, inrd, ref, EPS32, eta=0.0) <= 1.0


def test_ind_end_to_end_renoises_the_x0_estimate():
    """rho = 1 makes gamma_{t-1} = sigma_{t-1}, so an IND step is x_{t-1} = add_noise(D(u), Z, t-1): the
    x0 estimate re-noised to the next level (and D(u) itself at the last step)."""
    inrd = INRDScheduler.from_config(diffusers.DDPMScheduler().config, rho="ind")
    calls = record_steps(inrd)
    images = ddpm_pipeline(inrd)(batch_size=2, num_inference_steps=10, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert len(calls) == 10 and bool(torch.isfinite(torch.from_numpy(images)).all())
    timesteps = inrd.timesteps.tolist()
    for i, (model_output, t, x, state) in enumerate(calls):
        g = torch.Generator().set_state(state)
        out = INRDScheduler.step(inrd, model_output, t, x, generator=g)
        if i + 1 < len(calls):
            z = torch.randn(x.shape, generator=torch.Generator().set_state(state))
            expected = inrd.add_noise(out.pred_original_sample, z, torch.tensor([timesteps[i + 1]]))
        else:
            expected = out.pred_original_sample
        assert (out.prev_sample - expected).abs().max() <= step_bound(inrd, t, x, model_output, EPS32)


# ---------------------------------------------------------------------------------------------------
# In a StableDiffusionPipeline (latent space), tiny random components, tokenizer from a tiny vocab
# ---------------------------------------------------------------------------------------------------


def tiny_stable_diffusion(tmp_path, scheduler):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    specials = ["<|startoftext|>", "<|endoftext|>"]
    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = {tok: i for i, tok in enumerate(specials + letters + [c + "</w>" for c in letters])}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path, model_max_length=16)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1,
        max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )).eval()
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, norm_num_groups=4, attention_head_dim=2,
    ).eval()
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8,), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",), latent_channels=4, norm_num_groups=4, sample_size=8,
    ).eval()
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


# Stable Diffusion's training schedule; "leading" spacing and steps_offset are ignored by INRDScheduler
SD_SCHEDULE = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1)


def test_stable_diffusion_canonical_equals_ddpm_and_ind_runs(tmp_path):
    sd = diffusers.DDPMScheduler(**SD_SCHEDULE, timestep_spacing="leading")
    inrd = INRDScheduler.from_config(sd.config, rho="canonical")
    pipe = tiny_stable_diffusion(tmp_path, inrd)
    calls = record_steps(inrd)
    images = pipe("a red cat", height=8, width=8, num_inference_steps=10, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (1, 8, 8, 3) and images.std() > 0
    ref = diffusers.DDPMScheduler(**SD_SCHEDULE, timestep_spacing="trailing", clip_sample=False)
    ref.set_timesteps(10)
    assert torch.equal(inrd.timesteps, ref.timesteps)
    assert len(calls) == 10 and replay(calls, inrd, ref, EPS32) <= 1.0

    pipe.scheduler = INRDScheduler.from_config(sd.config, rho="ind")
    latents = pipe("a red cat", height=8, width=8, num_inference_steps=10, generator=torch.Generator().manual_seed(0), output_type="latent").images
    assert bool(torch.isfinite(latents).all()) and latents.std() > 0


# ---------------------------------------------------------------------------------------------------
# Config round trip, add_noise, bad inputs
# ---------------------------------------------------------------------------------------------------


def test_save_and_from_pretrained_round_trip(tmp_path):
    rho = torch.tensor([math.nan, 0.9, 0.95, 0.97, 0.99, 1.0], dtype=torch.float64)  # per-step relaxation, 5 steps
    sched = INRDScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", rho=rho)
    sched.save_pretrained(tmp_path)
    back = INRDScheduler.from_pretrained(tmp_path)
    public = lambda c: {k: v for k, v in c.items() if not k.startswith("_")}  # noqa: E731
    assert public(back.config) == public(sched.config) and back.config.relaxation[0] is None  # rho_0 unused
    for s in (sched, back):
        s.set_timesteps(5)
    assert torch.equal(back.rhos[1:], rho[1:]) and torch.equal(back.gammas, sched.gammas)
    x, out = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    t = sched.timesteps[0]
    a = sched.step(out, t, x, generator=torch.Generator().manual_seed(0)).prev_sample
    b = back.step(out, t, x, generator=torch.Generator().manual_seed(0)).prev_sample
    assert torch.equal(a, b)


def test_add_noise_is_the_forward_process():
    inrd, ref = INRDScheduler(), diffusers.DDPMScheduler()
    x0, noise = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    t = torch.tensor([0, 500, 999])
    a, b = inrd.add_noise(x0, noise, t), ref.add_noise(x0, noise, t)
    assert (a - b).abs().max() <= 4 * EPS32 * (x0.abs().max() + noise.abs().max())


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: INRDScheduler(rho="fast"), "unknown relaxation"),
        (lambda: INRDScheduler(rho=1.5), "outside"),
        (lambda: INRDScheduler(rho=0.01).set_timesteps(50), r"gamma_\d+\^2 .* < 0"),
        (lambda: INRDScheduler().set_timesteps(1001), "steps must be an integer in 1..T"),
        (lambda: INRDScheduler(timestep_power=0.0).set_timesteps(20), "power must be a finite number > 0"),
        (lambda: INRDScheduler(timestep_first=995).set_timesteps(20), "first must be an integer in 1..T - steps"),
        (lambda: INRDScheduler(rho=[0.5] * 4).set_timesteps(5), "length T\\+1 = 6"),
        (lambda: INRDScheduler(prediction_type="flow"), "unknown prediction_type"),
        (lambda: INRDScheduler(beta_schedule="exotic"), "unknown beta_schedule"),
        (lambda: INRDScheduler(rescale_betas_zero_snr=True), "sigma_T = inf"),
        (lambda: INRDScheduler().step(torch.zeros(1, 1, 2, 2), 999, torch.zeros(1, 1, 2, 2)), "set_timesteps"),
    ],
)
def test_bad_inputs_give_one_line_value_errors(make, match):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------------
# One INRD step: the scheduler in a stock loop is inrd.sample with EpsDenoiser on the same network
# ---------------------------------------------------------------------------------------------------


def stock_loop(sched: INRDScheduler, unet, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The loop every diffusers pipeline runs (DDPMPipeline's, without its [0, 1] conversion)."""
    for t in sched.timesteps:
        out = unet(sched.scale_model_input(x, t), t).sample
        x = sched.step(out, t, x, generator=generator).prev_sample
    return x


@pytest.mark.parametrize("rho, prediction_type", [("canonical", "epsilon"), ("ind", "epsilon"), (0.7, "epsilon"), ("canonical", "v_prediction")])
def test_scheduler_loop_is_inrd_sample_with_eps_denoiser(rho, prediction_type):
    """Same network (float64), same start, same noise: INRDScheduler's x_0 is inrd.sample's V_0 in [-1, 1] units.
    The start: the pipeline's x_T ~ N(0, I) is V_T = (x_T / sqrt(abar_T) + 1) / 2 with no further noise (Z_T = 0),
    and the Z_t of later steps come from the one generator in the same order in both loops."""
    from inrd import sample
    from inrd.denoisers.eps import EpsDenoiser, UNetEps

    unet = tiny_unet().to(torch.float64)
    sched = INRDScheduler(rho=rho, prediction_type=prediction_type)
    sched.set_timesteps(10)
    den = EpsDenoiser(UNetEps(unet), sched.alphas_cumprod, prediction=prediction_type)
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64)
    state = g.get_state()
    with torch.no_grad():
        x0 = stock_loop(sched, unet, x_T, g)
        g.set_state(state)
        T = sched.scheme.T
        noise = lambda t, like: torch.zeros_like(like) if t == T else torch.randn(like.shape, generator=g, dtype=like.dtype)  # noqa: E731
        v0 = sample(den, sched.scheme, init=(x_T / math.sqrt(float(sched.abar[-1])) + 1) / 2, noise=noise)
    diff = ((x0 + 1) / 2 - v0).abs().max().item()
    # measured <= 8.2e-16 relative to max |V_0| (a random eps-network drives |V_0| to ~280): the loops round
    # differently (EpsDenoiser recomputes sqrt(abar) as 1 / sqrt(1 + s^2) and works in [0, 1] units)
    assert diff <= 32 * EPS64 * max(1.0, v0.abs().max().item())
    assert v0.std() > 0.1  # a non-trivial sample
