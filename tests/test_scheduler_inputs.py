"""inrd.scheduler_inputs through INRDScheduler: what a pipeline hands step / add_noise is refused in one line
where it would otherwise be coerced (broadcast, truncated, cast), and accepted alike in every integral form."""

from __future__ import annotations

import pytest
import torch

from inrd.diffusers import INRDScheduler

Z4 = torch.zeros(1, 1, 4, 4)


def _stepped(n: int = 10) -> INRDScheduler:
    sched = INRDScheduler()
    sched.set_timesteps(n)
    return sched


@pytest.mark.parametrize(
    "call, error, match",
    [
        # a 3-channel output on a 1-channel sample would broadcast into a 3-channel "sample"
        (lambda s: s.step(torch.zeros(1, 3, 4, 4), s.timesteps[0], Z4), ValueError, r"model_output has shape \(1, 3, 4, 4\) but sample \(1, 1, 4, 4\)"),
        (lambda s: s.step(torch.zeros(2, 1, 4, 4), s.timesteps[0], Z4), ValueError, "model_output has shape"),
        (lambda s: s.step(torch.zeros(1, 2, 4, 2), s.timesteps[0], Z4), ValueError, "model_output has shape"),
        # 999.7 is no training timestep: int() would silently step at 999
        (lambda s: s.step(Z4, 999.7, Z4), ValueError, "got 999.7.*no rounding"),
        (lambda s: s.step(Z4, torch.tensor(999.7), Z4), ValueError, "integer training timestep"),
        (lambda s: s.step(Z4, 998, Z4), ValueError, "not on the 10-step grid"),
        (lambda s: s.step(Z4, True, Z4), TypeError, "got a bool"),
        (lambda s: s.step(Z4, "999", Z4), TypeError, "integer training timestep"),
        (lambda s: s.step(torch.zeros(1, 1, 4, 4, dtype=torch.int64), s.timesteps[0], Z4), TypeError, "model_output must be a real floating tensor"),
        (lambda s: s.step(Z4, s.timesteps[0], torch.zeros(1, 1, 4, 4, dtype=torch.int32)), TypeError, "sample must be a real floating tensor"),
        (lambda s: s.step(torch.zeros(1, 1, 4, 4, dtype=torch.complex64), s.timesteps[0], Z4), TypeError, "model_output must be a real floating"),
        (lambda s: s.add_noise(Z4, Z4, torch.tensor([1000])), ValueError, r"in 0\.\.999, got 1000\.\.1000"),
        (lambda s: s.add_noise(Z4, Z4, torch.tensor([-1])), ValueError, r"in 0\.\.999"),
        (lambda s: s.add_noise(Z4, Z4, torch.tensor([499.5])), ValueError, "got 499.5"),
        (lambda s: s.add_noise(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), torch.tensor([1, 2, 3])), ValueError, "one per sample"),
        (lambda s: s.add_noise(Z4, torch.zeros(1, 3, 4, 4), torch.tensor([1])), ValueError, "noise has shape"),
        (lambda s: s.add_noise(torch.zeros(1, 1, 4, 4, dtype=torch.int64), Z4, torch.tensor([1])), TypeError, "original_samples must be"),
    ],
)
def test_step_and_add_noise_refuse_what_they_would_coerce(call, error, match):
    with pytest.raises(error, match=match) as info:
        call(_stepped())
    assert "\n" not in str(info.value)


def test_integral_timesteps_of_any_type_step_alike():
    """999, 999.0, tensor(999) and a numpy int name the same training timestep: the same step, bit for bit."""
    import numpy as np

    sched = _stepped()
    x, out = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    results = [sched.step(out, t, x, generator=torch.Generator().manual_seed(0)).prev_sample
               for t in (999, 999.0, torch.tensor(999), torch.tensor([999.0]), np.int64(999))]
    assert all(torch.equal(r, results[0]) for r in results)
    # learned-variance outputs (twice the channels) keep their first half
    doubled = torch.cat([out, torch.randn_like(out)], dim=1)
    assert torch.equal(sched.step(doubled, 999, x, generator=torch.Generator().manual_seed(0)).prev_sample, results[0])
    # add_noise accepts a python int, an integral float tensor and the last training timestep
    x0, z = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    assert torch.equal(sched.add_noise(x0, z, 999), sched.add_noise(x0, z, torch.tensor([999.0, 999.0])))
