"""Fig. 2 (inrd.experiments.fig2): the grids it prunes and the start it uses are the denoiser's own
sampling defaults; every cell runs and is recorded."""

import json

import pytest
import torch

from inrd import gaussian as G
from inrd import schedules as S
from inrd.denoisers.base import SamplingDefaults
from inrd.experiments import fig2


def _with_defaults(defaults: SamplingDefaults):
    """A cheap denoiser (the exact MMSE denoiser of a stationary Gaussian law) carrying ``defaults``."""
    D = G.Spectrum.power_law(8).denoiser()
    D.sampling_defaults = defaults
    return D


def test_fig2_grid_and_start_come_from_the_denoisers_own_defaults():
    # a stand-in that is not a diffusion model (FFDNet's kind of defaults): its own schedule with 1000
    # levels on its range, and its own Gaussian start (it used to run with init_std 0)
    light = SamplingDefaults(rho="ind", schedule="geometric", steps=200, sigma_min=0.002, sigma_max=0.2, init=0.5, init_std=0.5)
    grid, start = fig2.base_grid(_with_defaults(light))
    assert torch.equal(grid, S.geometric(1000, 0.002, 0.2)) and start == {"init": 0.5, "init_std": 0.5}
    # a diffusion network: its own training grid (here cosine betas, not DDPM's)
    train = tuple(S.cosine().tolist())
    net = SamplingDefaults(rho="canonical", schedule="training", steps=50, train_sigmas=train, init=0.5, init_std=0.0)
    grid, start = fig2.base_grid(_with_defaults(net))
    assert grid.tolist() == list(train) and start == {"init": 0.5, "init_std": 0.0}
    with pytest.raises(ValueError, match="declares no sampling defaults"):
        fig2.base_grid(lambda x, sigma: x)


def test_fig2_tiny(tmp_path, monkeypatch):
    light = SamplingDefaults(rho="ind", schedule="geometric", steps=200, sigma_min=0.002, sigma_max=0.2, init=0.5,
                             init_std=0.5, channels=1, size=8)
    D = _with_defaults(light)
    monkeypatch.setattr(fig2, "pick_denoiser", lambda weights=None, device="cpu": ("ffdnet", D))
    r = fig2.run(tmp_path, steps=(10, 5), n=1)
    assert [(x["rho"], x["steps"]) for x in r["runs"]] == [("ind", 10), ("ind", 5), ("canonical", 10), ("canonical", 5)]
    assert r["runs"][1]["sigmas"] == S.prune(S.geometric(1000, 0.002, 0.2), 5).tolist()
    assert r["start"] == {"init": 0.5, "init_std": 0.5} and r["shape"] == [1, 1, 8, 8]
    assert all(x["error"] is None for x in r["runs"])
    assert r["stand_in"] is True and json.loads((tmp_path / "fig2.json").read_text())["runs"][0]["rho"] == "ind"
    for name in ("fig2.png", "fig2_ind_samples.png", "fig2_canonical_samples.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_fig2_offline_denoiser_runs(tmp_path):
    """The real path without weights: inrd-small (or FFDNet) with its own defaults, two tiny runs."""
    r = fig2.run(tmp_path, steps=(4,), n=1, size=16)
    name, D = fig2.pick_denoiser()
    assert r["denoiser"] == name and r["stand_in"] is True  # no DiffUNet weights in tests
    base, start = fig2.base_grid(D)
    assert r["runs"][0]["sigmas"] == S.prune(base, 4).tolist() and r["start"] == start
    assert start["init_std"] == D.sampling_defaults.init_std
