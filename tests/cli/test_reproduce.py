"""``inrd reproduce``: options reach an experiment only when given and only if its run() names them;
any other option is a one-line error (exit 2), never silently ignored."""

import json

from inrd.cli import main


def test_reproduce_passes_exactly_the_options_given(tmp_path, monkeypatch, capsys):
    """Options the user gave reach run(); options not given keep run()'s own defaults; an option that
    run() does not name is a one-line error, also when run() has a ``**kwargs`` catch-all."""
    from inrd.experiments import fig1

    calls = []

    def fake(out_dir, seed=7, device="cpu", size=None):
        calls.append({"out_dir": out_dir, "seed": seed, "device": device, "size": size})
        return {"figure": "fake", "summary": {"seed": seed}}

    monkeypatch.setattr(fig1, "run", fake)
    assert main(["reproduce", "fig1", "--out", str(tmp_path), "--size", "12"]) == 0
    assert calls[-1] == {"out_dir": str(tmp_path), "seed": 7, "device": "cpu", "size": 12}
    assert json.loads(capsys.readouterr().out.splitlines()[0]) == {"figure": "fake", "summary": {"seed": 7}}
    assert main(["reproduce", "fig1", "--out", str(tmp_path), "--seed", "3", "--device", "meta"]) == 0
    assert calls[-1]["seed"] == 3 and calls[-1]["device"] == "meta"
    n = len(calls)
    assert main(["reproduce", "fig1", "--out", str(tmp_path), "--iters", "5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "inrd reproduce: error: fig1 does not take --iters, --progress; it takes --seed, --device, --size."

    def swallowing(out_dir, seed=0, **_):
        calls.append("swallowed")
        return {}

    monkeypatch.setattr(fig1, "run", swallowing)
    assert main(["reproduce", "fig1", "--out", str(tmp_path), "--device", "cuda"]) == 2
    assert "fig1 does not take --device" in capsys.readouterr().err and len(calls) == n


def test_reproduce_refuses_options_the_real_experiments_do_not_use(tmp_path, capsys):
    # fig1 is a plot of closed-form schedules; the quality experiment has no --device (it used to run on
    # the CPU after accepting --device cuda)
    for argv in (["fig1", "--seed", "1"], ["fig1", "--device", "cuda"], ["quality", "--device", "cuda"], ["fig3", "--images", "x.png"]):
        assert main(["reproduce", *argv, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert f"{argv[0]} does not take {argv[1]}" in err and "\n" not in err
    assert not (tmp_path / "o").exists()
