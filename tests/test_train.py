"""inrd.train: the DDPM training loop on a tiny network (16x16 crops, channels (16, 32)), determinism,
bit-exact resume, checkpoint/export files, data splits, and the `inrd train` command."""

import json

import pytest
import torch

from inrd.cli import main
from inrd.train import STATE_NAME, WEIGHTS_NAME, load_state, random_crops, region, texture_images, train

TINY = dict(batch=8, size=16, channels=(16, 32), lr=1e-3, warmup=5, threads=1, progress=False)


def test_data_splits_are_disjoint_and_cover_the_textures():
    x = texture_images()
    assert x.shape == (3, 256, 256) and 0 <= x.min() and x.max() <= 1
    tr, ref, floor = region("train"), region("ref"), region("floor")
    assert tr.shape == (3, 256, 192) and ref.shape == floor.shape == (3, 128, 64)
    # train | held-out columns, held-out = ref (top) | floor (bottom): together they are the image
    assert torch.equal(torch.cat([tr, torch.cat([ref, floor], 1)], 2), x)
    with pytest.raises(ValueError, match="split"):
        region("test")


def test_random_crops_are_seeded_crops_of_the_region():
    im = torch.arange(3 * 20 * 30, dtype=torch.float32).reshape(3, 20, 30)
    c = random_crops(im, 5, 8, torch.Generator().manual_seed(0))
    assert c.shape == (5, 1, 8, 8)
    assert torch.equal(c, random_crops(im, 5, 8, torch.Generator().manual_seed(0)))
    for crop in c[:, 0]:  # each is a contiguous block: value = k*600 + i*30 + j
        v0 = int(crop[0, 0])
        k, i, j = v0 // 600, (v0 % 600) // 30, v0 % 30
        assert torch.equal(crop, im[k, i : i + 8, j : j + 8])
    with pytest.raises(ValueError, match="exceeds"):
        random_crops(im, 1, 21, torch.Generator())


def test_training_decreases_the_loss(tmp_path):
    r = train(tmp_path, steps=40, checkpoint_every=40, log_every=10, export_weights=False, **TINY)
    losses = [loss for _, loss in r["loss_history"]]
    # a random UNet starts near loss 1 (predicting 0 gives E|e|^2 = 1). Measured 10-step means
    # 0.65, 0.22, 0.13, 0.12 (seed 0) and held-out EMA loss 0.135: require a 2x decrease and < 0.5
    assert losses[-1] < losses[0] / 2
    assert r["heldout_loss_ema"] < 0.5


def _flat(state):
    return {**{f"model.{k}": v for k, v in state["model"].items()}, **{f"ema.{k}": v for k, v in state["ema"].items()}}


def test_resume_reproduces_an_uninterrupted_run_exactly(tmp_path):
    """8 steps in one go == 4 steps, stop, resume to 8: identical weights, EMA, Adam state, RNG and losses
    (CPU, one thread). Checkpoints every 3 steps so the resumed run restarts between two of them."""
    opts = dict(checkpoint_every=3, log_every=2, **TINY)
    train(tmp_path / "a", steps=8, **opts)
    train(tmp_path / "b", steps=4, **opts)
    train(tmp_path / "b", steps=8, resume=True, **opts)
    a, b = load_state(tmp_path / "a"), load_state(tmp_path / "b")
    assert a["step"] == b["step"] == 8
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        assert torch.equal(fa[k], fb[k]), k
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for k in pa:
            assert torch.equal(pa[k], pb[k]), k
    for name in a["rng"]:
        assert torch.equal(a["rng"][name], b["rng"][name]), name
    assert a["history"] == b["history"]
    # the exported EMA weights are the same bytes, hence the same sha256
    ma = json.loads((tmp_path / "a" / "inrd_small.json").read_text())
    mb = json.loads((tmp_path / "b" / "inrd_small.json").read_text())
    assert ma["sha256"] == mb["sha256"]
    # a different seed is a different run
    train(tmp_path / "c", steps=2, seed=1, **opts)
    train(tmp_path / "d", steps=2, **opts)
    assert not torch.equal(load_state(tmp_path / "c")["model"]["unet.conv_in.weight"], load_state(tmp_path / "d")["model"]["unet.conv_in.weight"])


def test_resume_refuses_changed_options_and_missing_or_existing_state(tmp_path):
    opts = dict(checkpoint_every=2, export_weights=False, **TINY)
    with pytest.raises(ValueError, match="nothing to resume"):
        train(tmp_path, steps=2, resume=True, **opts)
    train(tmp_path, steps=2, **opts)
    with pytest.raises(ValueError, match="--resume"):
        train(tmp_path, steps=4, **opts)  # would overwrite the run
    with pytest.raises(ValueError, match="lr was"):
        train(tmp_path, steps=4, resume=True, **{**opts, "lr": 2e-3})
    with pytest.raises(ValueError, match="already at step 2"):
        train(tmp_path, steps=1, resume=True, **opts)
    assert not list(tmp_path.glob(".*"))  # atomic writes left no temporary file behind


def test_threads_option_does_not_leak(tmp_path):
    before = torch.get_num_threads()
    train(tmp_path, steps=1, export_weights=False, **{**TINY, "threads": before + 1})
    assert torch.get_num_threads() == before


def test_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="steps"):
        train(tmp_path, steps=0)
    with pytest.raises(ValueError, match="size"):
        train(tmp_path, steps=1, size=18, channels=(16, 32, 32))
    with pytest.raises(ValueError, match="lr"):
        train(tmp_path, steps=1, lr=-1.0)
    with pytest.raises(ValueError, match="no GPU|unknown device"):
        train(tmp_path, steps=1, device="cuda" if not torch.cuda.is_available() else "nonsense")


def test_cli_train_writes_a_loadable_model(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--steps", "2", "--batch", "4", "--size", "16", "--channels", "16,32", "--out", str(out), "--quiet", "--threads", "1"]
    assert main(args) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    assert (out / STATE_NAME).is_file() and (out / WEIGHTS_NAME).is_file()
    from inrd.denoisers import load

    den = load("inrd-small", weights=out / WEIGHTS_NAME)
    assert den.sampling_defaults["size"] == 16 and den.sampling_defaults["channels"] == 1
    x = torch.rand(2, 1, 16, 16)
    assert den(x, 0.1).shape == x.shape
    # resuming to more steps through the CLI
    assert main(args[:2] + ["3"] + args[3:] + ["--resume"]) == 0
    assert load_state(out)["step"] == 3
    assert main(["train", "--channels", "a,b", "--out", str(tmp_path / "x")]) == 2
    assert "--channels" in capsys.readouterr().err
