"""Fig. 1 (inrd.experiments.fig1) and ``inrd schedules``: the plotted schedules' ranges are the DDPM grid's
(sigma_1 = sqrt((1 - abar_1) / abar_1) / 2 with beta_1 = 1e-4; sigma_T likewise), printed and written faithfully."""

import json

import pytest

from inrd.cli import main


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
