import json
import math

import pytest
import torch

from inrd import runs


def test_start_run_refuses_another_runs_folder(tmp_path):
    out = tmp_path / "P"
    with runs.start_run(out, {"seed": 1, "sigmas": torch.tensor([0.0, 0.5])}) as d:
        (d / "sample_0.png").write_bytes(b"x")
    assert json.loads((out / "run.json").read_text())["params"] == {"seed": 1, "sigmas": [0.0, 0.5]}
    with pytest.raises(ValueError, match=r"holds another run's files \(seed: 1 there, 2 now\)"):
        with runs.start_run(out, {"seed": 2, "sigmas": torch.tensor([0.0, 0.5])}, resume=True):
            pass
    with pytest.raises(ValueError, match="already holds the outputs of this run"):
        with runs.start_run(out, {"seed": 1, "sigmas": [0.0, 0.5]}):
            pass
    with runs.start_run(out, {"seed": 1, "sigmas": [0.0, 0.5]}, resume=True) as d:  # same run: resume
        assert d == out
    assert sorted(p.name for p in out.iterdir()) == ["run.json", "sample_0.png"]
    other = tmp_path / "Q"
    other.mkdir()
    (other / "old.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="not empty and holds no run.json"):
        with runs.start_run(other, {"seed": 1}):
            pass


def test_start_run_is_exclusive(tmp_path):
    out = tmp_path / "P"
    with runs.start_run(out, {"seed": 1}):
        with pytest.raises(ValueError, match="another run is writing into"):
            with runs.start_run(out, {"seed": 1}, resume=True):
                pass
    with runs.start_run(out, {"seed": 1}, resume=True):  # released at the end of the first run
        pass


def test_start_run_lock_is_held_across_processes(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "P"
    code = f"from inrd import runs\nwith runs.start_run({str(out)!r}, {{'seed': 1}}, resume=True):\n    print('busy', flush=True)\n    input()\n"
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "busy"
        with pytest.raises(ValueError, match="another run is writing into"):
            with runs.start_run(out, {"seed": 1}, resume=True):
                pass
    finally:
        holder.communicate("\n", timeout=60)
    with runs.start_run(out, {"seed": 1}, resume=True):
        pass


def test_failed_run_leaves_no_folder(tmp_path):
    out = tmp_path / "new" / "P"
    with pytest.raises(RuntimeError):
        with runs.start_run(out, {"seed": 1}):
            raise RuntimeError("diverged")
    assert not out.exists()
    out.mkdir()
    with pytest.raises(RuntimeError):
        with runs.start_run(out, {"seed": 1}) as d:
            (d / "sample_0.png").write_bytes(b"x")
            raise RuntimeError("diverged after one file")
    assert sorted(p.name for p in out.iterdir()) == ["run.json", "sample_0.png"]  # kept: names its file


def test_a_run_that_cannot_resume_is_not_told_to_and_stale_temporaries_go(tmp_path):
    out = tmp_path / "r"
    with runs.start_run(out, {"a": 1}):
        (out / "x.txt").write_text("done")
    (out / ".x.png.abc123.png").write_text("left by a killed run")
    with pytest.raises(ValueError, match=r"already holds the outputs of this run; choose another --out or delete it\.$"):
        with runs.start_run(out, {"a": 1}):
            pass
    with pytest.raises(ValueError, match="or resume it with --resume"):
        with runs.start_run(out, {"a": 1}, resume_flag="--resume"):
            pass
    assert not (out / ".x.png.abc123.png").exists()
    with runs.start_run(out, {"a": 1}, resume=True):
        pass
    assert sorted(p.name for p in out.iterdir()) == ["run.json", "x.txt"]


def test_the_manifest_is_strict_json(tmp_path):

    with runs.start_run(tmp_path / "r", {"rhos": [math.nan, 0.5]}):
        pass
    text = (tmp_path / "r" / "run.json").read_text()
    assert json.loads(text)["params"]["rhos"] == [None, 0.5] and "NaN" not in text
