import pytest
import torch

from inrd import restoration as R
from inrd.denoisers import StationaryGaussianDenoiser
from inrd.metrics import psnr
from inrd.restoration.blur import Blur

NU = 0.01


def _denoiser():
    return StationaryGaussianDenoiser(0.5, torch.full((16, 16), 0.01, dtype=torch.float64))


def test_restore_dispatches_with_documented_defaults():
    y = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    blur = R.PeriodicBlur(R.gaussian_kernel(1.0))
    D = _denoiser()
    # the same call as the algorithm itself, plus the circular padding of a periodic operator
    res = R.restore(y, blur, D, NU, "pnp-pgd", pad=0, iters=5)
    ref = R.pnp_pgd(y, blur, D, 2 * NU, iters=5, noise_level=NU)
    assert torch.equal(res.x, ref.x) and res.params["sigma_denoiser"] == pytest.approx(2 * NU)
    assert res.params["pad"] == 0 and res.params["task"] == "deblur"
    assert R.restore(y, blur, D, NU, "gs-pnp", pad=0).params["iters"] == 30
    # periodic: a fixed-level scheme's denoiser is padded by default, HQS's and the sampler's are not
    assert R.restore(y, blur, lambda u, s: u, NU, "pnp-pgd", iters=1).params["pad"] == 16
    assert R.restore(y, blur, lambda u, s: u, NU, "hqs").params["pad"] == 0
    assert R.restore(y, blur, lambda u, s: u, NU, "inrd-posterior", samples=1, steps=2).params["pad"] == 0
    assert R.restore(y, R.Denoising(), D, NU, "pnp-pgd", iters=1).params["pad"] == 0  # not periodic: no padding
    k = R.gaussian_kernel(1.0)
    assert R.restore(y, Blur(k, "periodic"), lambda u, s: u, NU, "gs-pnp", iters=1).params["pad"] == 16
    assert R.restore(y, Blur(k, "periodic"), lambda u, s: u, NU, "hqs").params["pad"] == 0
    for boundary in ("valid", "reflect", "replicate"):  # no wrap-around assumed: no circular padding
        assert R.restore(y, Blur(k, boundary), lambda u, s: u, NU, "pnp-pgd", iters=1).params["pad"] == 0
    default = R.restore(y, R.Denoising(), D, NU)
    assert default.params["algorithm"] == R.DEFAULT_ALGORITHM["denoise"].replace("-", "_")
    assert set(R.DEFAULT_ALGORITHM) == {"deblur", "inpaint", "super-resolution", "denoise"}
    assert set(R.DEFAULT_ALGORITHM.values()) <= set(R.ALGORITHMS)
    with pytest.raises(ValueError, match="unknown algorithm 'admm'"):
        R.restore(y, blur, D, NU, "admm")


def test_default_sigma_stays_in_the_trained_range():
    class Net:
        sigma_range = (0.0, 0.3)

    assert R.default_sigma(Net(), 0.01, "gs_pnp") == pytest.approx(0.05)
    assert R.default_sigma(Net(), 0.1, "gs_pnp") == pytest.approx(0.3)  # 5 nu = 0.5 capped

    class Diffusion:
        sigma_range = (0.0050003, 78.7)

    assert R.default_sigma(Diffusion(), 0.01) == pytest.approx(0.0050003)


def test_denoiser_channels_reads_the_sampling_defaults():
    from inrd.denoisers import SamplingDefaults

    gray = SamplingDefaults(rho="ind", schedule="geometric", steps=10, sigma_min=0.01, sigma_max=0.2, channels=1)
    assert R.denoiser_channels(type("A", (), {"sampling_defaults": gray})()) == 1
    assert R.denoiser_channels(type("B", (), {"sampling_defaults": gray.with_(channels=3)})()) == 3
    assert R.denoiser_channels(_denoiser()) is None


def test_the_noise_level_floor():
    """nu = 1e-300 (nu^2 underflows to 0: HQS divided by it) is refused in one line naming noise_level; at the floor
    NU_MIN every algorithm runs with finite iterates, on float32 images, with a periodic blur and with a mask
    (whose proximal map runs in the image's dtype: sigma^2 / (lam nu^2) must stay inside float32's range)."""
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 1, 16, 16, generator=g)
    mask = (torch.rand(1, 1, 16, 16, generator=g) > 0.5).float()
    D = lambda u, s: u.clamp(0, 1)  # noqa: E731  (any denoiser: the floor is about the data term)
    for nu in (1e-300, R.NU_MIN / 2, 0.0, float("nan"), 2.0):
        with pytest.raises(ValueError, match="noise_level"):
            R.restore(y, R.Denoising(), D, nu, "hqs")
    for op in (R.PeriodicBlur(R.gaussian_kernel(1.0)), R.Inpainting(mask)):
        for algorithm in R.ALGORITHMS:
            options = {"samples": 1, "steps": 3} if algorithm == "inrd-posterior" else {"iters": 3}
            res = R.restore(op.A(y), op, D, R.NU_MIN, algorithm, **options)
            assert torch.isfinite(res.x).all() and res.verdict != "diverging", (op, algorithm)
    assert R.NU_MIN == pytest.approx(1.1920929e-07)


def test_hqs_names_the_noise_level_when_it_is_above_its_levels():
    y = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    # the default first level is max(49/255, nu): only a sigma_max given below nu is refused
    assert R.hqs(y, R.Denoising(), lambda u, s: u, noise_level=0.3, iters=2).sigma == pytest.approx([0.3, 0.3])
    with pytest.raises(ValueError, match=r"noise_level = 0.3 is above HQS's first denoiser level") as e:
        R.hqs(y, R.Denoising(), lambda u, s: u, noise_level=0.3, sigma_max=49 / 255)
    assert "sigma_min =" not in str(e.value)
    with pytest.raises(ValueError, match="sigma_min = 0.3 exceeds sigma_max"):  # a sigma_min given explicitly
        R.hqs(y, R.Denoising(), lambda u, s: u, noise_level=0.01, sigma_min=0.3, sigma_max=49 / 255)


def test_restore_records_one_spelling_of_the_algorithm():
    y = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    for given in ("pnp_pgd", "PNP-PGD", "gs-pnp", "inrd_posterior"):
        options = {"samples": 1, "steps": 2} if "posterior" in given else {"iters": 2}
        res = R.restore(y, R.Denoising(), lambda u, s: u, NU, given, **options)
        assert res.params["algorithm"] in R.ALGORITHMS and res.params["algorithm"] == given.lower().replace("_", "-")


def test_a_truth_of_the_field_of_view_scores_the_crop():
    """Blur(boundary="valid") restores the scene plus the kernel's margin; a truth of the observation's size is
    compared with the crop, for the PSNR curve and for each posterior sample."""
    g = torch.Generator().manual_seed(1)
    op = Blur(R.gaussian_kernel(1.0), "valid")
    scene = torch.rand(1, 1, 22, 22, generator=g, dtype=torch.float64)
    y, truth = op.A(scene), op.crop(scene)
    seen = []
    res = R.restore(y, op, lambda u, s: u, NU, "hqs", x_true=truth, iters=3, callback=lambda n, v: seen.append(n))
    assert res.x.shape[-2:] == (22, 22) and seen == [1, 2, 3] and len(res.psnr) == 3  # the user's callback still runs
    assert res.psnr[-1] == pytest.approx(float(psnr(op.crop(res.x), truth)[0]), abs=1e-12)
    post = R.restore(y, op, lambda u, s: u, NU, "inrd-posterior", x_true=truth, steps=2, samples=2)
    assert len(post.psnr) == 2 and len(post.params["psnr_per_sample"]) == 2
    with pytest.raises(ValueError, match="field of view of the estimate is"):
        R.restore(y, op, lambda u, s: u, NU, "hqs", x_true=truth[..., 1:, :], iters=1)
