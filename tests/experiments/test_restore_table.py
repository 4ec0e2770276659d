"""The restoration table, tiny (one 32x32 crop, two tasks, three methods), and its resumable cache."""

import json

import pytest

from inrd.experiments import restore_table as T


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
