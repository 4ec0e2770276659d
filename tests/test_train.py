"""inrd.train: the DDPM training loop on a tiny network (16x16 crops, channels (16, 32)), determinism,
bit-exact resume, checkpoint/export files, the run folder, and the `inrd train` command."""

import json
import os

import pytest
import torch

from inrd.cli import main
from inrd.train import STATE_NAME, WEIGHTS_NAME, load_state, train

TINY = dict(batch=8, size=16, channels=(16, 32), lr=1e-3, warmup=5, threads=1, progress=False)


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
    with pytest.raises(ValueError, match="no CUDA GPU|unknown device"):
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
    from inrd.denoisers.small import read_checkpoint
    from inrd.weights import file_sha256

    out = tmp_path / "run"
    opts = dict(checkpoint_every=2, **TINY)
    train(out, iters=2, **opts)
    old_sha = file_sha256(out / WEIGHTS_NAME)
    real_replace = os.replace

    def killed(src, dst):  # the process dies just before moving the new weights into place
        if str(dst).endswith(".safetensors"):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed)  # the renames of inrd.paths.atomic_path
    with pytest.raises(KeyboardInterrupt):
        train(out, iters=4, resume=True, **opts)
    monkeypatch.setattr(os, "replace", real_replace)
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


def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_last_one(tmp_path, monkeypatch):
    """ENOSPC while the second checkpoint is written (as on a full tmpfs, where torch.save on the file
    failed with `unexpected pos`): one-line OutputError naming the kept checkpoint; that state still loads
    and resumes, and no temporary file is left."""
    import errno
    from pathlib import Path

    from inrd.io import OutputError

    real = Path.write_bytes
    writes = []

    def full_disk(self, data):
        if self.name.startswith("." + STATE_NAME):
            writes.append(self.name)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    out = tmp_path / "run"
    opts = dict(checkpoint_every=2, **TINY)
    with pytest.raises(OutputError, match="no space left on the device; the checkpoint of iteration 2 is kept") as e:
        train(out, iters=6, **opts)
    assert "\n" not in str(e.value) and "--resume" in str(e.value)
    monkeypatch.setattr(Path, "write_bytes", real)
    assert load_state(out)["step"] == 2
    assert not list(out.glob(".*"))
    assert train(out, iters=6, resume=True, **opts)["iters"] == 6


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path):
    """A kill -9 before the first checkpoint leaves only run.json: the same command runs (nothing to resume),
    another run's options are still refused."""
    from inrd import runs
    from inrd.train import TrainOptions, _config, _manifest

    out = tmp_path / "run"
    opts = dict(checkpoint_every=2, export_weights=False, **TINY)
    config = _config(TrainOptions(batch=8, size=16, channels=(16, 32), lr=1e-3, warmup=5), None)  # TINY's run options
    with runs.start_run(out, _manifest(config)):
        pass  # what the killed run left: its manifest
    with pytest.raises(ValueError, match="another run's files"):
        train(out, iters=2, **{**opts, "seed": 4})
    assert train(out, iters=2, **opts)["iters"] == 2


def test_a_run_saved_before_run_manifests_is_resumed(tmp_path):
    opts = dict(checkpoint_every=2, export_weights=False, **TINY)
    train(tmp_path, iters=2, **opts)
    (tmp_path / "run.json").unlink()  # as folders written before runs.start_run claimed them
    assert train(tmp_path, iters=4, resume=True, **opts)["iters"] == 4
    assert json.loads((tmp_path / "run.json").read_text())["params"]["seed"] == 0
