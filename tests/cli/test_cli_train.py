"""`inrd train` on hostile inputs: every bad option or output folder is one line on stderr, exit 2, before
any work (no network built, nothing written), and one run folder holds one run."""

import time

import pytest

from inrd import runs
from inrd.cli import main
from inrd.train import STATE_NAME, load_state

TINY = ["--iters", "2", "--batch", "4", "--size", "16", "--channels", "16,32", "--no-progress", "--threads", "1"]


def _refused(capsys, args, *words) -> str:
    """Run ``inrd train ARGS``: exit 2, one line on stderr naming every one of ``words``, within 1 s
    (a network built or a step trained would take longer: one iteration of the tiny net is ~0.05 s,
    importing diffusers ~2 s)."""
    capsys.readouterr()
    t0 = time.perf_counter()
    assert main(["train", *args]) == 2
    assert time.perf_counter() - t0 < 1.0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    return err


def test_output_paths_that_cannot_be_a_folder_are_refused_first(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    _refused(capsys, [*TINY, "--out", str(afile / "sub")], "afile", "--out")
    _refused(capsys, [*TINY, "--out", str(afile / "sub" / "deeper")], "afile", "--out")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    _refused(capsys, [*TINY, "--out", str(loop)], "loop", "--out")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    _refused(capsys, [*TINY, "--out", str(dangling)], "does not exist", "--out")
    _refused(capsys, [*TINY, "--out", str(tmp_path / ("n" * 300))], "--out", "300 bytes")
    _refused(capsys, [*TINY, "--out", ""], "--out is empty")
    # the recipe's folder too
    _refused(capsys, ["--recipe", "inrd-small", "--out", str(afile / "sub")], "afile", "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "dangling", "loop"]


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--device", "meta"], ["meta", "cpu"]),
        (["--device", "cuda:7"], ["cuda:7"]),
        (["--device", "nonsense"], ["unknown device"]),
        (["--warmup", "-1"], ["--warmup", "-1"]),
        (["--seed", "-1"], ["--seed", ">= 0"]),
        (["--iters", "0"], ["--iters"]),
        (["--batch", "0"], ["--batch"]),
        (["--checkpoint-every", "0"], ["--checkpoint-every"]),
        (["--threads", "0"], ["--threads"]),
        (["--lr", "nan"], ["--lr"]),
        (["--lr", "0"], ["--lr"]),
    ],
)
def test_bad_options_are_one_line_before_any_work(tmp_path, capsys, flags, words):
    err = _refused(capsys, [*TINY, *flags, "--out", str(tmp_path / "run")], *words)
    assert "numpy" not in err.lower() and "SeedSequence" not in err
    assert not (tmp_path / "run").exists()


def test_a_folder_of_another_run_is_refused(tmp_path, capsys):
    samples = tmp_path / "samples"
    with runs.start_run(samples, {"denoiser": "inrd-small", "steps": 6, "seed": 0}) as out:  # what `inrd sample` writes
        (out / "sample_000.png").write_bytes(b"png")
    _refused(capsys, [*TINY, "--out", str(samples)], "another run", "--out")
    assert sorted(p.name for p in samples.iterdir()) == ["run.json", "sample_000.png"]
    other = tmp_path / "other"  # a folder of files of no run at all
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    _refused(capsys, [*TINY, "--out", str(other)], "not empty", "--out")
    # a training run with other options: refused, naming the difference
    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    _refused(capsys, [*TINY, "--seed", "3", "--out", str(run)], "--resume")
    _refused(capsys, [*TINY[:1], "4", *TINY[2:], "--seed", "3", "--out", str(run), "--resume"], "seed was 0")
    assert load_state(run)["config"]["seed"] == 0


def test_a_second_run_on_a_folder_in_use_is_refused_at_once(tmp_path, capsys):
    """Two runs into one --out: while the first holds the folder (its lock, taken by runs.start_run), the
    second is refused before it trains, whichever seed it has, and the first run's files stay its own."""
    from inrd.train import TrainOptions, _config, _manifest

    out = tmp_path / "run"
    config = _config(TrainOptions(batch=4, size=16, channels=(16, 32)), None)
    with runs.start_run(out, _manifest(config), resume=True):  # as the first run does while it trains
        _refused(capsys, [*TINY, "--out", str(out)], "another run is writing", "--out")
        _refused(capsys, [*TINY, "--seed", "3", "--out", str(out)], "another run is writing")
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]
    # once the first run is gone, the same run starts there (nothing of it had been saved)
    assert main(["train", *TINY, "--out", str(out)]) == 0
    assert load_state(out)["step"] == 2 and (out / STATE_NAME).is_file()
