"""diffusers' scheduler contract (the checks of its ``SchedulerCommonTest``), run on INRDScheduler.

Written for this project from the contract, not copied. The same checks, with the legitimate
differences, each argued where it is made:

* ``step`` before ``set_timesteps`` is refused (one-line ValueError), where DDPMScheduler steps on all T
  training timesteps: INRD's rho_t and gamma_t depend on the grid (eq. 20 couples consecutive levels),
  so there is no step without one. The checks call ``set_timesteps`` first.
* ``thresholding=True`` and ``rescale_betas_zero_snr=True`` are refused: dynamic thresholding is not
  the paper's D, and zero terminal SNR means sigma_T = inf, which INRD cannot start from.
* Config keys of other schedulers (``variance_type``, ``timestep_spacing``, ``steps_offset``, ...) are
  ignored by ``from_config`` but refused by the constructor (a TypeError, as any Python class);
  diffusers' checks pass them to the constructor, ours go through ``from_config``.
* Betas outside (0, 1) (diffusers' ``beta_end=2`` case) are refused: a beta >= 1 has no noise level;
  so is ``beta_end=0.2`` over 1000 steps, whose alphabar_T underflows to 0 in float32 (sigma_T = inf):
  that case runs here with T = 100.
"""

from __future__ import annotations

import inspect
import math
import warnings

import diffusers
import numpy as np
import pytest
import torch
from diffusers.utils.import_utils import DummyObject

from inrd.diffusers import INRDScheduler

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def dummy_sample(seed: int = 0) -> torch.Tensor:
    """diffusers' dummy sample: (4, 3, 8, 8) uniform values."""
    return torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def save_and_load(sched, tmp_path):
    sched.save_config(tmp_path)
    return INRDScheduler.from_pretrained(tmp_path)


def both_step(sched, loaded, n, t, sample, residual):
    sched.set_timesteps(n)
    loaded.set_timesteps(n)
    a = sched.step(residual, t, sample, generator=torch.manual_seed(0)).prev_sample
    b = loaded.step(residual, t, sample, generator=torch.manual_seed(0)).prev_sample
    return a, b


CONFIGS = [
    {}, {"num_train_timesteps": 1}, {"num_train_timesteps": 5}, {"num_train_timesteps": 100},
    {"beta_start": 0.0001, "beta_end": 0.002}, {"beta_start": 0.001, "beta_end": 0.02}, {"beta_start": 0.01, "beta_end": 0.2, "num_train_timesteps": 100},
    {"beta_schedule": "squaredcos_cap_v2"}, {"beta_schedule": "scaled_linear"}, {"beta_schedule": "sigmoid"},
    {"clip_sample": True}, {"clip_sample": True, "use_clipped_model_output": True, "clip_sample_range": 0.5},
    {"prediction_type": "sample"}, {"prediction_type": "v_prediction"},
    {"rho": "ind"}, {"rho": "ddim"}, {"rho": 0.7}, {"ddim_eta": 0.5}, {"timestep_power": 2.5, "timestep_first": 10},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_save_config_round_trip_steps_identically(config, tmp_path):
    """check_over_configs / test_from_save_pretrained: a scheduler reloaded from its saved config steps
    bit for bit like the original, at the first and the last timestep of the grid."""
    sched = INRDScheduler(**config)
    loaded = save_and_load(sched, tmp_path)
    n = min(10, sched.config.num_train_timesteps)
    sample = dummy_sample()
    sched.set_timesteps(n)
    for t in (sched.timesteps[0], sched.timesteps[-1]):
        a, b = both_step(sched, loaded, n, t, sample, 0.1 * sample)
        assert torch.equal(a, b)


@pytest.mark.parametrize("t", [0, 500, 999])
def test_every_training_timestep_steps_alike_after_reload(t, tmp_path):
    """check_over_forward(time_step=t) of DDPM's test_time_indices, on the full 1000-step grid."""
    sched = INRDScheduler()
    a, b = both_step(sched, save_and_load(sched, tmp_path), 1000, t, dummy_sample(), 0.1 * dummy_sample())
    assert torch.equal(a, b)


def test_from_pretrained_keeps_the_config(tmp_path):
    sched = INRDScheduler.from_config(diffusers.DDPMScheduler().config, rho=0.7, prediction_type="v_prediction")
    sched.save_pretrained(tmp_path)
    loaded = INRDScheduler.from_pretrained(tmp_path)
    config = dict(sched.config)
    config.pop("_use_default_values", None)
    assert config == loaded.config
    assert loaded.config.relaxation == 0.7  # a rho= given through from_config is never taken for a default


@pytest.mark.parametrize("rho", ["ind", 0.7])
def test_compatibles_round_trip_their_configs(rho):
    """test_compatibles, for every compatible (diffusers checks only the last one): C.from_config(inrd.config)
    builds, and INRDScheduler.from_config of C's config gives back the same config; keys only C has are
    no INRD argument. Schedulers needing a backend not installed here (torchsde) are skipped."""
    sched = INRDScheduler(rho=rho, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", clip_sample=True)
    init_keys = set(inspect.signature(INRDScheduler.__init__).parameters)
    checked = 0
    for cls in sched.compatibles:
        assert cls is not None
        if isinstance(cls, DummyObject):  # a placeholder for a scheduler whose backend is missing
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = cls.from_config(sched.config)
        back = INRDScheduler.from_config(other.config)
        # diffusers' own bookkeeping key lists the defaulted arguments in set order (it varies with PYTHONHASHSEED)
        mine, theirs = dict(sched.config), {k: v for k, v in back.config.items() if k in sched.config}
        assert set(theirs.pop("_use_default_values", [])) == set(mine.pop("_use_default_values", [])), cls.__name__
        assert theirs == mine, cls.__name__
        assert not ({k for k in back.config if k not in sched.config} & init_keys), cls.__name__
        checked += 1
    assert checked >= 14  # the 15 DDPM-family schedulers of diffusers, DPMSolverSDE needs torchsde


def test_edm_rho_is_not_inrd_rho():
    """EDM's config key ``rho`` is Karras' exponent: it neither becomes INRD's relaxation nor receives it."""
    assert INRDScheduler.from_config(diffusers.EDMEulerScheduler(rho=7.0).config).config.relaxation == "canonical"
    assert diffusers.EDMEulerScheduler.from_config(INRDScheduler(rho=0.7).config).config.rho == 7.0


def test_ddpm_config_and_back():
    """DDPMScheduler.from_config(inrd.config) and back: the training schedule travels, the relaxation stays."""
    inrd = INRDScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, rho="ind")
    ddpm = diffusers.DDPMScheduler.from_config(inrd.config)
    assert torch.equal(ddpm.alphas_cumprod.double(), inrd.alphas_cumprod)
    back = INRDScheduler.from_config(ddpm.config)
    assert back.config.relaxation == "ind" and torch.equal(back.alphas_cumprod, inrd.alphas_cumprod)


@pytest.mark.parametrize("n", [50, 7, 1])
def test_step_shape_and_outputs_equivalence(n):
    """test_step_shape and test_scheduler_outputs_equivalence: two timesteps give samples of the input's
    shape, and return_dict=False returns the same tensors as the output object (bit for bit)."""
    sched = INRDScheduler()
    sched.set_timesteps(n)
    sample = dummy_sample()
    for t in sched.timesteps[:2]:
        out = sched.step(0.1 * sample, t, sample, generator=torch.manual_seed(0))
        prev, x0 = sched.step(0.1 * sample, t, sample, generator=torch.manual_seed(0), return_dict=False)
        assert out.prev_sample.shape == sample.shape == out.pred_original_sample.shape
        assert torch.equal(prev, out.prev_sample) and torch.equal(x0, out.pred_original_sample)


def test_public_api_values():
    """test_scheduler_public_api, with the values: init_noise_sigma is 1 (x_T ~ N(0, I), as DDPM), the
    network input is the iterate itself, order is 1 (one network call per step), len() is T."""
    sched = INRDScheduler()
    sample = dummy_sample()
    assert sched.init_noise_sigma == 1.0 and sched.order == 1 and len(sched) == 1000
    assert sched.scale_model_input(sample, 0.0) is sample
    ddpm = diffusers.DDPMScheduler()
    assert torch.equal(sched.betas, ddpm.betas) and torch.equal(sched.alphas, ddpm.alphas)


@pytest.mark.parametrize("device", DEVICES)
def test_timesteps_and_add_noise_on_a_device(device):
    """test_add_noise_device, and set_timesteps(device=...): timesteps are int64 on the device and equal
    DDPMScheduler(trailing)'s; add_noise on the device is DDPMScheduler's forward process."""
    sched, ddpm = INRDScheduler(), diffusers.DDPMScheduler(timestep_spacing="trailing")
    sched.set_timesteps(50, device=device)
    ddpm.set_timesteps(50, device=device)
    assert sched.timesteps.dtype == torch.int64 and sched.timesteps.device.type == device
    assert torch.equal(sched.timesteps, ddpm.timesteps)
    sample = dummy_sample().to(device)
    noise = torch.randn(sample.shape, generator=torch.Generator().manual_seed(1)).to(device)
    t = sched.timesteps[5][None]
    noised = sched.add_noise(sample, noise, t)
    assert noised.device.type == device
    eps = torch.finfo(torch.float32).eps
    assert (noised - ddpm.add_noise(sample, noise, t)).abs().max() <= 4 * eps * (sample.abs().max() + noise.abs().max())


def test_kwargs_are_declared():
    """test_deprecated_kwargs: **kwargs in __init__ exactly when _deprecated_kwargs is not empty (here:
    ``rho``, the paper's name of ``relaxation``, which from_config passes through)."""
    has_kwargs = "kwargs" in inspect.signature(INRDScheduler.__init__).parameters
    assert has_kwargs and INRDScheduler._deprecated_kwargs == ["rho"]
    with pytest.raises(TypeError, match="unexpected arguments variance_type"):
        INRDScheduler(variance_type="fixed_small")
    assert INRDScheduler.from_config({"variance_type": "fixed_small"}, rho="ind").config.relaxation == "ind"
    # a config saved when the relaxation was stored as "rho" still loads it
    assert INRDScheduler.from_config({"_class_name": "INRDScheduler", "rho": "ind"}).config.relaxation == "ind"


def test_trained_betas_round_trip(tmp_path):
    sched = INRDScheduler(num_train_timesteps=2, trained_betas=np.array([0.1, 0.3]))
    sched.save_pretrained(tmp_path)
    assert INRDScheduler.from_pretrained(tmp_path).betas.tolist() == sched.betas.tolist()
    with pytest.raises(ValueError, match="pass num_train_timesteps=2"):  # diffusers' test keeps T = 1000 with 2 betas
        INRDScheduler(trained_betas=np.array([0.1, 0.3]))


def test_getattr_is_correct():
    """Attributes, config entries (FutureWarning when read as attributes) and a missing attribute's message."""
    sched = INRDScheduler()
    sched.dummy_attribute = 5
    sched.register_to_config(test_attribute=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # plain attributes and methods are read without a warning
        assert sched.dummy_attribute == 5 and callable(sched.save_pretrained)
    with pytest.warns(FutureWarning):
        assert sched.test_attribute == 5
    with pytest.raises(AttributeError) as info:
        _ = sched.does_not_exist
    assert str(info.value) == "'INRDScheduler' object has no attribute 'does_not_exist'"


def test_refused_configs_are_one_line():
    for kw, match in [({"thresholding": True}, "thresholding"), ({"rescale_betas_zero_snr": True}, "sigma_T = inf"),
                      ({"beta_start": 0.1, "beta_end": 2}, r"betas must lie in \(0, 1\)"),
                      ({"beta_start": 0.01, "beta_end": 0.2}, "reaches alphabar = 0 in float32")]:
        with pytest.raises(ValueError, match=match) as info:
            INRDScheduler(**kw)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="set_timesteps"):
        INRDScheduler().step(torch.zeros(1, 1, 2, 2), 999, torch.zeros(1, 1, 2, 2))


def test_gamma_is_ddpm_posterior_variance():
    """DDPM's test_variance (its _get_variance(t) at 0, 487, 999: 0, 0.00979, 0.02), read off INRD's canonical
    gamma in the VP frame: abar_{t-1} gamma_{t-1}^2 (in [-1, 1] units) is DDPM's fixed_small variance."""
    sched = INRDScheduler()
    sched.set_timesteps(1000)
    variance = lambda t: float(sched.abar[t]) * float(sched.gammas[t]) ** 2  # noqa: E731  step at timestep t = level t + 1
    for t, expected in [(0, 0.0), (487, 0.00979), (999, 0.02)]:
        assert abs(variance(t) - expected) < 1e-5
    assert math.isclose(variance(487), float(diffusers.DDPMScheduler()._get_variance(487)), rel_tol=1e-5)
