"""inrd.denoisers.base: SamplingDefaults turn a network's training grid into the schedule of any step count."""

import pytest
import torch

from inrd import schedules
from inrd.denoisers.base import SamplingDefaults, StepSetting

GRID = tuple(schedules.ddpm().tolist())


def test_training_grid_is_pruned_by_the_recorded_spacing_rule():
    d = SamplingDefaults(rho="ddim", schedule="training", steps=20, train_sigmas=GRID, power=1.5, first=10)
    ddpm = schedules.ddpm()
    assert torch.equal(d.sigmas(), ddpm[schedules.prune_indices(1000, 20, 1.5, 10)])
    assert torch.equal(d.sigmas(7), ddpm[schedules.prune_indices(1000, 7, 1.5, 10)])
    # 995 levels above a_1 = 10 do not fit under T = 1000: a_1 moves down to the last index that leaves room
    assert torch.equal(d.sigmas(995), ddpm[schedules.prune_indices(1000, 995, 1.5, 6)])
    plain = SamplingDefaults(rho="canonical", schedule="training", steps=50, train_sigmas=GRID)
    assert torch.equal(plain.sigmas(), schedules.prune(ddpm, 50))  # diffusers' trailing spacing


def test_a_searched_subgrid_is_used_at_its_own_length_only():
    sub = (5, 40, 300, 1000)
    d = SamplingDefaults(rho="canonical", schedule="training", steps=4, train_sigmas=GRID, subgrid=sub)
    ddpm = schedules.ddpm()
    assert torch.equal(d.sigmas(), ddpm[[0, *sub]]) and torch.equal(d.sigmas(4), ddpm[[0, *sub]])
    assert torch.equal(d.sigmas(10), schedules.prune(ddpm, 10))


def test_bad_defaults_are_one_line_errors():
    with pytest.raises(ValueError, match="rho must be canonical, ind, ddim"):
        SamplingDefaults(rho="ddpm", schedule="training", steps=4, train_sigmas=GRID)
    with pytest.raises(ValueError, match="needs the network's train_sigmas"):
        SamplingDefaults(rho="ind", schedule="training", steps=4)
    with pytest.raises(ValueError, match="clip must be none, denoised or x0"):
        SamplingDefaults(rho="ind", schedule="geometric", steps=4, clip="yes")


def test_a_step_count_with_a_setting_of_its_own_gets_it():
    fifty = StepSetting(rho="canonical", clip="none", power=2.5, first=10)
    d = SamplingDefaults(rho="ddim", schedule="training", steps=20, train_sigmas=GRID, power=2.5, first=10, clip="x0",
                         by_steps=((50, fifty),))
    assert d.for_steps(20) is d
    d50 = d.for_steps(50)
    assert (d50.rho, d50.clip, d50.steps) == ("canonical", "none", 50)
    assert torch.equal(d50.sigmas(), schedules.ddpm()[schedules.prune_indices(1000, 50, 2.5, 10)])
    d7 = d.for_steps(7)  # no setting of its own: the same relaxation and clip, the grid pruned by the same rule
    assert (d7.rho, d7.clip) == ("ddim", "x0") and torch.equal(d7.sigmas(), schedules.ddpm()[schedules.prune_indices(1000, 7, 2.5, 10)])
