"""inrd.experiments.quality: the per-sample-set quality numbers and their real-vs-real floors."""

import pytest
import torch

from inrd.experiments.quality import real_crops, real_floors, sample_quality
from inrd.metrics import pixel_w1


def test_sample_quality_of_the_reference_itself_is_perfect_and_clamping_is_counted():
    ref = real_crops("ref", 8)
    q = sample_quality(ref, ref)
    assert q["swd"] == 0 and q["spectrum"] == 0 and q["pixel_w1"] == 0 and q["out_of_range_fraction"] == 0
    assert q["std_ratio"] == pytest.approx(1, abs=1e-12)
    # a contrast of 3 about 0.5: raw std x 3 exactly; pixels beyond [0, 1] are counted, then clamped away
    x = 3 * (ref.double() - 0.5) + 0.5
    q = sample_quality(x, ref)
    assert q["std_ratio"] == pytest.approx(3, rel=1e-12)
    assert q["out_of_range_fraction"] == float(((x < -1 / 255) | (x > 1 + 1 / 255)).float().mean()) > 0
    assert q["pixel_w1"] == pytest.approx(pixel_w1(x.clamp(0, 1), ref), abs=1e-15)


def test_real_floors_are_seeded_and_positive():
    ref = real_crops("ref", 8)
    f = real_floors(ref, 8, draws=2)
    assert f == real_floors(ref, 8, draws=2)  # same crops, same numbers
    for key in ("swd", "spectrum", "pixel_w1"):
        assert f[key]["mean"] > 0 and len(f[key]["draws"]) == 2
    assert torch.equal(real_crops("floor", 4, 32, 2000), real_crops("floor", 4, 32, 2000))
