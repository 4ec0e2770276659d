import json

import pytest

from inrd import schedules as S
from inrd.cli import main
from inrd.experiments import fig2, fig3


def test_fig1_writes_figure_and_ranges(tmp_path):
    assert main(["reproduce", "fig1", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "fig1.json").read_text())
    ddpm = data["schedules"]["ddpm (T=1000)"]
    assert ddpm["T"] == 1000 and ddpm["sigma_1"] == pytest.approx(0.0050003, abs=1e-7)
    assert ddpm["sigma_T"] == pytest.approx(78.7036, abs=1e-4)
    assert (tmp_path / "fig1.png").stat().st_size > 10_000


def test_schedules_command(tmp_path, capsys):
    assert main(["schedules", "--out", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert "ddpm (T=1000)" in out and "78.7036" in out and "0.00500025" in out
    assert main(["schedules", "--out", str(tmp_path / "s.jpg")]) == 2


def test_fig2_tiny(tmp_path):
    r = fig2.run(tmp_path, steps=(10, 5), n=1, size=16)
    assert [(x["relax"], x["steps"]) for x in r["runs"]] == [("ind", 10), ("ind", 5), ("canonical", 10), ("canonical", 5)]
    base, _ = fig2.base_grid(fig2.pick_denoiser()[1])
    assert r["runs"][1]["sigmas"] == S.prune(base, 5).tolist()
    assert all(x["error"] is None for x in r["runs"])
    assert r["stand_in"] is True  # no DiffUNet weights in tests
    for name in ("fig2.png", "fig2.json", "fig2_ind_samples.png", "fig2_canonical_samples.png"):
        assert (tmp_path / name).exists()


def test_fig3_tiny_shows_collapse_without_start_noise(tmp_path):
    r = fig3.run(tmp_path, n=2, size=24, steps=130)
    steps = r["stability_steps"]
    early = lambda rows: sum(x["std"] for x in rows if x["t"] > 0.75 * 130) / sum(1 for x in rows if x["t"] > 0.75 * 130)  # noqa: E731
    # the paper: without a large Gaussian start, IND with an off-the-shelf denoiser degenerates to the mean
    # value (measured at 48x48: std ~0.009 over the first iterations, vs ~0.04 with s_T = 1)
    assert early(steps["ind_without_start_noise"]) < 0.5 * early(steps["ind"])
    assert early(steps["ind_without_start_noise"]) < 0.02
    # INRD-TV from a constant start on [0.002, 1] stays in range and keeps the intended noise level
    tv = r["runs"]["tv"]
    assert tv["error"] is None and 0.8 < tv["summary"]["noise_in_over_sigma_min"]
    assert tv["summary"]["noise_in_over_sigma_max"] < 3  # measured 1.5 at 48x48
    for name in ("fig3.png", "fig3_stability_ind.png", "fig3_stability_tv.png", "fig3_stability_ind_no_start_noise.png"):
        assert (tmp_path / name).exists()


def test_fig4_tiny_through_the_cli(tmp_path, capsys):
    out = tmp_path / "f4"
    args = ["reproduce", "fig4", "--out", str(out), "--images", "camera", "--size", "32", "--iters", "4", "--pad", "0"]
    assert main(args) == 0
    r = json.loads((out / "fig4.json").read_text())
    assert (r["images"], r["size"], r["iters"], r["pad"]) == (["camera"], 32, 4, 0)  # the options reached fig4
    assert r["stand_in"] is True and r["diffunet_available"] is False  # no DRUNet / DiffUNet weights in tests
    assert "diffunet" in r["not_run"] and "drunet" in r["not_run"]
    if r["inrd_small_available"]:  # a real diffusion denoiser runs at its smallest level, as DiffUNet would
        (small,) = [p for p in r["runs"] if p["name"] == "inrd-small"]
        assert small["sigma"] == pytest.approx(0.0050003, abs=1e-7) and small["channels"] == 1
    rec = r["results"]["camera"]
    for v in rec["runs"].values():  # GS-PnP runs half the iterations (each one costs two network passes)
        assert len(v["psnr"]) == len(v["residual"]) == (4 if v["params"]["algorithm"] == "pnp_pgd" else 2)
    assert rec["psnr_observed"] < rec["psnr_tikhonov_discrepancy"] < rec["psnr_tikhonov_oracle"]
    for f in ("fig4.png", "fig4_curves.png", "fig4.json"):
        assert (out / f).stat().st_size > 0
    # an option the figure does not take is an error, not silently ignored
    capsys.readouterr()
    assert main(["reproduce", "fig1", "--out", str(tmp_path / "f1"), "--images", "camera"]) == 2
    assert main(["reproduce", "fig1", "--out", str(tmp_path / "f1"), "--weights", "x.pt"]) == 2
    err = capsys.readouterr().err
    assert "fig1 does not take --images" in err and "fig1 does not take --weights" in err
    # weights the user names must load: no silent stand-in
    assert main(["reproduce", "fig4", "--out", str(tmp_path / "x"), "--drunet-weights", str(tmp_path / "missing.pth")]) == 2
    assert main(["reproduce", "fig4", "--out", str(tmp_path / "x"), "--weights", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert "DRUNet weights" in err and "DiffUNet weights" in err and not (tmp_path / "x" / "fig4.json").exists()


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
