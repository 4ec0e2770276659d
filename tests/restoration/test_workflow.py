"""The restore / deblur workflow as a library: prepare (checks, operator, denoiser, plan) and run into one folder."""

import json

import pytest
import torch

from inrd import io
from inrd import restoration as R
from inrd.metrics import psnr
from inrd.restoration.blur import Blur
from inrd.restoration.plan import DeblurOptions, RestoreOptions
from inrd.restoration.workflow import prepare_deblur, prepare_restore, run_deblur, run_restore


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    d = tmp_path_factory.mktemp("w")
    x = io.load_image("camera")[..., 100:132, 200:232].contiguous()
    io.save_image(d / "truth.png", x)
    x = io.load_image(str(d / "truth.png"))
    io.save_image(d / "y.png", R.observe(x, R.PeriodicBlur(R.gaussian_kernel(1.0)), 0.01, seed=0).clamp(0, 1))
    return d, x


def test_restore_workflow_equals_the_library_call(observed, tmp_path):
    """prepare_restore + run_restore compute exactly restore() on the file's pixels; restore.json holds the plan's
    record, and run.json (the folder's manifest) the same parameters."""
    d, x = observed
    opts = RestoreOptions(task="deblur", observed=str(d / "y.png"), kernel="gaussian:1.0", noise_level=0.01,
                          truth=str(d / "truth.png"), iters=3)
    run = prepare_restore(opts)
    assert run.plan.algorithm == "hqs" and run.plan.noise_level_method == "given" and run.plan.channels == 1
    assert torch.equal(run.y, io.load_image(str(d / "y.png"))) and torch.equal(run.truth, x)
    log = run_restore(run, tmp_path / "out")
    assert run.plan.record()["boundary"] == "valid" and run.plan.operator.boundary == "valid"  # the default
    ref = R.restore(run.y, Blur(R.gaussian_kernel(1.0), "valid"), run.denoiser, 0.01, "hqs", task="deblur", x_true=x, iters=3)
    assert log["psnr"] == ref.psnr and log["residual"] == ref.residual and log["verdict"] == ref.verdict
    assert ref.x.shape[-2:] == (38, 38) and ref.params["pad"] == 0  # the 32x32 view plus the 7x7 kernel's margin; no padding
    restored = io.load_image(str(tmp_path / "out" / "restored.png"))
    assert restored.shape == run.y.shape  # the saved image is the observation's field of view
    assert log["psnr_restored"] == pytest.approx(float(psnr(Blur(R.gaussian_kernel(1.0)).crop(ref.x), x)[0]), abs=1e-9)
    saved = json.loads((tmp_path / "out" / "restore.json").read_text())
    assert {k: saved[k] for k in run.plan.record()} == json.loads(json.dumps(run.plan.record()))
    assert json.loads((tmp_path / "out" / "run.json").read_text())["params"] == json.loads(json.dumps(run.plan.record()))


def test_deblur_workflow_simulates_the_documented_observation(tmp_path):
    run = prepare_deblur(DeblurOptions(image="camera", size=24, iters=2, seed=5))
    op = R.PeriodicBlur(R.gaussian_kernel(1.6))
    assert torch.equal(run.y, R.observe(run.x, op, 0.01, seed=5))
    assert run.plan.sigma_denoiser == pytest.approx(0.02)  # 2 nu for pnp-pgd (default_sigma)
    log = run_deblur(run, tmp_path / "d")
    assert log["algorithm"] == "pnp-pgd" and log["params"]["algorithm"] == "pnp-pgd" and len(log["psnr"]) == 2
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "curves.png", "deblur.json", "ground_truth.png", "observed.png", "restored.png", "run.json"]


def test_a_photograph_blurred_before_cropping_is_restored_by_the_default_boundary(tmp_path):
    """A 64x64 view of camera blurred as part of the larger scene (Gaussian 1.0, nu = 0.01), the case of a real
    photograph: the default (valid, unknown boundary) beats --boundary periodic, whose wrap-around is wrong
    at every edge of so small an image, and its saved image has the observation's size."""
    k = R.gaussian_kernel(1.0)
    m = k.shape[-1] // 2
    scene = io.load_image("camera")[..., 100 - m:164 + m, 200 - m:264 + m].contiguous()
    io.save_image(tmp_path / "scene.png", scene)
    scene = io.load_image(str(tmp_path / "scene.png"))
    io.save_image(tmp_path / "truth.png", scene[..., m:-m, m:-m])
    y = R.observe(scene, Blur(k, "valid"), 0.01, seed=0).clamp(0, 1)
    io.save_image(tmp_path / "y.png", y)
    scores = {}
    for boundary in (None, "periodic"):
        opts = RestoreOptions(task="deblur", observed=str(tmp_path / "y.png"), kernel="gaussian:1.0", noise_level=0.01,
                              truth=str(tmp_path / "truth.png"), boundary=boundary)
        log = run_restore(prepare_restore(opts), tmp_path / str(boundary))
        scores[log["boundary"]] = log["psnr_restored"]
        assert io.load_image(str(tmp_path / str(boundary) / "restored.png")).shape == (1, 1, 64, 64)
    observed = float(psnr(y, scene[..., m:-m, m:-m])[0])
    # measured: valid 32.85 dB, periodic 10.50 dB (its border band is a frame of errors up to full scale), observed
    # 28.5 dB; the margins asserted are about half the measured ones (22.3 and 4.3 dB)
    assert scores["valid"] > scores["periodic"] + 10.0 and scores["valid"] > observed + 2.0


def test_auto_noise_level_uses_the_default_estimator_and_says_which(tmp_path):
    """--noise-level auto: estimate_noise_level (scikit-image's estimate_sigma), recorded by its description; with an
    inpainting mask the Haar rule on fully observed 2x2 blocks (scikit-image takes no mask)."""
    from inrd.restoration.noise_level import DESCRIPTIONS

    x = io.load_image("camera")[..., 100:164, 200:264].contiguous()
    mask = (torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    io.save_image(tmp_path / "m.png", mask)
    io.save_image(tmp_path / "n.png", R.observe(x, R.Denoising(), 0.05, seed=1).clamp(0, 1))
    io.save_image(tmp_path / "y.png", R.observe(x, R.Inpainting(mask), 0.05, seed=1).clamp(0, 1))
    plan = prepare_restore(RestoreOptions(task="denoise", observed=str(tmp_path / "n.png"))).plan
    # 1024 diagonal coefficients: the median's standard error is ~4 %, 3 of them 12 % (measured 0.0490)
    assert plan.noise_level_method == DESCRIPTIONS["wavelet"] and plan.noise_level == pytest.approx(0.05, rel=0.12)
    plan = prepare_restore(RestoreOptions(task="inpaint", observed=str(tmp_path / "y.png"), mask=str(tmp_path / "m.png"))).plan
    # about 64 fully observed blocks of a half-observed mask: ~16 % standard error, 3 of them 48 % (measured 0.0407)
    assert plan.noise_level_method == DESCRIPTIONS["haar-mad"] and plan.noise_level == pytest.approx(0.05, rel=0.48)
    assert plan.record()["noise_level_method"] == DESCRIPTIONS["haar-mad"]
