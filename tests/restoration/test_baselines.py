import pytest
import torch

from inrd import restoration as R
from inrd.io import load_image
from inrd.metrics import psnr

NU = 0.01


def _grad_t_grad(u):  # R^T R for periodic forward differences, written independently of the module
    dx, dy = torch.roll(u, -1, -1) - u, torch.roll(u, -1, -2) - u
    return (torch.roll(dx, 1, -1) - dx) + (torch.roll(dy, 1, -2) - dy)


@pytest.mark.parametrize("op", [R.PeriodicBlur(R.gaussian_kernel(1.0)), R.Denoising(),
                                R.Downsampling(R.gaussian_kernel(1.0), 2),
                                R.Inpainting((torch.arange(256).reshape(16, 16) % 3 != 0).float())], ids=repr)
@pytest.mark.parametrize("reg", ["gradient", "identity"])
def test_tikhonov_solves_the_normal_equations(op, reg):
    # (A^T A + lam R^T R) x = A^T y: exact by FFT for blur / Id (1e-12), by conjugate gradients to a
    # relative residual of 1e-7 otherwise (the tolerance: 1e-6 of ||A^T y|| ~ 8)
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64)
    y = op.A(x) + 0.1 * torch.randn(op.A(x).shape, generator=g, dtype=torch.float64)
    lam = 0.05
    xt = R.tikhonov(y, op, lam, reg)
    RtR = _grad_t_grad if reg == "gradient" else (lambda u: u)
    lhs = op.A_adjoint(op.A(xt)) + lam * RtR(xt)
    assert (lhs - op.A_adjoint(y)).norm() <= 1e-6 * op.A_adjoint(y).norm()


def test_tikhonov_discrepancy_principle():
    # the chosen lam explains y up to the noise: ||A x - y||^2 = m nu^2 (40 halvings of 10 decades leave
    # lam within a factor 1 + 2e-11, so the residual matches to the float32 rounding of the images)
    x = load_image("camera")[..., 80:144, 210:274].contiguous()
    op = R.PeriodicBlur(R.gaussian_kernel(1.6))
    y = torch.cat([R.observe(x, op, NU, seed=0), R.observe(x, op, NU, seed=1)])
    xd, lams = R.tikhonov_discrepancy(y, op, NU)
    assert len(lams) == 2 and lams[0] != lams[1]  # one lam per image
    for b in range(2):
        r = float((op.A(xd[b : b + 1]) - y[b : b + 1]).double().pow(2).sum())
        assert r == pytest.approx(x.numel() * NU**2, rel=1e-4)
    # truth-free, so not better than the best weight chosen with the truth; measured 25.56 vs 25.96 dB
    _, lam_o, p_o = R.tikhonov_oracle(y[:1], op, x)
    p_d = psnr(xd[:1], x).item()
    assert psnr(y[:1], x).item() + 2.0 < p_d < p_o and lams[0] > lam_o
    with pytest.raises(ValueError, match="noise_level"):
        R.tikhonov_discrepancy(y, op, 0.0)


def test_discrepancy_counts_only_observed_pixels():
    # inpainting: a missing pixel is no measurement, so the target is (observed values) * nu^2
    x = load_image("camera")[..., 80:112, 210:242].contiguous()
    mask = (torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    op = R.Inpainting(mask)
    y = R.observe(x, op, NU, seed=0)
    xd, _ = R.tikhonov_discrepancy(y, op, NU)
    r = float((op.A(xd) - y).double().pow(2).sum())
    assert r == pytest.approx(mask.sum().item() * NU**2, rel=1e-3)  # CG to 1e-7: the residual to ~1e-4
