"""The restore / deblur workflow as a library: prepare (checks, operator, denoiser, plan) and run into one folder."""

import json

import pytest
import torch

from inrd import io
from inrd import restoration as R
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
    ref = R.restore(run.y, R.PeriodicBlur(R.gaussian_kernel(1.0)), run.denoiser, 0.01, "hqs", task="deblur", x_true=x, iters=3)
    assert log["psnr"] == ref.psnr and log["residual"] == ref.residual and log["verdict"] == ref.verdict
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
