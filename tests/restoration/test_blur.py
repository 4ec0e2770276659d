import numpy as np
import pytest
import torch

from inrd.choices import Boundary, names_of
from inrd.restoration.blur import Blur, BlurDownsampling
from inrd.restoration.physics import Downsampling, PeriodicBlur, gaussian_kernel

BOUNDARIES = names_of(Boundary)
# float64 rounding of a sum over ~1e4 products of O(1) terms, relative: a few 1e-16 per term's
# accumulation; 1e-12 leaves three orders of magnitude and still fails on any misplaced pixel (O(1e-3))
RTOL64 = 1e-12


def _kernel(shape, seed):
    k = torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return k / k.sum(dim=(-2, -1), keepdim=True)


def _pair(op, hw, channels=3, batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(batch, channels, *hw, generator=g, dtype=torch.float64)
    x = torch.rand(batch, channels, *op.image_shape(y.shape)[-2:], generator=g, dtype=torch.float64)
    return x, y


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("kshape", [(5, 5), (4, 7), (3, 6, 5)])  # odd, even x odd, per-channel (C, h, w)
def test_adjoint_is_exact(boundary, kshape):
    op = Blur(_kernel(kshape, 0), boundary)
    x, y = _pair(op, (19, 24))
    assert op.A(x).shape == y.shape and op.A_adjoint(y).shape == x.shape
    lhs, rhs = float((op.A(x) * y).sum()), float((x * op.A_adjoint(y)).sum())
    assert abs(lhs - rhs) <= RTOL64 * abs(lhs)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_prox_solves_its_optimality_condition(boundary):
    op = Blur(gaussian_kernel(1.6), boundary)
    x, y = _pair(op, (32, 40))
    z = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    gamma = torch.tensor([0.5, 40.0], dtype=torch.float64)  # one per image of the batch
    p = op.prox_l2(z, y, gamma)
    g = gamma.reshape(-1, 1, 1, 1)
    grad = op.A_adjoint(op.A(p) - y) + (p - z) / g  # gradient of the prox objective at p
    b = z + g * op.A_adjoint(y)
    # CG stops at ||b - (I + g A^T A) p|| <= tol ||b||, and that residual is g * grad: so per image
    # ||grad|| <= tol ||b|| / g (1 % slack for the rounding of the recursively updated residual)
    bound = op.tol * b.flatten(1).norm(dim=1) / gamma
    assert bool((grad.flatten(1).norm(dim=1) <= 1.01 * bound).all())
    if boundary != "periodic":
        assert op.cg_info["iters"] < op.max_iter and op.cg_info["residual"] <= op.tol
    # not a trivial answer: the prox moved z (it is neither z nor a least-squares solution)
    assert float((p - z).abs().max()) > 1e-3


def test_prox_reports_an_unconverged_solve():
    op = Blur(gaussian_kernel(1.6), "valid", tol=1e-12, max_iter=3)
    x, y = _pair(op, (16, 16), batch=1)
    op.prox_l2(x, y, 1e3)
    assert op.cg_info["iters"] == 3 and op.cg_info["residual"] > 1e-12


def test_periodic_is_periodic_blur():
    k = _kernel((3, 5, 4), 3)
    op, ref = Blur(k, "periodic"), PeriodicBlur(k)
    x, y = _pair(op, (20, 18))
    assert torch.allclose(op.A(x), ref.A(x), rtol=0, atol=1e-12)
    assert torch.allclose(op.A_adjoint(y), ref.A_adjoint(y), rtol=0, atol=1e-12)
    assert torch.allclose(op.prox_l2(x, y, 3.0), ref.prox_l2(x, y, 3.0), rtol=0, atol=1e-12)
    assert op.norm(x.shape) == pytest.approx(ref.norm(x.shape), abs=1e-12)


@pytest.mark.parametrize("kshape", [(7, 7), (4, 5)])
def test_valid_matches_scipy_and_deepinv(kshape):
    import deepinv as dinv
    from scipy.signal import convolve2d

    k = _kernel(kshape, 4)
    op = Blur(k, "valid")
    x, _ = _pair(op, (21, 17), channels=1, batch=1)
    y = op.A(x)
    ref = convolve2d(x[0, 0].numpy(), k.numpy(), mode="valid")
    assert y.shape[-2:] == ref.shape
    assert np.allclose(y[0, 0].numpy(), ref, rtol=0, atol=1e-13)
    theirs = dinv.physics.Blur(filter=k[None, None], padding="valid", device="cpu")
    assert torch.allclose(y, theirs.A(x), rtol=0, atol=1e-13)
    assert torch.allclose(op.A_adjoint(y), theirs.A_adjoint(y), rtol=0, atol=1e-13)


@pytest.mark.parametrize("boundary", ["reflect", "replicate"])
@pytest.mark.parametrize("kshape", [(7, 7), (4, 5)])
def test_padded_boundaries_match_deepinv(boundary, kshape):
    import deepinv as dinv

    k = _kernel(kshape, 5)
    op = Blur(k, boundary)
    x, y = _pair(op, (21, 17), channels=1, batch=1)
    theirs = dinv.physics.Blur(filter=k[None, None], padding=boundary, device="cpu")
    assert torch.allclose(op.A(x), theirs.A(x), rtol=0, atol=1e-13)
    assert torch.allclose(op.A_adjoint(y), theirs.A_adjoint(y), rtol=0, atol=1e-13)


def test_valid_model_is_blur_before_crop():
    """A scene blurred as a whole and then cropped is exactly A of the scene around the crop."""
    k = gaussian_kernel(1.6)
    scene = torch.rand(1, 3, 60, 60, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    blurred = PeriodicBlur(k).A(scene)[..., 20:40, 15:45]  # the crop is far from the periodic seam
    op = Blur(k, "valid")
    top, bottom, left, right = op.margin
    assert torch.allclose(op.A(scene[..., 20 - top:40 + bottom, 15 - left:45 + right]), blurred, rtol=0, atol=1e-13)


def test_shapes_init_and_crop():
    op = Blur(gaussian_kernel(1.6), "valid")  # 11 x 11: 5 rows / columns of margin on each side
    y = torch.rand(1, 3, 30, 40)
    assert op.margin == (5, 5, 5, 5) and op.image_shape(y.shape) == (1, 3, 40, 50)
    v = op.init(y)
    assert v.shape == (1, 3, 40, 50) and torch.equal(op.crop(v), y)
    assert torch.equal(v[..., 0, 5:-5], y[..., 0, :])  # margin = the edge pixels repeated
    same = Blur(gaussian_kernel(1.6), "reflect")
    assert same.image_shape(y.shape) == y.shape and torch.equal(same.crop(y), y) and torch.equal(same.init(y), y)
    assert op.A(v).dtype == torch.float32  # float64 inside, the input's dtype out


def test_norm():
    k = gaussian_kernel(1.6)
    shape = (1, 1, 48, 48)
    # valid = crop of the periodic blur on the same grid: ||A|| <= max |K| = 1, and close to it (a
    # large smooth image loses only its margin); power iteration approaches from below
    n = Blur(k, "valid").norm(shape)
    assert 0.95 < n <= 1.0 + 1e-12
    x = torch.rand(shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    for boundary in ("reflect", "replicate"):
        op = Blur(k, boundary)
        assert float(op.A(x).norm() / x.norm()) <= op.norm(shape) * (1 + 1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="boundary must be valid, reflect, replicate or periodic"):
        Blur(gaussian_kernel(1.0), "zeros")
    assert Blur(gaussian_kernel(1.0), "Reflect").boundary == "reflect"
    with pytest.raises(ValueError, match="larger than the 5x5 image"):
        Blur(gaussian_kernel(1.6), "valid").A(torch.rand(1, 1, 5, 5))
    with pytest.raises(ValueError, match="tol"):
        Blur(gaussian_kernel(1.0), tol=0)
    with pytest.raises(ValueError, match="channels"):
        Blur(torch.rand(3, 3, 3)).A(torch.rand(1, 2, 20, 20))
    with pytest.raises(ValueError, match="gamma"):
        op = Blur(gaussian_kernel(1.0))
        op.prox_l2(torch.rand(1, 1, 20, 20), torch.rand(1, 1, 14, 14), -1.0)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_super_resolution_adjoint_and_prox(boundary):
    op = BlurDownsampling(_kernel((5, 4), 8), 2, boundary)
    x, y = _pair(op, (12, 10))
    assert op.A(x).shape == y.shape and op.A_adjoint(y).shape == x.shape
    lhs, rhs = float((op.A(x) * y).sum()), float((x * op.A_adjoint(y)).sum())
    assert abs(lhs - rhs) <= RTOL64 * abs(lhs)
    p = op.prox_l2(x, y, 5.0)
    grad = op.A_adjoint(op.A(p) - y) + (p - x) / 5.0
    b = x + 5.0 * op.A_adjoint(y)
    assert float(grad.norm()) <= 1.01 * op.tol * float(b.norm()) / 5.0  # as in the blur's prox test
    assert op.init(y).shape == x.shape


def test_super_resolution_periodic_is_downsampling_and_valid_is_scipy():
    from scipy.signal import convolve2d

    k = _kernel((5, 5), 9)
    op, ref = BlurDownsampling(k, 2, "periodic"), Downsampling(k, 2)
    x, y = _pair(op, (8, 10))
    assert torch.allclose(op.A(x), ref.A(x), rtol=0, atol=1e-12)
    assert torch.allclose(op.A_adjoint(y), ref.A_adjoint(y), rtol=0, atol=1e-12)
    assert torch.allclose(op.prox_l2(x, y, 3.0), ref.prox_l2(x, y, 3.0), rtol=0, atol=1e-12)
    valid = BlurDownsampling(k, 2, "valid")
    x, _ = _pair(valid, (8, 10), channels=1, batch=1)
    want = convolve2d(x[0, 0].numpy(), k.numpy(), mode="valid")[::2, ::2]
    assert np.allclose(valid.A(x)[0, 0].numpy(), want, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="multiples of the factor"):
        valid.A(torch.rand(1, 1, 21, 20, dtype=torch.float64))
