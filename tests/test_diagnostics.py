import json
import math

import pytest
import torch

import inrd
from inrd import schedules as S
from inrd.diagnostics import StabilityRecorder, noise_given_content, noise_level
from inrd.sampler import Step


@pytest.mark.parametrize("sigma", [0.01, 0.1, 1.0])
def test_noise_level_of_white_noise(sigma):
    g = torch.Generator().manual_seed(0)
    x = 0.5 + sigma * torch.randn(3, 1, 128, 128, generator=g)
    est = noise_level(x)
    # 4096 HH coefficients per image: the MAD estimator's relative std is about 1.17/sqrt(4096) = 1.8 %
    assert torch.allclose(est, torch.full((3,), sigma, dtype=torch.float64), rtol=0.08)


def test_noise_level_ignores_smooth_content():
    ramp = torch.linspace(0, 1, 64).expand(1, 1, 64, 64).clone()
    assert noise_level(ramp).item() < 1e-6  # a linear ramp has zero diagonal Haar detail


def _lowpass(z, width):
    """Gaussian low-pass of a periodic field, ``width`` in pixels."""
    f = torch.fft.fftfreq(z.shape[-1], dtype=torch.float64)
    gain = torch.exp(-(f[:, None] ** 2 + f[None, :] ** 2) * (2 * math.pi * width) ** 2 / 2)
    return torch.fft.ifft2(torch.fft.fft2(z) * gain).real


def _textured_image(seed, size=256):
    """[0, 1] image: a ramp, regions with smooth edges (amplitude 0.3) and a fine correlated Gaussian
    texture (std 0.03) that dominates its HH coefficients, which are close to Gaussian: its own HH level is
    about 0.013, 1.3 grey levels in 8 bits."""
    g = torch.Generator().manual_seed(seed)
    blobs = _lowpass(torch.randn(1, 1, size, size, generator=g, dtype=torch.float64), 8)
    fine = _lowpass(torch.randn(1, 1, size, size, generator=g, dtype=torch.float64), 0.7)
    ramp = torch.linspace(0, 0.2, size, dtype=torch.float64).expand(1, 1, size, size)
    return 0.4 + ramp + 0.3 * torch.tanh(4 * blobs / blobs.std()) + 0.03 * fine / fine.std()


def _cartoon(seed, size=256):
    """[0, 1] piecewise-constant image (8 grey levels, regions with sharp curved edges) plus a faint white
    texture (std 0.004): heavy-tailed HH coefficients, 23 % of them on edges (|HH| > 0.02) and the others
    Gaussian, so that its HH level (median, about 0.0055) sees the texture and its HH std (0.024) the edges."""
    g = torch.Generator().manual_seed(seed)
    blobs = _lowpass(torch.randn(1, 1, size, size, generator=g, dtype=torch.float64), 6)
    levels = torch.floor(8 * (torch.erf(blobs / blobs.std() / math.sqrt(2)) + 1) / 2) / 8
    return 0.1 + 0.8 * levels + 0.004 * torch.randn(1, 1, size, size, generator=g, dtype=torch.float64)


def _subtracted(noisy, clean):
    """The variance subtraction ``sqrt(max(level^2 - c^2, 0))``, the estimator that noise_given_content replaced."""
    return (noise_level(noisy) ** 2 - noise_level(clean) ** 2).clamp(min=0).sqrt()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noise_given_content_on_heavy_tailed_content(seed):
    x = _cartoon(seed)
    c = noise_level(x).item()
    assert 0.005 < c < 0.006
    g = torch.Generator().manual_seed(100 + seed)
    z = torch.randn(x.shape, generator=g, dtype=torch.float64)
    # Tolerance: 4 std of the estimate. Its relative std by the delta method, sqrt(sum_j p_j (1 - p_j)) /
    # (N s |dF/ds|) with p_j = P(|h_j + n_j| <= M) and N = 16384, is 2.3 % at s = c / 2, 1.3 % at s = c and
    # 1.0-1.1 % above; measured over 40 images: 2.2 %, 1.2 %, 0.9-1.0 %, mean 0.998-1.005, ranges
    # [0.953, 1.053] at s = c / 2 and [0.971, 1.033] at s >= c. The subtraction read 1.18-1.54 on them.
    for k, tol in ((0.5, 0.09), (1, 0.05), (2, 0.05), (4, 0.05)):
        s = k * c
        y = x + s * z
        assert noise_given_content(y, x).item() / s == pytest.approx(1, abs=tol), k
        # the edges inflate the median of |h + n| but not the content's own median: the subtraction over-reads
        assert _subtracted(y, x).item() / s > 1 + 2 * tol, k


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noise_given_content_agrees_with_the_subtraction_on_texture(seed):
    x = _textured_image(seed)
    c = noise_level(x).item()
    assert 0.01 < c < 0.016
    g = torch.Generator().manual_seed(100 + seed)
    z = torch.randn(x.shape, generator=g, dtype=torch.float64)
    # Near-Gaussian content coefficients: both estimators are right. Tolerance: 16384 HH coefficients give
    # each MAD a relative std of 1.17/128 = 0.9 %, amplified to about 2 % at s = c. Measured over 10 images at
    # s >= c: noise_given_content / s in [0.980, 1.016], subtraction in [0.983, 1.031], and they differ by at
    # most 0.020 (at s = c; 0.003 at s = 4 c). 0.06 is 3 std at s = c.
    tol = 0.06
    for k in (1, 1.5, 2, 4, 8):
        s = k * c
        y = x + s * z
        new, sub = noise_given_content(y, x).item(), _subtracted(y, x).item()
        assert new / s == pytest.approx(1, abs=tol) and sub / s == pytest.approx(1, abs=tol), k
        assert abs(new - sub) / s < 0.04, k
        raw_bias = noise_level(y).item() / s - 1
        if k == 1:  # the plain estimate is sqrt(2) s there (noise and content in quadrature): the test can fail
            assert raw_bias > 0.35
        if k <= 2:
            assert raw_bias > tol


def _mixture_fraction(m, h, s):
    """F(m; s) = mean_j [Phi((m - h_j) / s) - Phi((-m - h_j) / s)], written out again for the test."""
    phi = lambda a: 0.5 * (1 + torch.erf(a / math.sqrt(2)))  # noqa: E731
    return float((phi((m - h) / s) - phi((-m - h) / s)).mean())


def test_noise_given_content_exact_cases():
    x = _cartoon(0, size=64)
    g = torch.Generator().manual_seed(5)
    z = torch.randn(x.shape, generator=g, dtype=torch.float64)
    # no noise: the content explains the median by itself (F(M; 0) <= 1/2), s = 0 exactly
    assert noise_given_content(x, x).tolist() == [0.0]
    assert noise_given_content(torch.full((2, 1, 8, 8), 0.3), torch.full((1, 1, 8, 8), 0.3)).tolist() == [0.0, 0.0]
    # no content (constant clean image): F(M; s) = 2 Phi(M / s) - 1, so s is the plain MAD estimate
    flat = torch.full_like(x, 0.5)
    assert noise_given_content(flat + 0.02 * z, flat).item() == pytest.approx(noise_level(flat + 0.02 * z).item(), rel=1e-6)
    # the root: F(M; s) crosses 1/2 within 1e-6 relative of the returned s (F from the definition)
    y = x + 0.01 * z
    s = noise_given_content(y, x).item()
    m = noise_level(y).item() * 0.6744897501960817
    h = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]).flatten() / 2
    assert _mixture_fraction(m, h, s * (1 - 1e-6)) > 0.5 > _mixture_fraction(m, h, s * (1 + 1e-6))
    # vectorised over images, clean broadcast: the same as one by one, and increasing with the noise
    ks = (0.003, 0.006, 0.012, 0.024)
    batch = torch.cat([x + k * z for k in ks])
    est = noise_given_content(batch, x)
    assert est.shape == (4,) and est.dtype == torch.float64
    assert est.tolist() == pytest.approx([noise_given_content(x + k * z, x).item() for k in ks], rel=1e-6)
    assert all(a < b for a, b in zip(est.tolist(), est[1:].tolist()))
    assert est[-1].item() / ks[-1] == pytest.approx(1, abs=0.1)  # 1024 coefficients: about 4 % std


def test_recorder_corrects_with_the_content_estimator():
    # a recorder fed by hand: the clean images stay put (x = V_0) and carry noise sigma_t at the input
    x = torch.cat([_cartoon(0), _cartoon(1)])
    g = torch.Generator().manual_seed(7)
    rec, sigmas, exact = StabilityRecorder(), (0.024, 0.012, 0.006), []
    for t, sigma in zip((3, 2, 1), sigmas):
        y = x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)
        rec(Step(t=t, sigma=sigma, rho=1.0, gamma=sigma, x=x, noisy=y, denoised=x))
        exact.append((noise_given_content(y, x) / sigma).mean().item())
        assert (_subtracted(y, x) / sigma).mean().item() > 1.25  # what the subtraction would have claimed
    s = rec.summary()
    assert s["content_level"] == pytest.approx(0.0055, abs=5e-4) and s["steps_excluded"] == 0 and s["images_excluded"] == 0
    # the recorder keeps 4096 of the 16384 content coefficients per image: F moves by <= 1/4096, s by ~1e-4
    assert [s["noise_in_over_sigma_min"], s["noise_in_over_sigma_max"]] == pytest.approx([min(exact), max(exact)], rel=2e-3)
    assert 0.97 < s["noise_in_over_sigma_min"] <= s["noise_in_over_sigma_max"] < 1.03


def _hh_std(var_per_frequency, size):
    """Std of the HH coefficients of a stationary field whose orthonormal-DFT variances are given (fft2
    order): HH = (a - b - c + d) / 2 has |H(f)|^2 = 4 sin^2(pi fx) sin^2(pi fy)."""
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    h2 = 4 * torch.sin(math.pi * f)[:, None] ** 2 * torch.sin(math.pi * f)[None, :] ** 2
    return math.sqrt(float((torch.as_tensor(var_per_frequency).reshape(size, size) * h2).sum()) / size**2)


@pytest.mark.parametrize("rho", ["canonical", "ddim"])
def test_summary_with_exact_gaussian_denoiser(rho):
    from inrd.gaussian import Spectrum

    # a 1/f^2 Gaussian texture, std 0.06: its samples' HH level (~0.02) lies inside the schedule
    spectrum = Spectrum.power_law(64, alpha=2.0, std=0.06)
    sigmas = S.geometric(12, 0.005, 2.0)
    rec = StabilityRecorder()
    inrd.sample(spectrum.denoiser(), sigmas, rho, shape=(8, 1, 64, 64), seed=0, callback=rec, dtype=torch.float64)
    s = rec.summary()
    # the content level is what it claims: the HH std of V_0, whose exact law is known here
    assert s["content_level"] == pytest.approx(_hh_std(spectrum.law(sigmas, rho).var, 64), rel=0.05)
    # the 3 levels below it (0.005, 0.0086, 0.0149) are excluded, the 9 others kept
    assert s["steps_recorded"] == 12 and s["steps_excluded"] == 3
    assert s["steps_excluded"] == sum(float(v) < s["content_level_range"][0] for v in sigmas[1:])
    # The exact denoiser keeps the intended noise: the corrected ratio is 1 up to the estimator's error
    # (1024 HH coefficients: 3.7 % per image, 1.3 % over 8, about x 2 at sigma = c: 2.6 %). Measured over
    # 12 seeds each: [0.954, 1.029] canonical, [0.975, 1.028] ddim (the subtraction, on Gaussian content
    # like this, read the same: [0.958, 1.026], [0.983, 1.030]). The raw ratio reads 4 at sigma = 0.005.
    assert 0.92 < s["noise_in_over_sigma_min"] <= s["noise_in_over_sigma_max"] < 1.08
    assert s["noise_in_over_sigma_raw_max"] > 3


def test_summary_with_the_bundled_model():
    from inrd.denoisers import load

    D = load("inrd-small")
    d = D.sampling_defaults
    rec = StabilityRecorder()
    with torch.no_grad():  # canonical INRD: fresh noise at every step, the setting the variance rule describes
        inrd.sample(D, d.sigmas(), "canonical", shape=(8, d.channels, d.size, d.size), seed=0, clip=d.clip, callback=rec)
    s = rec.summary()
    # Band: 256 HH coefficients per 32x32 image (MAD std 7.3 % per image), amplified near sigma = c (per-image
    # std 18-20 % at sigma = 0.022 on this model's samples) with few images left at the lowest levels.
    # Measured over seeds 0-7: [0.936, 1.124] (seed 0: [0.956, 1.124]); over seeds 0-29: [0.898, 1.174];
    # raw max 1.55-1.93. The variance subtraction read up to 1.198 over seeds 0-7.
    assert 0.85 < s["noise_in_over_sigma_min"] <= s["noise_in_over_sigma_max"] < 1.25
    assert s["noise_in_over_sigma_raw_max"] > 1.5
    assert 0.005 < s["content_level"] < 0.06 and s["steps_excluded"] == 0 and s["images_excluded"] > 0


def test_recorder_follows_the_schedule():
    sigmas = S.geometric(20, 0.01, 0.5)
    rec = StabilityRecorder()
    # identity "denoiser" with IND: V_{t-1} = V_t + sigma_t Z keeps accumulating noise
    inrd.sample(lambda x, s: x, sigmas, "ind", shape=(2, 1, 64, 64), callback=rec)
    assert [r["t"] for r in rec.rows] == list(range(20, 0, -1))
    first = rec.rows[0]
    assert first["noise_in"] == pytest.approx(0.5, rel=0.1)  # V_T + sigma_T Z from a constant start
    assert all(r["expected_out"] == 0 for r in rec.rows)  # rho = 1: nothing should be left
    s = rec.summary()
    assert s["noise_in_over_sigma_raw_max"] > 1.5  # the identity leaves all noise in: unstable
    # V_0 holds the accumulated noise (sqrt(sum sigma_t^2) ~ 0.88), which the correction takes for content:
    # every level is below it, so no corrected ratio is claimed
    total = math.sqrt(float((sigmas[1:] ** 2).sum()))
    assert s["content_level"] == pytest.approx(total, rel=0.1)
    assert s["steps_excluded"] == 20 and s["noise_in_over_sigma_min"] is None and s["noise_in_over_sigma_max"] is None


def test_summary_before_the_last_step_has_no_correction():
    rec = StabilityRecorder()
    g = torch.Generator().manual_seed(0)
    for t, sigma in ((3, 0.2), (2, 0.1)):  # a run stopped (diverged) before t = 1: there is no V_0
        x = 0.5 + 0.05 * torch.randn(2, 1, 32, 32, generator=g)
        rec(Step(t=t, sigma=sigma, rho=1.0, gamma=sigma, x=x, noisy=x + sigma * torch.randn(x.shape, generator=g), denoised=x))
    s = rec.summary()
    assert s["noise_in_over_sigma_min"] is None and s["content_level"] is None and s["steps_excluded"] is None
    assert s["noise_in_over_sigma_raw_min"] == pytest.approx(1, abs=0.15)  # the raw ratio is still there


def test_cli_prints_one_stability_line_with_both_ratios(tmp_path, capsys):
    from inrd.cli import main

    out = tmp_path / "o"
    assert main(["sample", "--size", "16", "--steps", "3", "--batch", "2", "--no-progress", "--out", str(out)]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("stability:")]
    assert len(lines) == 1
    s = json.loads((out / "grid.json").read_text())["stability"]["summary"]
    lo, hi = s["noise_in_over_sigma_min"], s["noise_in_over_sigma_max"]
    corrected = "n/a" if lo is None else f"[{lo:.2f}, {hi:.2f}]"
    assert f"content-corrected {corrected} " in lines[0]
    assert f"(raw [{s['noise_in_over_sigma_raw_min']:.2f}, {s['noise_in_over_sigma_raw_max']:.2f}]; content level" in lines[0]
    assert f"{s['steps_excluded']}/3 steps, {s['images_excluded']}/6 step-images" in lines[0]
