import json

import pytest

from inrd.cli import main


def _run(tmp_path, *extra, out="out"):
    return main(["sample", "--denoiser", "ffdnet", "--size", "16", "--batch", "2", "--steps", "8",
                 "--no-progress", "--out", str(tmp_path / out), *extra])


def test_sample_end_to_end_and_sidecar(tmp_path):
    assert _run(tmp_path, "--seed", "5", "--snapshots", "4", "--relax", "ind", "--init", "gaussian:0.5") == 0
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["grid.json", "grid.png", "run.json", "sample_000.json", "sample_000.png", "sample_001.json",
                     "sample_001.png", "stability.png", "trajectory.png"]
    side = json.loads((out / "grid.json").read_text())
    assert side["denoiser"] == "ffdnet" and side["seed"] == 5 and side["rho"] == "ind"
    assert side["steps"] == 8 and len(side["sigmas"]) == 9 and side["sigmas"][0] == 0
    assert side["rhos"][1:] == [1.0] * 8
    assert side["init_std"] == 0.5 and side["shape"] == [2, 3, 16, 16]
    assert len(side["sample_seeds"]) == 2 and side["sample_seeds"][0] != side["sample_seeds"][1]
    assert {"torch", "deepinv", "inrd", "python"} <= set(side["versions"])
    timing_keys = ("seconds", "seconds_per_step")  # recorded, never compared with a speed
    assert all(side["timing"][k] > 0 for k in timing_keys)
    rows = side["stability"]["steps"]
    assert [r["t"] for r in rows] == list(range(8, 0, -1))
    assert all(r["sigma"] == pytest.approx(s) for r, s in zip(rows, side["sigmas"][:0:-1]))
    one = json.loads((out / "sample_001.json").read_text())
    assert one["index"] == 1 and one["sigmas"] == side["sigmas"]


def test_same_seed_same_bytes_and_batch_invariance(tmp_path):
    _run(tmp_path, "--seed", "3", out="a")
    _run(tmp_path, "--seed", "3", out="b")
    assert (tmp_path / "a/grid.png").read_bytes() == (tmp_path / "b/grid.png").read_bytes()
    main(["sample", "--denoiser", "ffdnet", "--size", "16", "--batch", "1", "--steps", "8", "--seed", "3",
          "--no-progress", "--out", str(tmp_path / "c")])
    assert (tmp_path / "a/sample_000.png").read_bytes() == (tmp_path / "c/sample_000.png").read_bytes()
    _run(tmp_path, "--seed", "4", out="d")
    assert (tmp_path / "a/grid.png").read_bytes() != (tmp_path / "d/grid.png").read_bytes()


def test_sigma_file_schedule(tmp_path):
    f = tmp_path / "sigmas.txt"
    f.write_text("0\n0.01\n0.05\n0.1\n")
    assert main(["sample", "--denoiser", "ffdnet", "--schedule", str(f), "--size", "16", "--batch", "1",
                 "--no-progress", "--out", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o/grid.json").read_text())["sigmas"] == [0, 0.01, 0.05, 0.1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--denoiser", "nope"], "unknown denoiser 'nope'"),
        (["--schedule", "ddpm", "--steps", "1001"], "1..T = 1..1000"),
        (["--schedule", "nonexistent-schedule"], "unknown schedule"),
        (["--relax", "0.01", "--schedule", "geometric"], "gamma_"),
        (["--init", "gaussian:abc"], "gaussian:STD"),
        (["--steps", "0"], "--steps must be an integer >= 1"),
    ],
)
def test_bad_flags_give_one_line_errors(tmp_path, capsys, args, message):
    argv = ["sample", "--denoiser", "ffdnet", "--size", "16", "--batch", "1", "--no-progress",
            "--out", str(tmp_path / "o"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "o" / "grid.png").exists()


def test_malformed_sigma_file_and_unwritable_out(tmp_path, capsys):
    f = tmp_path / "bad.txt"
    f.write_text("0 0.1 x0.2\n")
    assert main(["sample", "--denoiser", "ffdnet", "--schedule", str(f), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "'x0.2' is not a number" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["sample", "--denoiser", "ffdnet", "--size", "16", "--out", str(blocker / "sub"), "--no-progress"]) == 2
    assert "cannot write to" in capsys.readouterr().err


def test_sample_files_are_the_grid_tiles(tmp_path):
    import numpy as np
    from PIL import Image

    _run(tmp_path, "--seed", "1", "--display", "0")
    g = np.asarray(Image.open(tmp_path / "out/grid.png"))
    for i in range(2):  # io.grid: 2 images per row, 2-pixel padding
        a = np.asarray(Image.open(tmp_path / f"out/sample_{i:03d}.png"))
        x0 = 2 + i * 18
        assert np.array_equal(a, g[2:18, x0 : x0 + 16])
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "out/sample_000.png")), a)


def test_chunk_is_exact_and_fast_path_is_close(tmp_path):
    import numpy as np
    from PIL import Image

    _run(tmp_path, "--seed", "2", out="ref")
    _run(tmp_path, "--seed", "2", "--chunk", "1", out="chunked")
    assert (tmp_path / "ref/grid.png").read_bytes() == (tmp_path / "chunked/grid.png").read_bytes()
    _run(tmp_path, "--seed", "2", "--fast", "bf16", "--no-compile", out="fast")
    side = json.loads((tmp_path / "fast/grid.json").read_text())
    assert "bf16" in json.dumps(side).lower()
    a = np.asarray(Image.open(tmp_path / "ref/grid.png")).astype(float)
    b = np.asarray(Image.open(tmp_path / "fast/grid.png")).astype(float)
    # bf16 network (8-bit mantissa) over 8 FFDNet steps: measured mean |diff| 0.9 grey levels of 255 (max 6)
    assert np.abs(a - b).mean() < 6


def test_every_command_has_the_same_progress_flag():
    """``--progress`` / ``--no-progress`` (``argparse.BooleanOptionalAction``), shown by default, one help text."""
    import argparse

    from inrd.cli import build_parser

    def flag(parser, *names):
        for name in names:
            parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        return next(a for a in parser._actions if a.dest == "progress")

    parser = build_parser()
    flags = [flag(parser, *names) for names in (("sample",), ("sample-many",), ("weights", "fetch"), ("train",))]
    assert all(isinstance(f, argparse.BooleanOptionalAction) and f.default is True for f in flags)
    assert len({f.help for f in flags}) == 1
    assert parser.parse_args(["sample", "--no-progress"]).progress is False
    assert parser.parse_args(["weights", "fetch", "x"]).progress is True


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sample", "--steps", "many"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "invalid int value: 'many'" in err and "--help" in err


def test_names_are_case_insensitive_on_the_command_line_too(tmp_path):
    out = tmp_path / "o"
    assert main(["sample", "--denoiser", "FFDNet", "--clip", "X0", "--rho", "IND", "--schedule", "Geometric", "--dtype", "Float64",
                 "--size", "16", "--steps", "2", "--batch", "1", "--no-progress", "--out", str(out)]) == 0
    side = json.loads((out / "grid.json").read_text())
    assert (side["denoiser"], side["clip"], side["rho"], side["schedule"], side["dtype"]) == ("ffdnet", "x0", "ind", "geometric", "float64")


def test_outputs_too_large_for_memory_are_refused_before_loading(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["sample", "--display", "60000", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "with its outputs needs at least" in err and "--display" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--init", "gaussian:1:2:3"], "at most two numbers"),
    (["--schedule", "cosine", "--sigma-min", "0.1"], "--sigma-min sets the lowest level"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--out", ""], "--out is empty"),
    (["--init", "1e308"], "init overflows"),
])
def test_silent_coercions_are_refused(tmp_path, capsys, argv, message):
    args = ["sample", "--no-progress", "--batch", "1", "--out", str(tmp_path / "o"), *argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
