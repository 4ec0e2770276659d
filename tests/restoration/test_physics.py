import numpy as np
import pytest
import torch

from inrd import restoration as R
from inrd.io import load_image

NU = 0.01


def test_gaussian_kernel():
    k = R.gaussian_kernel(1.6)
    assert k.shape == (11, 11)  # 2 ceil(3 * 1.6) + 1
    assert k.sum().item() == pytest.approx(1.0, abs=1e-14)
    assert torch.equal(k, k.flip(0)) and torch.equal(k, k.T)
    assert R.load_kernel("gaussian:1.6").equal(k)
    assert R.load_kernel("gaussian:2:7").shape == (7, 7)
    for bad in ("gaussian:0", "gaussian:-1", "gaussian:abc", "gaussian:nan"):
        with pytest.raises(ValueError, match="gaussian|std"):
            R.load_kernel(bad)


def test_huge_and_oversized_kernels_are_refused_before_allocation():
    with pytest.raises(ValueError, match="GiB"):  # 6000001^2 float64 = 262 TiB: refused up front
        R.load_kernel("gaussian:1e6")
    with pytest.raises(ValueError, match="larger than the 32x32 image"):
        R.load_kernel("gaussian:1e6", max_size=(32, 32))
    with pytest.raises(ValueError, match="larger than the 16x16 image"):
        R.load_kernel(torch.ones(17, 3), max_size=(16, 16))


def test_kernel_files_and_sum(tmp_path):
    k = np.random.default_rng(0).random((3, 4))
    np.save(tmp_path / "k.npy", k)
    np.savetxt(tmp_path / "k.txt", k)
    assert torch.allclose(R.load_kernel(tmp_path / "k.npy"), torch.from_numpy(k))
    assert torch.allclose(R.load_kernel(str(tmp_path / "k.txt")), torch.from_numpy(k), atol=1e-15)
    (tmp_path / "bad.txt").write_text("1 2\n3 nan\n")
    with pytest.raises(ValueError, match="NaN"):
        R.load_kernel(tmp_path / "bad.txt")
    (tmp_path / "ragged.txt").write_text("1 2\n3\n")
    with pytest.raises(ValueError, match="rows of different lengths"):
        R.load_kernel(tmp_path / "ragged.txt")
    with pytest.raises(ValueError, match="neither"):
        R.load_kernel(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match="all zeros"):
        R.PeriodicBlur(torch.zeros(3, 3))
    kt = torch.from_numpy(k)
    with pytest.raises(ValueError, match=f"sums to {k.sum():.6g}, not 1"):
        R.check_kernel_sum(kt)
    assert R.check_kernel_sum(kt, normalize=True).sum().item() == pytest.approx(1.0, abs=1e-14)
    g = R.gaussian_kernel(1.0)
    assert R.check_kernel_sum(g) is g  # a kernel summing to 1 passes unchanged


def test_periodic_blur_is_circular_convolution_centred():
    # Oracle: scipy.ndimage.convolve with wrap-around, which centres the kernel at (h // 2, w // 2).
    from scipy import ndimage

    g = torch.Generator().manual_seed(1)
    k = torch.rand(4, 5, generator=g, dtype=torch.float64)  # even size and asymmetric: tests the centring
    x = torch.rand(2, 3, 16, 12, generator=g, dtype=torch.float64)
    ref = np.stack([[ndimage.convolve(x[b, c].numpy(), k.numpy(), mode="wrap") for c in range(3)] for b in range(2)])
    assert torch.allclose(R.PeriodicBlur(k).A(x), torch.from_numpy(ref), atol=1e-13)
    d = torch.zeros(5, 5, dtype=torch.float64)
    d[2, 2] = 1
    assert torch.allclose(R.PeriodicBlur(d).A(x), x, atol=1e-14)  # a centred Dirac is the identity


def test_periodic_blur_and_downsampling_match_deepinv():
    import deepinv as dinv

    k = R.gaussian_kernel(1.6)
    x = load_image("astronaut", size=32)
    ref = dinv.physics.BlurFFT(img_size=(3, 32, 32), filter=k[None, None].float())
    assert torch.allclose(R.PeriodicBlur(k).A(x), ref.A(x), atol=1e-5)  # deepinv computes in float32
    # super-resolution: deepinv's Downsampling (circular padding) keeps the same pixel of each 2x2 block
    ref = dinv.physics.Downsampling(img_size=(3, 32, 32), filter=k[None, None].float(), factor=2, padding="circular")
    assert torch.allclose(R.Downsampling(k, 2).A(x), ref.A(x), atol=1e-5)


def _operators():
    g = torch.Generator().manual_seed(2)
    k = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)  # one kernel per channel, not symmetric
    mask = (torch.rand(1, 1, 20, 16, generator=g) > 0.5).float()
    return [R.PeriodicBlur(k), R.Downsampling(k, 2), R.Downsampling(R.gaussian_kernel(1.0), 4), R.Inpainting(mask), R.Denoising()]


@pytest.mark.parametrize("op", _operators(), ids=repr)
@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_adjoint_prox_and_norm(op, dtype, rtol):
    # <A x, y> = <x, A^T y>: exact up to rounding (float32: the output's rounding, a few 1e-7 relative)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 20, 16, generator=g, dtype=torch.float64).to(dtype)
    y = torch.randn(op.A(x).shape, generator=g, dtype=torch.float64).to(dtype)
    lhs = (op.A(x).double() * y.double()).sum()
    rhs = (x.double() * op.A_adjoint(y).double()).sum()
    assert abs(lhs - rhs) <= rtol * op.A(x).double().norm() * y.double().norm()
    # prox_l2 solves (I + gamma A^T A) p = z + gamma A^T y (float64 reference)
    z, gamma = torch.randn(x.shape, generator=g, dtype=torch.float64), 3.7
    yd = y.double()
    p = op.prox_l2(z, yd, gamma)
    assert torch.allclose(p + gamma * op.A_adjoint(op.A(p)), z + gamma * op.A_adjoint(yd), atol=1e-11)
    # ||A|| in closed form agrees with power iteration on A^T A

    class Generic:
        A, A_adjoint = op.A, op.A_adjoint

    assert R.operator_norm(Generic(), z, iters=500) == pytest.approx(op.norm(z.shape), rel=1e-5)


def test_operator_input_errors():
    with pytest.raises(ValueError, match="larger than the 16x16 image"):
        R.PeriodicBlur(R.gaussian_kernel(3.0)).A(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="multiples of the factor"):
        R.Downsampling(R.gaussian_kernel(1.0), 4).A(torch.rand(1, 1, 30, 32))
    with pytest.raises(ValueError, match="factor must be 2, 3 or 4"):
        R.Downsampling(R.gaussian_kernel(1.0), 5)
    with pytest.raises(ValueError, match="mask is 8x8 but the image is 16x16"):
        R.Inpainting(torch.ones(8, 8)).A(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="observes no pixel"):
        R.Inpainting(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="mask is 8x8 but the observation is 9x9"):
        R.load_mask(torch.ones(8, 8), shape=(9, 9))


def test_mask_image_file(tmp_path):
    from PIL import Image

    a = np.zeros((6, 8), np.uint8)
    a[:, :3] = 255
    a[0, 5] = 100  # a gray level below 1/2 counts as missing
    Image.fromarray(a).save(tmp_path / "m.png")
    m = R.load_mask(tmp_path / "m.png", shape=(6, 8))
    assert m.shape == (1, 1, 6, 8) and m.sum().item() == 18 and m[0, 0, :, :3].all()


def test_inits():
    y = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    m = torch.zeros(8, 8)
    m[:, :4] = 1
    x0 = R.Inpainting(m).init(y * m)
    assert torch.allclose(x0[..., 4:], (y[..., :4]).mean().expand(1, 1, 8, 4))  # holes: the observed mean
    up = R.Downsampling(R.gaussian_kernel(1.0), 2).init(torch.full((1, 1, 4, 4), 0.3))
    assert up.shape == (1, 1, 8, 8) and torch.allclose(up, torch.full_like(up, 0.3), atol=1e-6)


def test_estimate_noise():
    # white noise on a smooth image: the Haar-MAD estimate recovers nu; sampling error of a median of
    # n = 4096 half-normal values ~ 1.25 / sqrt(n) ~ 2 % (3 standard errors: 6 %)
    x = load_image("camera")[..., 100:228, 200:328].contiguous()
    op = R.PeriodicBlur(R.gaussian_kernel(1.6))
    for nu in (0.01, 0.05):
        assert R.estimate_noise(R.observe(x, op, nu, seed=1)) == pytest.approx(nu, rel=0.06)
    y = R.observe(x, op, 0.05, seed=2)
    mask = torch.ones(1, 1, 128, 128)
    mask[..., ::3, :] = 0  # missing rows: only fully observed 2x2 blocks count
    assert R.estimate_noise(y * mask, mask) == pytest.approx(0.05, rel=0.08)  # 2736 blocks: 3 s.e. ~ 7 %
    # without blur the image's edges count as noise: biased upwards (measured 0.0559 for nu = 0.05)
    assert R.estimate_noise(R.observe(x, R.Denoising(), 0.05, seed=2) * mask, mask) > 0.05
    bad = y.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        R.estimate_noise(bad)


def test_npy_files_that_are_not_numeric_arrays_are_named(tmp_path):
    """A text file named .npy, a truncated .npy, a pickled object array, a complex array: one line naming the
    file, never numpy's allow_pickle advice, never a silently dropped imaginary part."""
    import numpy as np

    (tmp_path / "text.npy").write_text("0 1 0\n1 4 1\n0 1 0\n")
    np.save(tmp_path / "good.npy", np.ones((8, 8)))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "good.npy").read_bytes()[:140])
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "complex.npy", np.ones((8, 8)) * (1 + 2j))
    for loader, what in ((R.load_kernel, "kernel file"), (R.load_mask, "mask file")):
        for name, message in (("text.npy", "is not a .npy array"), ("cut.npy", "it is damaged"),
                              ("objects.npy", "it holds Python objects"), ("complex.npy", "holds complex numbers")):
            path = tmp_path / name
            with pytest.raises(ValueError) as e:
                loader(str(path))
            text = str(e.value)
            assert what in text and str(path) in text and message in text and "allow_pickle" not in text, text
    with pytest.raises(ValueError, match="the mask holds complex numbers"):
        R.load_mask(torch.ones(1, 1, 4, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="the blur kernel holds complex numbers"):
        R.load_kernel(np.ones((3, 3)) * 1j)


def test_a_kernel_with_other_channels_than_the_image_is_told_without_internal_names():
    op = R.PeriodicBlur(torch.stack([R.gaussian_kernel(1.0)] * 3))
    x = torch.rand(1, 1, 16, 16)
    for call in (lambda: op.A(x), lambda: op.A_adjoint(x), lambda: op.prox_l2(x, x, 1.0)):
        with pytest.raises(ValueError, match="the blur kernel has 3 channels but the image has 1") as e:
            call()
        assert " z " not in str(e.value) and " x " not in str(e.value)
