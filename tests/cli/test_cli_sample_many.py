"""`inrd sample-many`: indexed PNGs equal to `inrd sample`'s, resuming, and a used --out never mixed."""

import json

import pytest

from inrd import runs
from inrd.cli import main


def _many(out, *extra):
    return ["sample-many", "-n", "5", "--batch", "2", "--denoiser", "ffdnet", "--size", "16", "--steps", "6",
            "--seed", "3", "--no-progress", "--out", str(out), *extra]


def test_sample_many_writes_indexed_pngs_equal_to_inrd_sample(tmp_path):
    assert main(_many(tmp_path / "many")) == 0
    names = sorted(p.name for p in (tmp_path / "many").iterdir())
    assert names == ["run.json"] + [f"sample_{i:06d}.png" for i in range(5)] + ["sample_many.json"]
    side = json.loads((tmp_path / "many/sample_many.json").read_text())
    assert side["n"] == 5 and side["world_size"] == 1 and side["batches"] == 3 and side["steps"] == 6
    assert side["timing"]["samples_written"] == 5 and side["fast"] is None
    run = json.loads((tmp_path / "many/run.json").read_text())["params"]
    assert run["seed"] == 3 and run["steps"] == 6 and run["sigmas"] == side["sigmas"] and "n" not in run
    # `inrd sample` with the same batch gives the same pixels, hence the same PNG bytes
    assert main(["sample", "--denoiser", "ffdnet", "--size", "16", "--steps", "6", "--seed", "3", "--batch", "2",
                 "--no-progress", "--out", str(tmp_path / "one")]) == 0
    for i in range(2):
        assert (tmp_path / f"many/sample_{i:06d}.png").read_bytes() == (tmp_path / f"one/sample_{i:03d}.png").read_bytes()
    # one meaning of shape: (B, C, H, W) of one sampler call, as `inrd sample` records it
    one = json.loads((tmp_path / "one/grid.json").read_text())
    assert side["shape"] == run["shape"] == one["shape"] and side["shape"][0] == side["batch"] == 2


def test_sample_many_skip_existing_resumes(tmp_path):
    out = tmp_path / "many"
    assert main(_many(out, "--chunk", "1")) == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.png")}
    (out / "sample_000003.png").unlink()
    stamp = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    assert main(_many(out, "--skip-existing", "--chunk", "1")) == 0
    after = {p.name: p.read_bytes() for p in out.glob("*.png")}
    assert after == before  # the missing one is back, identical
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in stamp.items() if n not in ("sample_000002.png",))
    assert json.loads((out / "sample_many.json").read_text())["timing"]["samples_written"] == 2  # batch [2, 4) only


@pytest.mark.parametrize(
    "change, differs",
    [(["--seed", "4"], "seed: 3 there, 4 now"), (["--steps", "5"], "steps: 6 there, 5 now"), (["--rho", "canonical"], "rho: \"ind\" there, \"canonical\" now")],
)
def test_skip_existing_with_other_settings_is_refused(tmp_path, capsys, change, differs):
    """Resuming with another seed / number of steps / relaxation would keep the old images under a JSON
    reporting the new settings: refused, and nothing in the folder changes."""
    out = tmp_path / "many"
    assert main(_many(out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "sample_000004.png").unlink()
    del before["sample_000004.png"]
    argv = _many(out, "--skip-existing")
    i = argv.index(change[0]) if change[0] in argv else None
    if i is not None:
        argv[i + 1] = change[1]
    else:
        argv += change
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds another run's files" in err and differs in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_used_out_without_resume_and_foreign_folders_are_refused(tmp_path, capsys):
    out = tmp_path / "many"
    assert main(_many(out)) == 0
    assert main(_many(out)) == 2  # the same run again, without --skip-existing: would overwrite silently
    assert "already holds the outputs of this run" in capsys.readouterr().err
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.png").write_bytes(b"x")
    assert main(_many(foreign, "--skip-existing")) == 2
    assert "holds no run.json" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["holiday.png"]


def test_two_runs_on_one_folder_do_not_interleave(tmp_path, capsys):
    """A second run started while the first holds the folder fails at once (the lock; that it holds across
    processes is tested in tests/test_runs.py), whatever its seed, and leaves the first run's files alone."""
    out = tmp_path / "many"
    with runs.start_run(out, {"held": True}):
        assert main(_many(out, "--seed", "9")) == 2
        assert "another run is writing into" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == ["run.json"]  # only the first run's manifest


def test_failed_run_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "new"
    assert main(_many(out, "--schedule", "geometric", "--sigma-min", "0.5", "--sigma-max", "0.1")) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [(["-n", "0"], "--num-samples must be >= 1"), (["--batch", "0"], "--batch must be >= 1"),
     (["--no-compile"], "add --fast"), (["--chunk", "-2"], "--chunk"), (["--seed", "-1"], "--seed must be >= 0")],
)
def test_sample_many_errors(tmp_path, capsys, args, message):
    base = ["sample-many", "-n", "2", "--denoiser", "ffdnet", "--size", "8", "--steps", "2", "--no-progress", "--out", str(tmp_path / "o")]
    assert main(base + args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_skip_existing_resamples_a_truncated_png(tmp_path):
    out = tmp_path / "many"
    assert main(_many(out)) == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.png")}
    cut = out / "sample_000001.png"
    cut.write_bytes(before[cut.name][:40])  # a copy cut off: present, but it does not decode
    assert main(_many(out, "--skip-existing")) == 0
    assert {p.name: p.read_bytes() for p in out.glob("*.png")} == before
    assert json.loads((out / "sample_many.json").read_text())["timing"]["samples_written"] == 2  # batch [0, 2) only
