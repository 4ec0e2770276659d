"""``inrd.gaussian.analysis``, ``inrd reproduce analysis`` and ``inrd analyze``: the tables are the closed-form W2 of :mod:`inrd.gaussian`
(equalities to float64 rounding: the same function computes both), written and printed faithfully."""

import json

import pytest

from inrd import gaussian as G
from inrd import schedules as S
from inrd.cli import main
from inrd.experiments import analysis as experiment
from inrd.gaussian import analysis


def test_analysis_run_writes_plot_and_json(tmp_path):
    spec = G.Spectrum.power_law(16).compress()
    out = experiment.run(tmp_path / "figs", spectra=[spec], steps=(5, 20), schedules=("ddpm", "geometric"),
                       search_steps=(6,), search_rhos=("canonical",))
    data = json.loads((tmp_path / "figs/analysis.json").read_text())
    assert (tmp_path / "figs/analysis.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = data["results"][0]
    assert res["steps"] == [5, 20] and set(res["table"]) == {"canonical", "ind", "ddim"}
    cell = res["table"]["ddim"]["ddpm"][1]
    assert cell["relative"] == pytest.approx(spec.w2(S.prune(S.ddpm(), 20), "ddim").relative, rel=1e-12)
    assert cell["rms"] == pytest.approx(cell["w2"] / 16, rel=1e-12)  # d = 256
    sub = res["subgrid"][0]
    assert sub["best"]["w2"] <= sub["uniform"]["w2"] and len(sub["indices"]) == 7
    ranks = [r["relative"] for r in res["winners"][1]["ranking"]]
    assert ranks == sorted(ranks) and len(ranks) == 6
    assert out["png"].endswith("analysis.png") and "versions" in data


def test_cli_analyze(tmp_path, capsys):
    png, js = tmp_path / "w2.png", tmp_path / "w2.json"
    rc = main(["analyze", "--size", "16", "--steps", "5,20", "--schedules", "ddpm,karras", "--rho", "canonical,ind",
               "--search-steps", "6", "--out", str(png), "--json", str(js)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "canonical (DDPM)   karras" in text and "best n-level subgrid" in text and f"wrote {png}" in text
    data = json.loads(js.read_text())
    want = G.Spectrum.power_law(16).w2(S.karras(20), "ind").relative
    assert data["table"]["ind"]["karras"][1]["relative"] == pytest.approx(want, rel=1e-12)
    assert f"{100 * want:8.3f}" in text
    assert png.read_bytes()[:4] == b"\x89PNG"
    # --json - prints the numbers instead of the table
    assert main(["analyze", "--size", "8", "--steps", "5", "--search-steps", "none", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == [5]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps", "0,10"], "steps must be integers in 1..1000"),
        (["--steps", "ten"], "comma-separated integers"),
        (["--schedules", "linear"], "unknown schedule 'linear'"),
        (["--rho", "eta"], "unknown rho 'eta'"),
        (["--alpha", "-2"], "alpha must be"),
        (["--spectrum", "patches", "--images", "nope"], "neither a file nor"),
        (["--out", "plot.jpg"], "must name a .png file"),
    ],
)
def test_cli_analyze_bad_inputs(tmp_path, capsys, argv, message):
    argv = [a.replace("plot.jpg", str(tmp_path / "plot.jpg")) for a in argv]
    assert main(["analyze", "--size", "8", "--search-steps", "none", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("inrd analyze: error:") and "\n" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_json_and_cli_speak_rho(tmp_path, capsys):
    """One vocabulary: the JSON names relaxations ``rho``; ``--relaxations`` stays an alias of ``--rho``."""
    js = tmp_path / "a.json"
    argv = ["analyze", "--size", "8", "--steps", "5", "--schedules", "ddpm", "--search-steps", "4", "--json", str(js)]
    assert main([*argv, "--relaxations", "ddim", "--search-relaxations", "ind"]) == 0
    data = json.loads(js.read_text())
    assert data["rhos"] == ["ddim"] and list(data["table"]) == ["ddim"]
    assert data["winners"][0]["ranking"][0]["rho"] == "ddim" and data["subgrid"][0]["rho"] == "ind"
    assert "relaxation" not in data["subgrid"][0] and "relaxations" not in data
    capsys.readouterr()


def test_reproduce_analysis_refuses_options_it_does_not_use(tmp_path, capsys):
    """The analysis is deterministic float64 numpy: a seed or a device would be silently meaningless."""
    for flag, value in (("--seed", "3"), ("--device", "cuda"), ("--size", "16")):
        assert main(["reproduce", "analysis", "--out", str(tmp_path), flag, value]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"inrd reproduce: error: analysis does not take {flag}") and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_schedule_spellings_are_normalised_once():
    """``super_geometric`` and ``Super-Geometric`` name the same schedule (inrd.schedules.schedule_name)."""
    spec = G.Spectrum.power_law(8).compress()
    r = analysis.compute(spec, steps=(5,), schedules=("Super_Geometric",), rhos=("ind",), search_steps=(3,), search_schedule="KARRAS")
    assert r["schedules"] == ["super-geometric"] and r["subgrid"][0]["fine_schedule"] == "karras"
    assert r["table"]["ind"]["super-geometric"][0]["relative"] == pytest.approx(spec.w2(S.super_geometric(5), "ind").relative, rel=1e-12)
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        analysis.compute(spec, steps=(5,), search_schedule="linear")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--size", "100000"], ["size 100000", "GiB", "lower --size"]),  # 1490 GiB: more than any machine has
        (["--spectrum", "patches", "--patch", "200"], ["200x200 patches", "GiB", "--patch", "--stride"]),  # 59 GiB
    ],
)
def test_cli_analyze_refuses_what_memory_cannot_hold_at_once(tmp_path, capsys, monkeypatch, argv, words):
    """One line, exit 2, before any spectrum is built (building either would take minutes before failing)."""
    from inrd import memory

    monkeypatch.setattr(memory, "available_memory", lambda device=None: 16 * 2**30)  # a 16 GiB machine
    monkeypatch.setattr(G.Spectrum, "power_law", lambda *a, **k: pytest.fail("the spectrum was built"))
    monkeypatch.setattr(G.Spectrum, "patches", lambda *a, **k: pytest.fail("the spectrum was built"))
    assert main(["analyze", *argv, "--json", str(tmp_path / "a.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("inrd analyze: error:") and "\n" not in err and "16.0 GiB are available" in err
    for w in words:
        assert w in err, (w, err)
    assert list(tmp_path.iterdir()) == []


def test_memory_estimates_are_below_the_measured_peaks():
    """The refusals use lower bounds: the estimate stays below the peak measured here, and within 2x of it
    (so they refuse what cannot fit, not less). tracemalloc sees numpy's arrays only, so its peak is itself
    below the process's: the power-law spectrum is built and compressed in numpy (172 bytes per pixel measured,
    estimate 160); the subgrid search's candidates x coordinates arrays are numpy too."""
    import tracemalloc

    tracemalloc.start()
    spec = G.Spectrum.power_law(128).compress()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    G.best_subgrid(spec, S.ddpm(), 10, "canonical")
    search = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    est = analysis.spectrum_bytes("power-law", 128)
    assert peak / 2 < est <= peak
    est = analysis.subgrid_bytes(spec, 1000, 10)
    assert search / 2 < est <= search


def test_patch_count_is_the_number_of_rows_of_the_covariance():
    import numpy as np

    from inrd.io import load_image

    x = load_image("camera", channels=1)[0, 0]
    rows = x.unfold(0, 20, 50).unfold(1, 20, 50).reshape(-1, 400)  # the rows Spectrum.patches takes
    assert analysis._patch_count(["camera"], 20, 50) == rows.shape[0] == 10 * 10  # (512 - 20) // 50 + 1 = 10 per axis
    cov = G.Spectrum.patches(("camera",), patch=20, stride=50)
    assert cov.d == 400 and np.allclose(cov.total_std**2, np.trace(np.cov(rows.double().numpy().T)), rtol=1e-12)
    assert analysis.spectrum_bytes("patches", patch=20, stride=50, images=["camera"]) == 8 * max(4 * 100 * 400, 2 * 100 * 400 + 4 * 400**2)
