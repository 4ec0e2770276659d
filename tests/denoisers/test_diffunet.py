"""DiffUNet adapter: eq. (15) on deepinv's guided-diffusion UNet, with random (re-initialised) weights.

No pretrained file is available offline, so the loading code is tested on checkpoints of the same
architecture written here. The network is 93.6M parameters: images stay 32x32 (the smallest size
without padding: 5 downsamplings) or 24x40 (padded by deepinv to 32x64).
"""

import pytest
import torch
import torch.nn.functional as F

from inrd.denoisers import diffunet, load
from inrd.schedules import ddpm, ddpm_alphas_cumprod, prune

SIGMAS = ddpm()
ABAR = ddpm_alphas_cumprod()


@pytest.fixture(scope="module")
def den():
    return load("diffunet", random_init=True, seed=3)


def raw_eps(net, x, t):
    """The raw network, in [-1, 1]-scaled units: eps channels of guided-diffusion's forward pass."""
    with torch.no_grad():
        return net.forward_diffusion(x, torch.as_tensor(t))[:, :3]


def eq15_by_hand(net, u, ks):
    """Paper eq. (15) at the DDPM grid levels sigma_{k+1} (0-based network timesteps ks), [0, 1] units.
    Returns (D(u), eps)."""
    s = (2 * SIGMAS[ks + 1]).float().reshape(-1, 1, 1, 1)
    a = ABAR[ks].float().reshape(-1, 1, 1, 1)  # = 1 / (1 + s^2) on the grid
    w = 2 * u - 1
    eps = raw_eps(net, a.sqrt() * w, ks)
    return (w - s * eps + 1) / 2, eps


def test_attributes_and_eval_mode(den):
    assert den.sigma_range == pytest.approx((0.0050003, 78.7036), abs=1e-4)
    d = den.sampling_defaults  # canonical INRD (= DDPM) on the DDPM training grid pruned to 100 steps
    assert (d.rho, d.schedule, d.steps, d.init, d.init_std, d.channels, d.size) == ("canonical", "training", 100, 0.5, 0.0, 3, 256)
    assert torch.equal(d.sigmas(), prune(ddpm(), 100))
    assert not den.training and not den.eps_model.unet.training
    # every parameter was re-initialised: none is identically zero (guided-diffusion zero-inits 135 of them)
    zero = [n for n, p in den.eps_model.unet.named_parameters() if not p.abs().sum() > 0]
    assert zero == []


def test_eps_is_not_zero_and_output_is_eq15(den):
    net = den.eps_model.unet
    u = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ks = torch.tensor([0, 499, 999])  # one image per noise level: lowest, middle, highest
    sigma = SIGMAS[ks + 1]
    with torch.no_grad():
        out = den(u, sigma)
        again = den(u, sigma)
    # eval mode: dropout (p = 0.1) is off, so two calls agree bit for bit
    assert torch.equal(out, again)
    ref, eps = eq15_by_hand(net, u, ks)
    assert eps.std() > 0.1  # measured ~0.35: random weights give a non-trivial eps, so D is not Id
    # same float32 ops up to their order: a few float32 ulps of the cancelling terms |w| + s |eps|
    bound = 64 * torch.finfo(torch.float32).eps * (1 + 2 * sigma * eps.abs().amax(dim=(1, 2, 3))).reshape(-1, 1, 1, 1)
    assert ((out - ref).abs() <= bound).all()
    assert ((out - u).abs().amax(dim=(1, 2, 3)) > 10 * bound.flatten()).all()  # D is not the identity


def test_padding_is_circular_top_left(den):
    """Sides not multiple of 32 are padded circularly at the top/left (deepinv) and cropped back:
    24 x 40 runs as 32 x 64."""
    net = den.eps_model.unet
    u = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(2))
    k = 199
    sigma = float(SIGMAS[k + 1])
    with torch.no_grad():
        out = den(u, sigma)
    s, a = 2 * sigma, float(ABAR[k])
    w = 2 * u - 1
    padded = F.pad(a**0.5 * w, (24, 0, 8, 0), mode="circular")  # (left, right, top, bottom)
    eps = raw_eps(net, padded, torch.tensor([k]))[..., 8:, 24:]
    ref = (w - s * eps + 1) / 2
    torch.testing.assert_close(out, ref, atol=64 * torch.finfo(torch.float32).eps * (1 + s * float(eps.abs().max())), rtol=0)


def test_seeded_and_rng_untouched():
    net = diffunet.make_network()
    state = torch.get_rng_state()
    w = "out.2.weight"  # the zero-initialised output convolution
    a = diffunet.random_init_(net, seed=5).state_dict()[w].clone()
    b = diffunet.random_init_(net, seed=6).state_dict()[w].clone()
    c = diffunet.random_init_(net, seed=5).state_dict()[w].clone()
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random stream is not consumed
    assert torch.equal(a, c) and not torch.equal(a, b)


def test_checkpoint_round_trip(den, tmp_path):
    """A state dict saved as the published files are (no deepinv-registered buffers) and read back with
    torch.load(weights_only=True) reproduces the outputs exactly (the safetensors path of
    inrd.weights.load_state_dict is tested in test_weights.py on small files)."""
    net = den.eps_model.unet
    state = {k: v for k, v in net.state_dict().items() if k not in ("sqrt_1m_alphas_cumprod", "sqrt_alphas_cumprod")}
    pt = tmp_path / "diffunet_random.pt"
    torch.save(state, pt)
    u = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = den(u, 0.2)
        out_pt = diffunet.build(weights=str(pt))(u, 0.2)
        assert torch.equal(out_pt, ref)


def test_wrong_or_broken_checkpoint(tmp_path):
    bad = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(ValueError, match="not a DiffUNet checkpoint"):
        diffunet.build(weights=bad)
    cut = tmp_path / "cut.pt"
    torch.save({"w": torch.zeros(1000)}, cut)
    cut.write_bytes(cut.read_bytes()[:300])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        diffunet.build(weights=cut)


def test_missing_weights_messages(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="diffusion_ffhq_10m.pt") as e:
        load("diffunet")
    assert "inrd weights fetch diffunet-ffhq" in str(e.value)
    monkeypatch.setenv("INRD_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        diffunet.build(weights="diffunet-ffhq")
    msg = str(e.value)
    assert str(tmp_path / "diffusion_ffhq_10m.pt") in msg and "inrd weights fetch diffunet-ffhq" in msg
    with pytest.raises(ValueError, match="not both"):
        diffunet.build(weights="diffunet-ffhq", random_init=True)
