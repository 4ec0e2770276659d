"""Patch sliced-Wasserstein distance and nearest-crop distance (inrd.metrics), against values known
in closed form."""

import math

import pytest
import torch

from inrd.metrics import nearest_crop_distance, patch_swd, swd_directions, wasserstein2_1d


def _rand(n, seed, shape=(1, 32, 32)):
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))


def test_wasserstein2_1d_closed_forms():
    # equal sizes: W2^2 = mean of squared differences of the sorted values
    a = torch.tensor([[3.0], [0.0], [1.0]])
    b = torch.tensor([[1.0], [2.0], [5.0]])
    assert wasserstein2_1d(a, b).item() == pytest.approx(math.sqrt((1 + 1 + 4) / 3), rel=1e-15)
    # unequal sizes: Q_a = 0 on [0, 1/2), 1 on [1/2, 1]; Q_b = 0, 1/2, 1 on thirds;
    # (Q_a - Q_b)^2 = 1/4 on [1/3, 2/3) and 0 elsewhere, so W2^2 = 1/12
    w = wasserstein2_1d(torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [0.5], [1.0]]))
    assert w.item() == pytest.approx(math.sqrt(1 / 12), rel=1e-14)
    # a point mass against a two-point law: W2^2 = mean of squared distances
    w = wasserstein2_1d(torch.tensor([[0.0]]), torch.tensor([[1.0], [3.0]]))
    assert w.item() == pytest.approx(math.sqrt(5), rel=1e-14)


def test_swd_of_a_set_with_itself_is_zero_and_is_permutation_invariant():
    x = _rand(6, 0)
    assert patch_swd(x, x)["swd"] == 0.0
    assert patch_swd(x, x[torch.randperm(6)])["swd"] == 0.0  # sets, not sequences


def test_swd_is_symmetric_and_homogeneous():
    x, y = _rand(6, 1), _rand(9, 2)
    dxy, dyx = patch_swd(x, y), patch_swd(y, x)
    assert dxy["swd"] > 0
    assert dxy["swd"] == pytest.approx(dyx["swd"], rel=1e-12)  # same terms, summed in another order
    # W2 is 1-homogeneous and the patches/pooling are linear: SWD(a x, a y) = a SWD(x, y)
    assert patch_swd(4 * x, 4 * y)["swd"] == pytest.approx(4 * dxy["swd"], rel=1e-12)


def test_swd_of_a_grey_level_shift_is_the_projected_shift():
    """y = x + mu: every 1-D projection shifts by mu <theta, 1>, so per scale SW2 = |mu| sqrt(mean_k <theta_k, 1>^2)
    exactly (average pooling keeps the shift); E <theta, 1>^2 = |1|^2 / d = 1 for theta uniform on the sphere."""
    x = torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(3))  # N(0, 1) pixels
    mu, K = 0.3, 512
    d = patch_swd(x, x + mu, projections=K)
    m = swd_directions(49, K).sum(0).pow(2).mean().item()
    for v in d["per_scale"]:
        # x + mu is rounded in float32 (relative error ~6e-8 per pixel), hence rel=1e-6
        assert v == pytest.approx(mu * math.sqrt(m), rel=1e-6)
    # m is a Monte-Carlo mean of K draws of d <theta, e>^2 ~ d Beta(1/2, (d-1)/2): mean 1, variance
    # 2 (d-1)/(d+2) < 2; so sqrt(m) = 1 within 4 standard deviations sqrt(2/K)/2 (delta method)
    assert abs(math.sqrt(m) - 1) < 4 * math.sqrt(2 / K) / 2


def test_swd_between_gaussian_patch_sets_differing_by_a_shift():
    """Independent N(0,1) and N(mu,1) image sets. Per direction, the triangle inequality for W2 gives
    |W2(x, y' + mu) - |mu <theta,1>|| <= W2(x, y'); Minkowski over directions turns it into
    |SWD(x, y' + mu) - |mu| sqrt(m)| <= SWD(x, y') at every scale: a bound, no tolerance to guess."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(8, 1, 32, 32, generator=g)
    y = torch.randn(8, 1, 32, 32, generator=g)
    m = swd_directions(49, 512).sum(0).pow(2).mean().item()
    for mu in (0.1, 1.0):
        shifted, floor = patch_swd(x, y + mu), patch_swd(x, y)
        for s, f in zip(shifted["per_scale"], floor["per_scale"]):
            assert abs(s - mu * math.sqrt(m)) <= f + 1e-6  # + float32 rounding of y + mu, as above
        # and the sampling floor itself is small next to mu = 1 (measured 0.02-0.2 over the three scales)
    assert floor["swd"] < 0.3


def _stripes(n, g):
    """Vertical 0/1 stripes of period 4 (two columns on, two off) with random phases."""
    phase = torch.randint(0, 4, (n, 1, 1, 1), generator=g)
    j = torch.arange(32).reshape(1, 1, 1, 32)
    return (((j + phase) % 4) < 2).float().expand(n, 1, 32, 32).contiguous()


def test_swd_detects_a_change_of_texture_that_keeps_the_histogram():
    """Same pixel values, different spatial arrangement (a pixel-histogram distance would be 0)."""
    g = torch.Generator().manual_seed(5)
    stripes, other_stripes = _stripes(16, g), _stripes(16, g)
    flat = stripes.flatten()
    shuffled = flat[torch.randperm(flat.numel(), generator=g)].reshape(stripes.shape)  # same histogram
    # full-resolution patches only: pooling 2 x 2 maps odd phases to a flat 0.5, so at coarser scales the
    # other set differs through how often each phase occurs. Measured: 0.32 against 0.045.
    assert patch_swd(stripes, shuffled, scales=1)["swd"] > 3 * patch_swd(stripes, other_stripes, scales=1)["swd"]


def test_swd_subsamples_patches_reproducibly():
    x, y = _rand(8, 6), _rand(8, 7)
    a = patch_swd(x, y, max_patches=500, seed=3)
    assert a["patches"][0] == (500, 500)
    assert a == patch_swd(x, y, max_patches=500, seed=3)


def test_swd_rejects_bad_inputs():
    x = _rand(2, 0)
    with pytest.raises(ValueError, match="channels"):
        patch_swd(x, torch.rand(2, 3, 24, 24))
    with pytest.raises(ValueError, match="too small"):
        patch_swd(torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16))  # 16 / 4 = 4 < 7
    with pytest.raises(ValueError, match="NaN"):
        patch_swd(x, x * float("nan"))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        patch_swd(x[0], x)


def test_nearest_crop_distance_finds_crops_and_measures_offsets():
    images = torch.rand(2, 1, 40, 50, generator=torch.Generator().manual_seed(8))
    crops = torch.stack([images[1, :, 5:21, 7:23], images[0, :, 24:40, 34:50]])  # two exact 16x16 crops
    d, where = nearest_crop_distance(crops, images)
    assert d.max().item() < 1e-6  # float64 |x|^2 + |c|^2 - 2<x,c> cancels to ~1e-13
    assert where.tolist() == [[1, 5, 7], [0, 24, 34]]
    # a constant offset c: RMS distance to the source crop is exactly |c|; other crops of an i.i.d.
    # uniform image are ~sqrt(2/12) = 0.41 away, far more than c
    d, where = nearest_crop_distance(crops + 0.05, images)
    assert d.tolist() == pytest.approx([0.05, 0.05], abs=1e-6)  # crops + 0.05 is rounded in float32
    assert where.tolist() == [[1, 5, 7], [0, 24, 34]]
    with pytest.raises(ValueError, match="do not fit"):
        nearest_crop_distance(torch.rand(1, 1, 41, 16), images)
