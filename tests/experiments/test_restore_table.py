"""The restoration table, tiny (one 32x32 crop, two tasks, three methods), and its resumable cache."""

import json

import pytest
import torch

from inrd import restoration as R
from inrd.denoisers import StationaryGaussianDenoiser
from inrd.experiments import restore_table as T
from inrd.io import load_image


def test_restore_table_tiny_and_resumable(tmp_path):
    kw = dict(out_dir=tmp_path, images=["camera"], size=32, iters=4, samples=2, tasks=["deblur", "denoise"],
              methods=["tikhonov-discrepancy", "hqs", "deepinv-dpir"])
    r = T.run(**kw)
    rows = r["results"]
    assert set(rows) == {"deblur|camera", "denoise|camera"}
    for row in rows.values():
        assert set(row) == {"observed", "tikhonov-discrepancy", "hqs", "deepinv-dpir"}
        assert all(0 < row[m]["ssim"] <= 1 for m in kw["methods"])
        recorded = [row[m].get("seconds") for m in kw["methods"]]  # each method's cost is logged (never compared)
        assert None not in recorded and min(recorded) >= 0
        assert row["hqs"]["psnr"] > row["observed"]["psnr"]
        assert row["hqs"]["calls"] == row["deepinv-dpir"]["calls"] == 8 and row["tikhonov-discrepancy"]["calls"] == 0
    for task, s in r["summary"].items():  # means computed from the rows (one image: equal)
        assert s["hqs"]["psnr"] == pytest.approx(rows[f"{task}|camera"]["hqs"]["psnr"])
        assert s["hqs"]["wins_over_deepinv_dpir"] == int(rows[f"{task}|camera"]["hqs"]["psnr"] > rows[f"{task}|camera"]["deepinv-dpir"]["psnr"])
    md = (tmp_path / "restore_table.md").read_text()
    assert md.count("### ") == 2 and "| hqs | " in md
    # a rerun continues from the cache: nothing recomputed, one more method only adds its column
    cache = json.loads((tmp_path / "restore_table_cache.json").read_text())
    r2 = T.run(**{**kw, "methods": kw["methods"] + ["pnp-pgd"]})
    for key, row in cache["rows"].items():
        for m, v in row.items():
            assert r2["results"][key][m] == v
        assert "pnp-pgd" in r2["results"][key]
    with pytest.raises(ValueError, match="other settings"):
        T.run(**{**kw, "size": 48})
    with pytest.raises(ValueError, match="unknown task 'zoom'"):
        T.run(**{**kw, "tasks": ["zoom"]})


@pytest.mark.parametrize("task", list(T.TASKS))
def test_deepinvs_own_operators_are_ours(task):
    # deepinv's methods run on deepinv's own physics: its A equals ours to float32 rounding
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    op = T.make_physics(task, (24, 24), seed=0)
    theirs = T.deepinv_physics(op, (3, 24, 24), 0.01)
    assert torch.allclose(theirs.A(x), op.A(x), atol=1e-6)
    assert theirs.noise_model.sigma.item() == pytest.approx(0.01)


def test_dpir_with_more_levels_is_dpirs_rule_with_hqs_level_count():
    # deepinv-dpir-levels (inpainting: 40 levels) is HQS with DPIR's levels 49/255 -> nu, its weight 0.23 and
    # its start A^T y, run by deepinv: our hqs with those settings gives the same image (float64; deepinv's
    # levels are float32, relative 1e-7)
    x = load_image("camera", size=32).double()
    op = T.make_physics("inpaint", (32, 32), seed=0)
    y = R.observe(x, op, 0.01, seed=0)
    D = T.Counted(StationaryGaussianDenoiser(0.45, torch.full((32, 32), 0.02, dtype=torch.float64)))
    theirs = T._deepinv("deepinv-dpir-levels", T.deepinv_physics(op, (1, 32, 32), 0.01, torch.float64), D, y, 0.01, 0, "inpaint")
    assert D.calls == T.dpir_levels("inpaint") == R.HQS_TASK_OPTIONS["inpaint"]["iters"] == 40
    ours = R.hqs(y, op, D.denoiser, iters=40, lam=0.23, noise_level=0.01, init=op.A_adjoint(y))
    assert torch.allclose(ours.x, theirs, atol=1e-7)
    assert T.dpir_levels("deblur") == 0  # HQS uses DPIR's 8 levels there: no second DPIR
