import json

import pytest

from inrd.cli import main

NU = 0.01


def test_cli_deblur(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["deblur", "--image", "camera", "--size", "48", "--iters", "5", "--out", str(out)]) == 0
    for f in ("observed.png", "restored.png", "ground_truth.png", "curves.png", "deblur.json"):
        assert (out / f).stat().st_size > 0
    log = json.loads((out / "deblur.json").read_text())
    assert len(log["psnr"]) == len(log["residual"]) == 5
    assert log["psnr_restored"] == pytest.approx(log["psnr"][-1])
    assert log["sigma_denoiser"] == pytest.approx(0.02) and log["params"]["stepsize"] == pytest.approx(NU**2)
    assert log["noise_level"] == log["params"]["noise_level"] == NU  # one name for nu, in the CLI and the library
    assert "torch" in log["versions"] and log["verdict"] in ("converged", "stalled", "diverging")
    assert "->" in capsys.readouterr().out
    # user errors: one line, exit code 2, nothing written
    bad = tmp_path / "bad"
    assert main(["deblur", "--image", "camera", "--size", "16", "--kernel", "gaussian:3", "--out", str(bad)]) == 2
    assert main(["deblur", "--image", "camera", "--size", "16", "--stepsize", "-1", "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "larger than the 16x16 image" in err and "stepsize" in err
    assert not bad.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing half written
    # a second run into the same folder is refused (never mixed with the first)
    assert main(["deblur", "--image", "camera", "--size", "48", "--iters", "2", "--out", str(out)]) == 2
    assert "holds another run's files" in capsys.readouterr().err
    # the truth-free linear baseline is reported beside the oracle one
    assert log["psnr_observed"] < log["psnr_tikhonov_discrepancy"] < log["psnr_tikhonov_oracle"]
    assert log["tikhonov_discrepancy_lam"] > log["tikhonov_lam"]


@pytest.mark.parametrize("extra, message", [
    (["--noise-level", "1e-300"], "--noise-level = 1e-300 is below 1.192e-07"),
    (["--noise-level", "5"], "--noise-level = 5 exceeds 1"),
    (["--device", "meta"], "device meta cannot run inrd"),
    (["--algorithm", "hqs"], "--algorithm must be pnp-pgd or gs-pnp for inrd deblur"),
    (["--algorithm", "gs-pnp", "--stepsize", "0.5"], "--stepsize is for pnp-pgd"),
    (["--iters", "0"], "--iters must be an integer >= 1"),
    (["--pad", "-1"], "--pad must be an integer >= 0"),
    (["--size", "-1"], "--size must be an integer >= 0"),
    (["--sigma-denoiser", "nan"], "--sigma-denoiser must be a finite number > 0"),
    (["--kernel", "TEXT"], "is not a .npy array"),
])
def test_deblur_bad_input_is_one_line_before_the_model(tmp_path, capsys, monkeypatch, extra, message):
    import inrd.denoisers

    monkeypatch.setattr(inrd.denoisers, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    (tmp_path / "k.npy").write_text("1\n")
    extra = [str(tmp_path / "k.npy") if a == "TEXT" else a for a in extra]
    out = tmp_path / "out"
    assert main(["deblur", "--image", "camera", "--size", "16", *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("inrd deblur: error: ") and err.count("\n") == 1
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_deblur_output_path_is_checked_first(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["deblur", "--image", "camera", "--size", "16", "--out", str(tmp_path / "afile" / "sub")]) == 2
    assert "is not a writable folder" in capsys.readouterr().err
