"""inrd.guards: what is checked before a sampling run writes anything (memory, dtype, image shape)."""

import pytest
import torch
from torch import nn

from inrd import guards


class Conv(nn.Module):
    """A network with one 64-channel convolution at full resolution, taking only 1-channel images."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 64, 3, padding=1)
        self.out = nn.Conv2d(64, 1, 3, padding=1)

    def forward(self, x, sigma):
        return x - self.out(self.conv(x))


def test_the_estimate_counts_the_sampler_buffers_and_the_widest_feature_maps():
    # six float32 image buffers of the batch + four 64-channel float32 maps per image of one network call
    assert guards.estimate_bytes(Conv(), (8, 1, 32, 32), torch.float32) == 6 * 8 * 32 * 32 * 4 + 4 * 8 * 64 * 32 * 32 * 4
    assert guards.estimate_bytes(Conv(), (8, 1, 32, 32), torch.float32, chunk=2) == 6 * 8 * 32 * 32 * 4 + 4 * 2 * 64 * 32 * 32 * 4
    assert guards.estimate_bytes(lambda x, s: x, (8, 1, 32, 32), torch.float64) == 6 * 8 * 32 * 32 * 8


def test_a_run_that_cannot_fit_is_refused_with_the_options_that_lower_it():
    guards.check_memory(Conv(), (1, 1, 8, 8), torch.float32)
    with pytest.raises(ValueError, match=r"batch 64 of 1x65536x65536 images needs at least .*lower --batch or --size"):
        guards.check_memory(Conv(), (64, 1, 65536, 65536), torch.float32)
    with pytest.raises(ValueError, match="with its outputs needs at least .*or --display"):
        guards.check_memory(Conv(), (1, 1, 8, 8), torch.float32, output_bytes=2**60)


def test_match_dtype_runs_a_float32_network_on_float64_iterates():
    net = Conv().eval()
    D = guards.match_dtype(net, torch.float64)
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert D(x, 0.1).dtype == torch.float64 and torch.equal(D(x, 0.1), net(x.float(), 0.1).double())
    assert guards.match_dtype(net, torch.float32) is net


def test_probe_shape_turns_a_shape_the_network_cannot_take_into_one_line():
    guards.probe_shape(Conv(), (2, 1, 8, 8), torch.tensor([0.0, 0.1]), "cpu", torch.float32, "conv")
    with pytest.raises(ValueError, match=r"^conv cannot denoise images of shape \(3, 8, 8\) \(.*\); choose --size/--channels"):
        guards.probe_shape(Conv(), (2, 3, 8, 8), torch.tensor([0.0, 0.1]), "cpu", torch.float32, "conv")
    with pytest.raises(ValueError, match="a denoiser must keep the shape"):
        guards.probe_shape(lambda x, s: x[..., :4], (1, 1, 8, 8), torch.tensor([0.0, 0.1]), "cpu", torch.float32, "crop")
