"""DRUNet adapter: checkpoint loading (random weights: the published ones cannot be fetched here),
units of the noise level map, per-sample sigma, and clear errors."""

import pytest
import torch

from inrd import denoisers
from inrd.denoisers.drunet import DRUNetDenoiser, build


@pytest.fixture(scope="module")
def rgb():
    return build(random_init=True, seed=0)


def test_checkpoint_round_trip(rgb, tmp_path):
    """Weights saved as a plain DRUNet state dict (and as this adapter's own state dict, keys ``net.*``)
    and loaded back (torch.load weights_only=True, strict) give bit-identical outputs."""
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    s = torch.tensor([0.05, 0.15])
    with torch.no_grad():
        expected = rgb(x, s)
    torch.save(rgb.net.state_dict(), tmp_path / "drunet.pth")
    torch.save(rgb.state_dict(), tmp_path / "adapter.pth")
    for name in ("drunet.pth", "adapter.pth"):
        D = denoisers.load("drunet", weights=str(tmp_path / name))
        with torch.no_grad():
            assert torch.equal(D(x, s), expected)
    other = build(random_init=True, seed=1)
    with torch.no_grad():
        assert (other(x, s) - expected).abs().max() > 1e-3  # different weights do differ: not vacuous


def test_random_init_is_seeded_and_leaves_global_rng_alone(rgb):
    state = torch.random.get_rng_state()
    again = build(random_init=True, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(rgb.parameters(), again.parameters()))


def test_per_sample_sigma_equals_separate_calls(rgb):
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    s = torch.tensor([0.01, 0.1, 0.2])
    with torch.no_grad():
        both = rgb(x, s)
        sep = torch.cat([rgb(x[i : i + 1], float(s[i])) for i in range(3)])
        same = rgb(x, 0.1)
    # float32 convolutions batched or not may sum in a different order: measured max 1.5e-8 on outputs
    # of size ~0.05 (random weights), tolerance 1e-6
    torch.testing.assert_close(both, sep, rtol=0, atol=1e-6)
    assert (both[0] - same[0]).abs().max() > 1e-4  # sigma changes the output: the test is not vacuous


def test_noise_map_is_sigma_in_image_units(rgb):
    """deepinv feeds sigma itself as the extra input channel (DPIR feeds noise_level / 255, the same
    [0, 1] units): nothing is rescaled between our D(x, sigma) and the network."""
    seen = {}
    hook = rgb.net.m_head.register_forward_pre_hook(lambda m, args: seen.setdefault("in", args[0].clone()))
    try:
        x = torch.rand(2, 3, 64, 64)  # multiple of 8 and > 31: no padding inside deepinv
        with torch.no_grad():
            rgb(x, torch.tensor([0.03, 0.2]))
    finally:
        hook.remove()
    inp = seen["in"]
    assert inp.shape == (2, 4, 64, 64)
    assert torch.equal(inp[:, :3], x)
    assert torch.all(inp[0, 3] == torch.tensor(0.03)) and torch.all(inp[1, 3] == torch.tensor(0.2))


def test_odd_sizes(rgb):
    with torch.no_grad():
        for shape in [(1, 3, 33, 47), (1, 3, 70, 66)]:  # padded / split inside deepinv
            out = rgb(torch.rand(shape), 0.1)
            assert out.shape == shape and torch.isfinite(out).all()


def test_missing_weights_explain_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("INRD_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="inrd weights fetch drunet-color") as e:
        denoisers.load("drunet")
    assert "random_init=True" in str(e.value) and "weights=PATH" in str(e.value)
    with pytest.raises(ValueError, match="inrd weights fetch drunet-gray"):
        denoisers.load("drunet", channels=1)
    with pytest.raises(ValueError, match="does not exist"):
        denoisers.load("drunet", weights=str(tmp_path / "nope.pth"))


def test_gray_and_wrong_checkpoint(tmp_path):
    gray = build(channels=1, random_init=True)
    assert gray(torch.rand(1, 1, 32, 32), 0.1).shape == (1, 1, 32, 32)
    torch.save(gray.net.state_dict(), tmp_path / "gray.pth")
    with pytest.raises(ValueError, match="channels="):
        build(weights=str(tmp_path / "gray.pth"), channels=3)
    torch.save({"m_head.weight": torch.zeros(3)}, tmp_path / "junk.pth")
    with pytest.raises(ValueError, match="DRUNet state dict"):
        build(weights=str(tmp_path / "junk.pth"), channels=1)


def test_bad_inputs(rgb):
    with pytest.raises(ValueError, match="channels"):
        rgb(torch.rand(1, 1, 32, 32), 0.1)
    with pytest.raises(ValueError, match="NaN"):
        rgb(torch.full((1, 3, 32, 32), float("nan")), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        rgb(torch.rand(1, 3, 32, 32), -0.1)
    with pytest.raises(ValueError, match="channels=1"):
        build(random_init=True, channels=2)
    with pytest.raises(ValueError, match="not both"):
        build(weights="x.pth", random_init=True)
    with pytest.raises(ValueError, match="unknown DRUNet option"):
        build(random_init=True, nb=2)


def test_attributes(rgb):
    assert isinstance(rgb, DRUNetDenoiser) and rgb.sigma_range == (0.0, 0.2)
    assert not rgb.training and not any(p.requires_grad for p in rgb.parameters())
    d = rgb.sampling_defaults
    assert d.sigma_max <= rgb.sigma_range[1] and d.init_std > d.sigma_max and d.rho == "ind"
