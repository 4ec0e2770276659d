"""Hub model ids for the diffusers adapter, offline: a tiny model written into a hub-layout cache folder."""

from __future__ import annotations

import diffusers
import pytest
import torch

from inrd.denoisers import diffusers_unet, load


def hub_cache(tmp_path, repo_id="tiny-org/tiny-ddpm", subfolder=None):
    """A huggingface_hub cache (HF_HUB_CACHE layout: models--org--name/refs/main and snapshots/<commit>/) holding a
    tiny random UNet2DModel and its DDPM scheduler config, as snapshot_download would have left them."""
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
    )
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    target = snapshot / subfolder if subfolder else snapshot
    unet.save_pretrained(target)
    diffusers.DDPMScheduler().save_pretrained(target)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return tmp_path / "cache", unet, target


def test_hub_id_loads_from_the_cache_offline(tmp_path, monkeypatch):
    cache, unet, folder = hub_cache(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert diffusers_unet.is_hub_id("tiny-org/tiny-ddpm") and not diffusers_unet.is_hub_id(str(folder))
    den = load("diffusers", weights="tiny-org/tiny-ddpm")
    local = load("diffusers", weights=str(folder))
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(den(x, 0.3), local(x, 0.3))  # the cached snapshot is the model itself
        assert not torch.equal(den(x, 0.3), x)


def test_hub_id_with_a_subfolder(tmp_path, monkeypatch):
    cache, _, folder = hub_cache(tmp_path, subfolder="models/ddpm")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    den = diffusers_unet.build(weights="tiny-org/tiny-ddpm", subfolder="models/ddpm")
    assert den.train_sigmas.numel() == 1001
    with pytest.raises(ValueError, match="subfolder 'elsewhere' does not exist"):
        diffusers_unet.build(weights="tiny-org/tiny-ddpm", subfolder="elsewhere")
    with pytest.raises(ValueError, match="give weights= as well"):
        diffusers_unet.build(subfolder="models/ddpm")


@pytest.mark.parametrize("offline", ["1", None])
def test_hub_id_not_in_the_cache_says_how_to_fetch_it(tmp_path, monkeypatch, offline):
    """Never a download unless asked (HF_HUB_OFFLINE=0): unset or 1, a missing model is one line naming the fix."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    if offline is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    with pytest.raises(ValueError, match=r"google/ddpm-cifar10-32 is not in .*empty.*`inrd weights fetch google/ddpm-cifar10-32`.*HF_HUB_OFFLINE=0") as info:
        load("diffusers", weights="google/ddpm-cifar10-32")
    assert "\n" not in str(info.value)


def test_any_image_size_is_padded_and_cropped_back(tmp_path):
    """A (8, 16) UNet halves the resolution once: a 37 x 31 image (deepinv's denoiser test size) is reflect-padded
    to 38 x 32 and the output cropped back, exactly what padding by hand gives; even sides pass untouched."""
    import torch.nn.functional as F

    _, _, folder = hub_cache(tmp_path)
    den = diffusers_unet.build(weights=str(folder))
    x = torch.rand(2, 1, 37, 31, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = den(x, 0.2)
        by_hand = den(F.pad(x, (0, 1, 0, 1), mode="reflect"), 0.2)[..., :37, :31]
        even = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
        t = torch.tensor([100])
        untouched = torch.equal(den.eps_model(even, t), diffusers_unet.UNetEps.forward(den.eps_model, even, t))
    assert out.shape == x.shape and torch.equal(out, by_hand)
    assert untouched


def test_weights_fetch_of_a_hub_id(tmp_path, monkeypatch, capsys):
    """`inrd weights fetch org/name`: a model already in the cache is not fetched again (no network used here);
    a failed download (simulated: the network is unreachable) is one line on stderr, exit 2."""
    import huggingface_hub

    from inrd.cli import main

    cache, _, folder = hub_cache(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert main(["weights", "fetch", "tiny-org/tiny-ddpm"]) == 0
    assert capsys.readouterr().out.strip() == f"tiny-org/tiny-ddpm: {folder}"

    calls = []

    def unreachable(repo_id, local_files_only=False, **kw):
        calls.append(local_files_only)
        if local_files_only:
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        raise OSError("Failed to resolve 'huggingface.co'\nmore lines")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    assert main(["weights", "fetch", "google/ddpm-cifar10-32"]) == 2
    err = capsys.readouterr().err.strip()
    assert calls == [True, False]  # the cache first, then the one download the command asks for
    assert "cannot fetch google/ddpm-cifar10-32 from the Hugging Face Hub: Failed to resolve" in err and "\n" not in err
    # --url names a mirror of a registry checkpoint; for a Hub id it is refused before anything is fetched
    assert main(["weights", "fetch", "google/ddpm-cifar10-32", "--url", str(tmp_path / "mirror")]) == 2
    assert "--url is for registry checkpoints" in capsys.readouterr().err and calls == [True, False]


def test_inrd_sample_takes_a_hub_id_from_the_cache(tmp_path, monkeypatch):
    """The command line resolves the id like the library: the same samples as from the snapshot folder itself."""
    from inrd.cli import main
    from inrd.io import load_image

    cache, _, folder = hub_cache(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    common = ["sample", "--denoiser", "diffusers", "--steps", "3", "--batch", "1", "--size", "8", "--channels", "1", "--no-progress"]
    assert main([*common, "--weights", "tiny-org/tiny-ddpm", "--out", str(tmp_path / "hub")]) == 0
    assert main([*common, "--weights", str(folder), "--out", str(tmp_path / "local")]) == 0
    pngs = sorted((tmp_path / "hub").glob("sample_*.png"))
    assert pngs and all(torch.equal(load_image(p), load_image(tmp_path / "local" / p.name)) for p in pngs)
