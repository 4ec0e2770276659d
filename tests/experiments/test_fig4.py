"""Fig. 4 through ``inrd reproduce fig4`` (tiny: 32x32, 4 iterations)."""

import json

import pytest

from inrd.cli import main


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
        assert len(v["psnr"]) == len(v["residual"]) == (4 if v["params"]["algorithm"] == "pnp-pgd" else 2)
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
