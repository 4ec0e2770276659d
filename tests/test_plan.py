"""inrd.plan: the user's options over a denoiser's SamplingDefaults become one frozen SamplingPlan."""

import dataclasses
import json

import pytest
import torch

from inrd import relaxations, schedules
from inrd.denoisers.base import SamplingDefaults, StepSetting
from inrd.plan import SampleOptions, plan_sampling, schedule_sigmas

DDPM = tuple(schedules.ddpm().tolist())


class Net:
    """A stand-in network: only its declared defaults and range matter to the plan."""

    sigma_range = (DDPM[1], DDPM[-1])
    sampling_defaults = SamplingDefaults(rho="ddim", schedule="training", steps=20, train_sigmas=DDPM, power=2.5, first=10,
                                         clip="x0", channels=1, size=32, by_steps=((4, StepSetting(rho="canonical", subgrid=(3, 50, 400, 1000))),))

    def __call__(self, x, sigma):
        return x


class OffTheShelf:
    sigma_range = (0.0, 0.3)
    sampling_defaults = SamplingDefaults(rho="ind", schedule="geometric", steps=50, sigma_min=0.002, sigma_max=0.2, init=0.5, init_std=0.5)

    def __call__(self, x, sigma):
        return x


def test_no_option_gives_the_denoisers_own_setting():
    plan = plan_sampling(SampleOptions(), Net())
    assert plan.scheme.sigmas.equal(schedules.prune(torch.tensor(DDPM, dtype=torch.float64), 20, 2.5, 10))
    assert plan.scheme.rho == "ddim" and plan.clip == "x0" and plan.shape == (4, 1, 32, 32)
    assert plan.scheme.rhos[1:].equal(relaxations.relaxation(plan.scheme.sigmas, "ddim")[1:])
    assert plan.start.init == 0.5 and plan.start.init_std == 0.0


def test_a_step_count_with_its_own_setting_gets_it_and_any_other_keeps_the_rule():
    grid = torch.tensor(DDPM, dtype=torch.float64)
    four = plan_sampling(SampleOptions(steps=4), Net())  # the setting recorded for 4 steps: its subgrid and relaxation
    assert four.scheme.sigmas.equal(grid[[0, 3, 50, 400, 1000]]) and four.scheme.rho == "canonical" and four.clip == "none"
    seven = plan_sampling(SampleOptions(steps=7), Net())  # none recorded for 7: the 20-step rule, pruned to 7
    assert seven.scheme.sigmas.equal(schedules.prune(grid, 7, 2.5, 10)) and seven.scheme.rho == "ddim"


def test_user_choices_win_and_are_recorded_in_the_vocabularys_spelling():
    plan = plan_sampling(SampleOptions(rho="IND", clip="None", schedule="DDPM", steps=7, batch=2, seed=3, dtype="Float64"), Net())
    assert plan.scheme.rho == "ind" and plan.clip == "none" and plan.schedule == "ddpm" and plan.dtype == "float64"
    assert plan.scheme.sigmas.equal(schedules.prune(schedules.ddpm(), 7))
    rec = plan.record()
    assert rec["rhos"][0] is None and rec["rhos"][1:] == [1.0] * 7 and rec["gammas"][1:] == rec["sigmas"][1:]
    json.dumps(rec, allow_nan=False)  # strict JSON


def test_parametric_schedules_default_to_the_denoisers_range():
    plan = plan_sampling(SampleOptions(steps=3), OffTheShelf())
    assert plan.scheme.sigmas.equal(schedules.geometric(3, 0.002, 0.2)) and plan.start.init_std == 0.5
    karras = plan_sampling(SampleOptions(schedule="karras", steps=5), OffTheShelf())
    assert karras.scheme.sigmas[-1].item() == pytest.approx(0.3) and karras.scheme.sigmas[1].item() == pytest.approx(schedules.ddpm()[1].item())


@pytest.mark.parametrize("options, message", [
    (dict(schedule="cosine", sigma_min=0.1), "--sigma-min sets the lowest level of a parametric schedule"),
    (dict(schedule="training", sigma_max=1.0), "keeps its own levels"),
    (dict(schedule="geometric", power=2.0), "not 'geometric'"),
    (dict(schedule="ddpm", first=3), "without --steps"),
    (dict(schedule="geometric", sigma_max=200.0), "outside the denoiser's trained range"),
    (dict(rho=0.01, schedule="geometric", steps=5), "gamma_"),
    (dict(schedule="nope"), "unknown schedule 'nope'"),
    (dict(init="gaussian:1:2:3"), "at most two numbers"),
])
def test_options_that_do_not_fit_are_refused_before_any_run(options, message):
    with pytest.raises(ValueError, match=message):
        plan_sampling(SampleOptions(**options), Net())


@pytest.mark.parametrize("field, value, message", [
    ("steps", 0, "--steps must be an integer >= 1"), ("batch", 2.5, "--batch must be an integer"), ("size", -1, "--size"),
    ("seed", 1.5, "--seed must be >= 0"), ("seed", -1, "--seed must be >= 0"), ("rho", "banana", "unknown relaxation"),
    ("clip", "yes", "--clip must be"), ("dtype", "int8", "--dtype must be"), ("chunk", -3, "--chunk must be an integer >= 0"),
    ("power", 0.0, "--power must be"), ("sigma_min", float("nan"), "--sigma-min must be"), ("channels", 2, "--channels must be 1"),
    ("device", "meta", "cannot run inrd"), ("device", "tpu", "unknown device"), ("compile", False, "add --fast"),
])
def test_each_option_is_checked_on_its_own(field, value, message):
    with pytest.raises(ValueError, match=message):
        SampleOptions(**{field: value})


def test_options_and_plans_are_frozen():
    plan = plan_sampling(SampleOptions(), Net())
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.clip = "none"
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.options.steps = 3


def test_schedule_sigmas_prunes_a_file_of_sigmas(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("0 0.1 0.2 0.4 0.8\n")
    assert schedule_sigmas(str(f), 2, None, None, OffTheShelf()).tolist() == [0.0, 0.2, 0.8]
