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
    r = train(tmp_path, iters=40, checkpoint_every=40, log_every=10, export_weights=False, **TINY)
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
    train(tmp_path / "a", iters=8, **opts)
    train(tmp_path / "b", iters=4, **opts)
    train(tmp_path / "b", iters=8, resume=True, **opts)
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
    train(tmp_path / "c", iters=2, seed=1, **opts)
    train(tmp_path / "d", iters=2, **opts)
    assert not torch.equal(load_state(tmp_path / "c")["model"]["unet.conv_in.weight"], load_state(tmp_path / "d")["model"]["unet.conv_in.weight"])


def test_resume_refuses_changed_options_and_missing_or_existing_state(tmp_path):
    opts = dict(checkpoint_every=2, export_weights=False, **TINY)
    with pytest.raises(ValueError, match="nothing to resume"):
        train(tmp_path, iters=2, resume=True, **opts)
    train(tmp_path, iters=2, **opts)
    with pytest.raises(ValueError, match="--resume"):
        train(tmp_path, iters=4, **opts)  # would overwrite the run
    with pytest.raises(ValueError, match="lr was"):
        train(tmp_path, iters=4, resume=True, **{**opts, "lr": 2e-3})
    with pytest.raises(ValueError, match="already at iteration 2"):
        train(tmp_path, iters=1, resume=True, **opts)
    assert not list(tmp_path.glob(".*"))  # atomic writes left no temporary file behind


def test_threads_option_does_not_leak(tmp_path):
    before = torch.get_num_threads()
    train(tmp_path, iters=1, export_weights=False, **{**TINY, "threads": before + 1})
    assert torch.get_num_threads() == before


def test_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="iters"):
        train(tmp_path, iters=0)
    with pytest.raises(ValueError, match="size"):
        train(tmp_path, iters=1, size=18, channels=(16, 32, 32))
    with pytest.raises(ValueError, match="lr"):
        train(tmp_path, iters=1, lr=-1.0)
    with pytest.raises(ValueError, match="no GPU|unknown device"):
        train(tmp_path, iters=1, device="cuda" if not torch.cuda.is_available() else "nonsense")


def test_cli_train_writes_a_loadable_model(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--iters", "2", "--batch", "4", "--size", "16", "--channels", "16,32", "--out", str(out), "--no-progress", "--threads", "1"]
    assert main(args) == 0
    assert "trained 2 iterations" in capsys.readouterr().out
    assert (out / STATE_NAME).is_file() and (out / WEIGHTS_NAME).is_file()
    from inrd.denoisers import load

    den = load("inrd-small", weights=out / WEIGHTS_NAME)
    assert den.sampling_defaults.size == 16 and den.sampling_defaults.channels == 1
    x = torch.rand(2, 1, 16, 16)
    assert den(x, 0.1).shape == x.shape
    # resuming to more steps through the CLI
    assert main(args[:2] + ["3"] + args[3:] + ["--resume"]) == 0
    assert load_state(out)["step"] == 3
    assert main(["train", "--channels", "a,b", "--out", str(tmp_path / "x")]) == 2
    assert "--channels" in capsys.readouterr().err


def test_diverging_run_is_a_one_line_error_and_exports_nothing(tmp_path, capsys):
    # lr 1e6: the first Adam step moves every weight by ~lr, the next forward pass overflows to NaN
    with pytest.raises(ValueError, match="diverged at iteration 2 .*nothing was exported"):
        train(tmp_path / "a", iters=20, checkpoint_every=10, **{**TINY, "lr": 1e6})
    assert not (tmp_path / "a").exists()  # no empty run folder left behind
    args = ["train", "--iters", "5", "--batch", "4", "--size", "16", "--channels", "16,32", "--no-progress", "--threads", "1"]
    assert main(args + ["--lr", "1e6", "--warmup", "1", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("inrd train: error: training diverged") and "\n" not in err
    assert not (tmp_path / "b").exists()


def test_cli_rejects_a_damaged_state_and_a_network_without_attention_heads(tmp_path, capsys):
    args = ["train", "--iters", "2", "--batch", "4", "--size", "16", "--channels", "16,32", "--no-progress", "--threads", "1"]
    assert main(args + ["--out", str(tmp_path / "r")]) == 0
    state = tmp_path / "r" / STATE_NAME
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])  # truncated, as by a full disk
    capsys.readouterr()
    assert main(args[:2] + ["4"] + args[3:] + ["--out", str(tmp_path / "r"), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "damaged" in err and STATE_NAME in err and "\n" not in err
    # 16 channels at the attention level = 16 // 32 = 0 heads of size 32
    assert main(["train", "--channels", "8,16", "--iters", "1", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert "multiple of 32" in err and "\n" not in err


def test_weights_and_sidecar_are_replaced_as_a_pair(tmp_path, monkeypatch):
    """A kill between the sidecar's and the weights' renames leaves old weights that the new sidecar
    still names (``previous_sha256``); ``resume`` re-exports a consistent pair before it continues."""
    import inrd.train_export as te
    from inrd.denoisers.small import read_checkpoint
    from inrd.weights import file_sha256

    out = tmp_path / "run"
    opts = dict(checkpoint_every=2, **TINY)
    train(out, iters=2, **opts)
    old_sha = file_sha256(out / WEIGHTS_NAME)
    real_replace = te.os.replace

    def killed(src, dst):  # the process dies just before moving the new weights into place
        if str(dst).endswith(".safetensors"):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(te.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        train(out, iters=4, resume=True, **opts)
    monkeypatch.setattr(te.os, "replace", real_replace)
    meta = json.loads((out / "inrd_small.json").read_text())
    assert file_sha256(out / WEIGHTS_NAME) == old_sha == meta["previous_sha256"] != meta["sha256"]
    assert not list(out.glob(".*"))  # the unfinished weights were removed
    # resume repairs the pair first (the state at step 4 was saved before the export) and goes on
    train(out, iters=6, resume=True, **opts)
    meta = json.loads((out / "inrd_small.json").read_text())
    assert "previous_sha256" not in meta and meta["sha256"] == file_sha256(out / WEIGHTS_NAME)
    assert meta["training"]["iters"] == 6
    read_checkpoint(out / WEIGHTS_NAME)  # verified load


def test_fine_tuning_starts_from_given_weights_and_cosine_lr_reaches_zero(tmp_path):
    from inrd.train import _lr

    opts = dict(checkpoint_every=2, **TINY)
    train(tmp_path / "base", iters=2, **opts)
    base = tmp_path / "base" / WEIGHTS_NAME
    r = train(tmp_path / "ft", iters=4, init_weights=base, lr_schedule="cosine", **opts)
    meta = json.loads(base.with_suffix(".json").read_text())
    assert r["init"] == {"sha256": meta["sha256"], "iters": 2} and r["lr_schedule"] == "cosine"
    # Adam moves a weight by at most lr_s (1 - beta1) / sqrt(1 - beta2) = 3.2 lr_s per step s; the 4 steps' lr
    # sum to < 1e-3, so the fine-tuned weights stay within 0.01 of the base ones, unlike a fresh initialisation
    from inrd.denoisers.small import read_checkpoint

    base_w, _ = read_checkpoint(base)
    ft = {k.removeprefix("unet."): v for k, v in load_state(tmp_path / "ft")["model"].items()}
    assert max(float((ft[k] - base_w[k]).abs().max()) for k in base_w) < 0.01
    train(tmp_path / "fresh", iters=1, seed=5, export_weights=False, **opts)
    fresh = {k.removeprefix("unet."): v for k, v in load_state(tmp_path / "fresh")["model"].items()}
    assert max(float((fresh[k] - base_w[k]).abs().max()) for k in base_w) > 0.1
    cfg = load_state(tmp_path / "ft")["config"]
    # warm-up 5 steps then cosine over 4 steps: lr * (s+1)/5 * (1 + cos(pi s / 4)) / 2
    import math

    assert [_lr(cfg, s) for s in range(4)] == pytest.approx(
        [1e-3 * (s + 1) / 5 * (1 + math.cos(math.pi * s / 4)) / 2 for s in range(4)], rel=1e-15
    )
    with pytest.raises(ValueError, match="decay_iters"):  # a cosine run ends where it was planned to
        train(tmp_path / "ft", iters=6, resume=True, init_weights=base, lr_schedule="cosine", **opts)
    with pytest.raises(ValueError, match="different network"):
        train(tmp_path / "x", iters=2, init_weights=base, **{**opts, "channels": (16, 64)})
