"""INRDScheduler inside diffusers' stock pipelines, built from tiny random components (nothing is downloaded)."""

from __future__ import annotations

import diffusers
import pytest
import torch

from inrd.diffusers import INRDScheduler
from test_diffusers import EPS32, record_steps, replay, tiny_stable_diffusion, tiny_unet  # tests/ is on sys.path (its conftest)

# Stable Diffusion's training schedule (its pipelines' configs use "leading" spacing, which INRD ignores)
SD_SCHEDULE = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def sd_reference(**kw):
    return diffusers.DDPMScheduler(**SD_SCHEDULE, timestep_spacing="trailing", clip_sample=False, **kw)


def test_ddim_pipeline_runs_inrd_by_assignment():
    """DDIMPipeline's constructor turns any scheduler into a DDIMScheduler (diffusers' code: DDIMScheduler.from_config);
    assigning pipe.scheduler afterwards is the path that runs INRD. DDIMPipeline passes eta to every step: with
    ddim_eta = eta, INRD is DDIM(eta, trailing) step for step, noise included."""
    unet = tiny_unet()
    assert type(diffusers.DDIMPipeline(unet=unet, scheduler=INRDScheduler()).scheduler) is diffusers.DDIMScheduler
    ref = diffusers.DDIMScheduler(timestep_spacing="trailing", clip_sample=False)
    pipe = diffusers.DDIMPipeline(unet=unet, scheduler=ref)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = inrd = INRDScheduler.from_config(ref.config, ddim_eta=0.5)
    calls = record_steps(inrd)
    images = pipe(batch_size=2, num_inference_steps=10, eta=0.5, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (2, 8, 8, 1) and len(calls) == 10
    ref.set_timesteps(10)
    assert torch.equal(inrd.timesteps, ref.timesteps)
    assert replay(calls, inrd, ref, EPS32, eta=0.5) <= 1.0


def test_stable_diffusion_custom_timesteps(tmp_path):
    """StableDiffusionPipeline(timesteps=[999, 700, 400, 100]) runs INRD on those timesteps: canonical INRD is
    DDPMScheduler on the same custom timesteps, step for step."""
    inrd = INRDScheduler(**SD_SCHEDULE)
    pipe = tiny_stable_diffusion(tmp_path, inrd)
    calls = record_steps(inrd)
    timesteps = [999, 700, 400, 100]
    pipe("a red cat", height=8, width=8, timesteps=timesteps, generator=torch.Generator().manual_seed(0), output_type="latent")
    assert inrd.timesteps.tolist() == timesteps and [int(c[1]) for c in calls] == timesteps
    ref = sd_reference()
    ref.set_timesteps(timesteps=timesteps)
    assert replay(calls, inrd, ref, EPS32) <= 1.0


def test_stable_diffusion_img2img(tmp_path):
    """img2img starts from add_noise(image latents, noise, first timestep of the strength's tail) and steps on."""
    inrd = INRDScheduler(**SD_SCHEDULE)
    pipe = diffusers.StableDiffusionImg2ImgPipeline(**tiny_stable_diffusion(tmp_path, inrd).components)
    pipe.set_progress_bar_config(disable=True)
    calls = record_steps(inrd)
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    out = pipe("a red cat", image=image, strength=0.5, num_inference_steps=10, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert out.shape == (1, 8, 8, 3) and bool(torch.isfinite(torch.from_numpy(out)).all())
    assert [int(c[1]) for c in calls] == inrd.timesteps[5:].tolist()  # strength 0.5: the last 5 of 10 steps
    ref = sd_reference()
    ref.set_timesteps(10)
    assert replay(calls, inrd, ref, EPS32) <= 1.0


@pytest.mark.parametrize("unet_channels", [4, 9])
def test_stable_diffusion_inpaint(tmp_path, unet_channels):
    """Inpainting with a 4-channel UNet (the known region re-noised by add_noise to the next timestep after every
    step) and with a 9-channel inpainting UNet (latents, mask and masked-image latents as input)."""
    inrd = INRDScheduler(**SD_SCHEDULE)
    components = tiny_stable_diffusion(tmp_path, inrd).components
    if unet_channels == 9:
        torch.manual_seed(0)
        components["unet"] = diffusers.UNet2DConditionModel(
            sample_size=8, in_channels=9, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=16, norm_num_groups=4, attention_head_dim=2,
        ).eval()
    pipe = diffusers.StableDiffusionInpaintPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    calls = record_steps(inrd)
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1.0
    out = pipe("a red cat", image=image, mask_image=mask, height=8, width=8, num_inference_steps=10,
               generator=torch.Generator().manual_seed(0), output_type="np").images
    assert out.shape == (1, 8, 8, 3) and bool(torch.isfinite(torch.from_numpy(out)).all())
    assert len(calls) == 10
    ref = sd_reference()
    ref.set_timesteps(10)
    assert replay(calls, inrd, ref, EPS32) <= 1.0


FRESH_PROCESS = r"""
import sys, diffusers, torch
folder = sys.argv[1]
try:  # nothing of inrd imported yet: diffusers refuses to import a module a folder names
    diffusers.DDPMPipeline.from_pretrained(folder)
    raise SystemExit("loaded without inrd.diffusers")
except ValueError as e:
    assert "import inrd.diffusers before calling `from_pretrained`" in str(e), str(e)
from inrd.diffusers import INRDScheduler  # way 1: import it first
pipe = diffusers.DDPMPipeline.from_pretrained(folder)
assert type(pipe.scheduler) is INRDScheduler and pipe.scheduler.config.relaxation == "ind", pipe.scheduler.config
# way 2: give the scheduler explicitly (also how to load the folder with another scheduler)
pipe2 = diffusers.DDPMPipeline.from_pretrained(folder, scheduler=INRDScheduler.from_pretrained(folder, subfolder="scheduler"))
assert pipe2.scheduler.config == pipe.scheduler.config
ddpm = diffusers.DDPMPipeline.from_pretrained(folder, scheduler=diffusers.DDPMScheduler.from_pretrained(folder, subfolder="scheduler"))
assert type(ddpm.scheduler) is diffusers.DDPMScheduler
for p in (pipe, pipe2):
    p.set_progress_bar_config(disable=True)
a = pipe(batch_size=1, num_inference_steps=5, generator=torch.Generator().manual_seed(0), output_type="np").images
b = pipe2(batch_size=1, num_inference_steps=5, generator=torch.Generator().manual_seed(0), output_type="np").images
assert (a == b).all()
print("ok")
"""


@pytest.mark.slow  # a fresh interpreter importing torch and diffusers: 5-15 s
def test_saved_pipeline_loads_in_a_fresh_process(tmp_path):
    """pipe.save_pretrained records the scheduler as ["inrd.diffusers", "INRDScheduler"]; a fresh process loads
    it once inrd.diffusers is imported, or with the scheduler given explicitly (the README's two ways)."""
    import json
    import os
    import subprocess
    import sys

    pipe = diffusers.DDPMPipeline(unet=tiny_unet(), scheduler=INRDScheduler(rho="ind"))
    pipe.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["scheduler"] == ["inrd.diffusers", "INRDScheduler"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-2000:]


def test_per_sample_generators_give_batch_independent_images():
    """DDPMPipeline with a list of generators: sample i depends on its own generator only (INRD draws Z per
    sample through diffusers' randn_tensor), so the first image of a batch of 2 is the image of a batch of 1."""
    pipe = diffusers.DDPMPipeline(unet=tiny_unet(), scheduler=INRDScheduler(rho="ind"))
    pipe.set_progress_bar_config(disable=True)
    gens = lambda *seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    two = pipe(batch_size=2, num_inference_steps=5, generator=gens(0, 1), output_type="np").images
    one = pipe(batch_size=1, num_inference_steps=5, generator=gens(0), output_type="np").images
    # the UNet's batched convolutions may round differently from a batch of 1: float32 slack, measured 0
    assert abs(two[0] - one[0]).max() <= 1e-5 and abs(two[0] - two[1]).max() > 1e-2


def test_controlnet_pipeline(tmp_path):
    """StableDiffusionControlNetPipeline: the ControlNet's residuals change the UNet's output, the scheduler
    steps as DDPM on the trailing grid."""
    inrd = INRDScheduler(**SD_SCHEDULE)
    components = tiny_stable_diffusion(tmp_path, inrd).components
    torch.manual_seed(0)
    controlnet = diffusers.ControlNetModel(
        in_channels=4, block_out_channels=(8, 16), layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=16, norm_num_groups=4, attention_head_dim=2, conditioning_embedding_out_channels=(4,),
    ).eval()
    pipe = diffusers.StableDiffusionControlNetPipeline(**components, controlnet=controlnet)
    pipe.set_progress_bar_config(disable=True)
    calls = record_steps(inrd)
    control = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    out = pipe("a red cat", image=control, height=8, width=8, num_inference_steps=5, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert out.shape == (1, 8, 8, 3) and len(calls) == 5
    ref = sd_reference()
    ref.set_timesteps(5)
    assert replay(calls, inrd, ref, EPS32) <= 1.0


def test_stable_diffusion_xl_pipeline(tmp_path):
    """StableDiffusionXLPipeline from tiny components (two text encoders, time-id conditioning)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    inrd = INRDScheduler(**SD_SCHEDULE)
    sd = tiny_stable_diffusion(tmp_path, inrd)
    config = CLIPTextConfig(
        vocab_size=sd.tokenizer.vocab_size, hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1,
        max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=16,
    )
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=4, attention_head_dim=2, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=4, projection_class_embeddings_input_dim=6 * 4 + 16,
    ).eval()
    pipe = diffusers.StableDiffusionXLPipeline(
        vae=sd.vae, text_encoder=CLIPTextModel(config).eval(), text_encoder_2=CLIPTextModelWithProjection(config).eval(),
        tokenizer=sd.tokenizer, tokenizer_2=sd.tokenizer, unet=unet, scheduler=inrd,
    )
    pipe.set_progress_bar_config(disable=True)
    calls = record_steps(inrd)
    out = pipe("a red cat", height=8, width=8, num_inference_steps=5, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert out.shape == (1, 8, 8, 3) and bool(torch.isfinite(torch.from_numpy(out)).all()) and len(calls) == 5
    ref = sd_reference()
    ref.set_timesteps(5)
    assert replay(calls, inrd, ref, EPS32) <= 1.0
