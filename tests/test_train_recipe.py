"""inrd.train_recipe: the shipped weights' stages rerun in order, resumed, and checked by sha256
(on a tiny network: 16x16 crops, channels (16, 32))."""

import pytest
import torch

from inrd.cli import main
from inrd.train import STATE_NAME, load_state, train
from inrd.train_recipe import INRD_SMALL, Stage, describe, run_recipe
from inrd.weights import file_sha256

TINY = dict(batch=4, size=16, channels=(16, 32), lr=1e-3, warmup=2, checkpoint_every=2)


def test_stages_chain_resume_and_compare_hashes(tmp_path):
    plain = tmp_path / "plain"  # the same two runs by hand
    train(plain / "a", iters=2, seed=0, threads=1, progress=False, **TINY)
    train(plain / "b", iters=2, seed=1, lr_schedule="cosine", init_weights=plain / "a" / "inrd_small.safetensors",
          threads=1, progress=False, **{**TINY, "lr": 5e-4})
    sha_a, sha_b = file_sha256(plain / "a" / "inrd_small.safetensors"), file_sha256(plain / "b" / "inrd_small.safetensors")
    stages = (Stage("a", iters=2, seed=0, lr_schedule="constant", sha256=sha_a, **TINY),
              Stage("b", iters=2, seed=1, lr_schedule="cosine", sha256="0" * 64, **{**TINY, "lr": 5e-4}))
    r = run_recipe("inrd-small", tmp_path / "rec", progress=False, stages=stages)
    # training is deterministic on one thread: the recipe's first stage is the hand-made run bit for bit,
    # and the second starts from the first stage's weights (its sha256 is recorded as the init)
    assert [x["sha256"] for x in r] == [sha_a, sha_b]
    assert [x["matches"] for x in r] == [True, False]
    assert (tmp_path / "rec" / "training_curve.png").stat().st_size > 0
    assert load_state(tmp_path / "rec" / "b")["config"]["init"]["sha256"] == sha_a
    assert "matches the recorded" in describe(r).splitlines()[0] and "DIFFERS" in describe(r).splitlines()[1]
    # a second call resumes both finished stages: nothing is retrained, the files stay the same
    before = (tmp_path / "rec" / "b" / STATE_NAME).stat().st_mtime_ns
    again = run_recipe("inrd-small", tmp_path / "rec", progress=False, stages=stages)
    assert [x["sha256"] for x in again] == [sha_a, sha_b]
    assert (tmp_path / "rec" / "b" / STATE_NAME).stat().st_mtime_ns == before
    # a recipe folder from before run manifests (stage folders only) is resumed too; a folder of other files is not
    (tmp_path / "rec" / "run.json").unlink()
    assert [x["sha256"] for x in run_recipe("inrd-small", tmp_path / "rec", progress=False, stages=stages)] == [sha_a, sha_b]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        run_recipe("inrd-small", tmp_path / "other", progress=False, stages=stages)


def test_recipe_of_the_shipped_weights_and_bad_calls(tmp_path, capsys):
    from inrd.denoisers.small import read_checkpoint

    _, meta = read_checkpoint(None)
    assert INRD_SMALL[-1].sha256 == meta["sha256"]  # the recipe's last stage is the file that ships
    assert INRD_SMALL[0].sha256 == meta["training"]["init"]["sha256"]
    with pytest.raises(ValueError, match="unknown recipe"):
        run_recipe("sd-xl", tmp_path)
    assert main(["train", "--recipe", "inrd-small", "--lr", "1e-3", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "drop --lr" in err and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_states_saved_before_the_rename_of_decay_iters_still_load(tmp_path):
    train(tmp_path, iters=1, seed=0, threads=1, progress=False, export_weights=False, lr_schedule="cosine", **TINY)
    st = torch.load(tmp_path / STATE_NAME, weights_only=True)
    st["config"]["decay_steps"] = st["config"].pop("decay_iters")
    torch.save(st, tmp_path / STATE_NAME)
    assert load_state(tmp_path)["config"]["decay_iters"] == 1
    train(tmp_path, iters=1, resume=True, seed=0, threads=1, progress=False, export_weights=False, lr_schedule="cosine", **TINY)
