"""The PnP table through ``inrd reproduce pnp-table`` (tiny: 2 images at 48x48, 6 iterations)."""

import json

import pytest

from inrd.cli import main


def test_pnp_table_tiny(tmp_path):
    out = tmp_path / "t"
    args = ["reproduce", "pnp-table", "--out", str(out), "--images", "camera", "astronaut", "--size", "48", "--iters", "6"]
    assert main(args) == 0
    r = json.loads((out / "pnp_table.json").read_text())
    assert r["images"] == ["camera", "astronaut"] and (r["size"], r["iters"]) == (48, 6)
    rows = r["results"]
    assert [rows[n]["channels"] for n in r["images"]] == [1, 3]
    for row in rows.values():
        assert row["observed"] < row["tikhonov_discrepancy"]["psnr"] < row["tikhonov_oracle"]["psnr"]
        assert row["pnp_pgd"]["sigma_denoiser"] == pytest.approx(0.02) and row["pnp_pgd_tuned"]["stepsize"] == pytest.approx(1.9e-4)
    for m, s in r["summary"].items():  # the summary is computed from the rows
        gains = [row[m]["psnr"] - row["tikhonov_oracle"]["psnr"] for row in rows.values()]
        assert s["mean_gain_over_tikhonov_oracle"] == pytest.approx(sum(gains) / 2)
        assert s["wins_over_tikhonov_oracle"] == sum(g > 0 for g in gains)
    md = (out / "pnp_table.md").read_text().splitlines()
    assert len(md) == 2 + 2 + 1 and md[2].startswith("| camera | ")
    assert (out / "pnp_table.png").stat().st_size > 0
