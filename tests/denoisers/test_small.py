"""inrd-small: the bundled DDPM model loads, verifies its checksum, denoises held-out texture crops and
samples."""

import json
import shutil

import pytest
import torch

from inrd import sample
from inrd.denoisers import EpsDenoiser, load
from inrd.denoisers.small import BUNDLED, build
from inrd.metrics import psnr
from inrd.schedules import ddpm, prune
from inrd.textures import random_crops, region
from inrd.weights import file_sha256


@pytest.fixture(scope="module")
def den():
    return load("inrd-small")


def test_bundled_weights_load_with_their_metadata(den):
    meta = json.loads(BUNDLED.with_suffix(".json").read_text())
    assert meta["sha256"] == file_sha256(BUNDLED)
    assert BUNDLED.stat().st_size <= 10 * 2**20  # the project ships at most 10 MB of weights
    assert isinstance(den, EpsDenoiser) and not den.training
    lo, hi = den.sigma_range  # the DDPM training range in [0, 1] units
    assert lo == pytest.approx(0.0050003, rel=1e-4) and hi == pytest.approx(78.7036, rel=1e-5)
    d, recorded = den.sampling_defaults, meta.get("sampling", {})
    # the setting recorded with the weights, on the model's own (DDPM) training grid, from the paper's start 0.5
    assert d.schedule == "training" and d.rho == recorded.get("rho", "canonical") and d.init == 0.5 and d.init_std == 0.0
    assert d.steps == recorded["steps"] and torch.equal(torch.tensor(d.train_sigmas, dtype=torch.float64), ddpm())
    assert (d.channels, d.size) == (1, 32)
    assert sum(p.numel() for p in den.parameters()) == meta["parameters"]


def test_a_modified_weights_file_is_refused(tmp_path):
    bad = tmp_path / BUNDLED.name
    shutil.copy(BUNDLED, bad)
    shutil.copy(BUNDLED.with_suffix(".json"), bad.with_suffix(".json"))
    build(weights=bad)  # an intact copy loads
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256 mismatch"):
        build(weights=bad)
    bad.with_suffix(".json").unlink()
    with pytest.raises(ValueError, match="sidecar"):
        build(weights=bad)
    with pytest.raises(ValueError, match="not found"):
        build(weights=tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="no option"):
        build(nonsense=1)


@torch.no_grad()
def test_denoises_held_out_texture_crops(den):
    """Crops of the held-out region (never seen in training) plus N(0, 0.1^2) noise: 20 dB noisy.
    Measured denoised PSNR: see the floor below."""
    g = torch.Generator().manual_seed(0)
    x = random_crops(region("ref"), 32, 32, g)
    noisy = x + 0.1 * torch.randn(x.shape, generator=g)
    gain = (psnr(den(noisy, 0.1), x) - psnr(noisy, x)).mean().item()
    # measured with the shipped weights: mean gain 7.61 dB (20.0 dB noisy; docs/small_model.md); the
    # floor leaves ~1.6 dB for platform differences
    assert gain > 6.0


@torch.no_grad()
def test_sampling_twenty_steps_gives_images(den):
    x = sample(den, prune(ddpm(), 20), "canonical", shape=(4, 1, 32, 32), init=0.5, seed=0)
    assert x.shape == (4, 1, 32, 32) and torch.isfinite(x).all()
    # range-ish: the denoiser is not clamped, yet nearly every pixel of V_0 lies in [0, 1]
    # (measured with seed 0: all pixels in [0.10, 0.77])
    assert ((x > -0.05) & (x < 1.05)).float().mean() > 0.99
    # not a flat image: per-image pixel std measured 0.077-0.106 (held-out crops: ~0.13 overall)
    assert x.flatten(1).std(1).min() > 0.03


@torch.no_grad()
def test_sides_not_multiples_of_four_are_padded_and_cropped_back(den):
    """The UNet halves the resolution twice: a 33x31 image is reflect-padded to 36x32 at the bottom and right,
    denoised, and cropped back; sides that are multiples of 4 go through the network untouched."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 36, 32, generator=g)
    t = torch.tensor([99])
    net = den.eps_model
    assert net.multiple == 4
    # even sizes: bit for bit the plain network
    assert torch.equal(net(x, t), net.unet(x, t).sample)
    # odd sizes: exactly the network on the reflect-padded image, cropped
    odd = x[..., :33, :31].contiguous()
    padded = torch.nn.functional.pad(odd, (0, 1, 0, 3), mode="reflect")
    assert torch.equal(net(odd, t), net.unet(padded, t).sample[..., :33, :31])
    # images too small to reflect (pad >= side) are replicate-padded; every size comes back as it went in
    for h, w in ((7, 7), (1, 5), (2, 2), (3, 9)):
        assert den(torch.rand(1, 1, h, w, generator=g), 0.1).shape == (1, 1, h, w)


@torch.no_grad()
def test_padding_changes_the_interior_little(den):
    """Denoising a 33x31 crop vs the 36x32 image it was cut from: the padded border is not the true one, and the
    lowest-resolution attention sees the whole image, so the images differ; 8 pixels inside the border the
    difference measured 0.0091 at sigma = 0.1 (the denoising error itself is 0.063 RMS): bound 0.02."""
    from inrd.io import load_image

    x = load_image("camera")[..., 100:136, 200:232].contiguous()
    u = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    part, full = den(u[..., :33, :31].contiguous(), 0.1), den(u, 0.1)[..., :33, :31]
    assert (part - full)[..., :25, :23].abs().max() < 0.02
