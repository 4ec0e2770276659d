"""The exact law of INRD's output on Gaussian data (inrd.gaussian.law), checked three independent ways:

* against the brute-force covariance recursion in pixel space (deterministic, float tolerance);
* against Monte-Carlo runs of ``inrd.sample`` with the exact denoisers, with tolerances derived from
  the sample size (standard errors, z-threshold with a Bonferroni correction);
* against closed forms that do not use the recursion (canonical relaxation: telescoping products).
"""

import math
from statistics import NormalDist

import numpy as np
import pytest
import torch

import inrd
from inrd import gaussian as G
from inrd import relaxations as R
from inrd import schedules as S


def _random_spectrum(d=16, seed=0, lo=-4.5, hi=-0.5):
    """N(m, Q diag(lam) Q^T) on 1 x 4 x 4 images, eigenvalues log-spaced in [10^lo, 10^hi]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = np.logspace(hi, lo, d)
    pixel_mean = 0.5 + 0.1 * rng.standard_normal(d)
    cov = (q * lam) @ q.T
    return G.Spectrum.from_covariance(pixel_mean, (cov + cov.T) / 2, shape=(1, 4, 4))


def _batch_noise(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda t, like: torch.randn(like.shape, generator=g, dtype=torch.float64)


def _sample_coords(spec, basis, sigmas, rho, n, *, init, init_std=0.0, start_noise=0.0, seed=0, noise="batch"):
    """n samples of V_0 from inrd.sample with the exact denoiser, as coordinates in ``basis``: (n, d)."""
    x = inrd.sample(
        spec.denoiser(), sigmas, rho, shape=(n, *spec.shape), init=init, init_std=init_std,
        start_noise=start_noise, seed=seed, noise=_batch_noise(seed) if noise == "batch" else None, dtype=torch.float64,
    )
    return x.reshape(n, -1).numpy() @ basis


def _z_scores(coords, law):
    """z-scores of the sample mean and the sample variance of every coordinate under ``law``.

    Standard errors for n i.i.d. Gaussian draws: sample mean sqrt(v / n); unbiased sample variance
    sqrt(2 / (n - 1)) v (exact for Gaussian data; the chi-square skewness sqrt(8 / (n - 1)) < 0.05
    here, so the normal tail is a fair approximation at the thresholds used)."""
    n = coords.shape[0]
    z_mean = (coords.mean(0) - law.mean) / np.sqrt(law.var / n)
    z_var = (coords.var(0, ddof=1) - law.var) / (math.sqrt(2.0 / (n - 1)) * law.var)
    return z_mean, z_var


def _threshold(tests, alpha=1e-3):
    """Two-sided z-threshold for ``tests`` simultaneous tests at family-wise level ``alpha``
    (Bonferroni: each test at alpha / tests)."""
    return NormalDist().inv_cdf(1 - alpha / (2 * tests))


def _check_moments(coords, law):
    z_mean, z_var = _z_scores(coords, law)
    zmax = _threshold(2 * coords.shape[1])  # 2 tests (mean, variance) per coordinate
    worst = max(np.abs(z_mean).max(), np.abs(z_var).max())
    assert worst < zmax, f"max |z| = {worst:.2f} >= {zmax:.2f}: z_mean={np.round(z_mean, 1)}, z_var={np.round(z_var, 1)}"
    return worst, zmax


def _brute_force_law(sigmas, rho, mean, cov, init, init_std, start_noise=0.0):
    """Law of V_0 by propagating the full pixel covariance: V_{t-1} - m = M_t (V_t - m + gamma_t Z_t),
    M_t = (1 - rho_t) I + rho_t C (C + sigma_t^2 I)^{-1}. No eigendecomposition involved."""
    s = S.check_sigmas(sigmas).numpy()
    r = R.relaxation(sigmas, rho).numpy()
    g = R.gammas(sigmas, rho, start_noise).numpy()
    d = cov.shape[0]
    e = init - mean
    K = init_std**2 * np.eye(d)
    for t in range(len(s) - 1, 0, -1):
        M = (1 - r[t]) * np.eye(d) + r[t] * cov @ np.linalg.inv(cov + s[t] ** 2 * np.eye(d))
        e = M @ e
        K = M @ (K + g[t] ** 2 * np.eye(d)) @ M.T
    return mean + e, K


def _canonical_closed_form(sigmas, lam, offset, init_std):
    """Canonical relaxation, start V_T = m + offset + init_std Z, start_noise = 0, WITHOUT the recursion.

    With rho_t = 1 - sigma_{t-1}^2 / sigma_t^2 the gain is c_t = (lam + sigma_{t-1}^2) / (lam + sigma_t^2),
    so prod_t c_t telescopes to lam / (lam + sigma_T^2) (sigma_0 = 0). For the variance, the excess
    delta_t = Var(V_t + gamma_t Z_t) - (lam + sigma_t^2) obeys delta_{t-1} = c_t^2 delta_t -
    lam (sigma_t^2 - sigma_{t-1}^2)^2 / (sigma_t^2 (lam + sigma_t^2)), which sums to
        Var V_0 = lam - lam^2 (lam - init_std^2) / S_T^2
                  - lam^3 sum_t (sigma_t^2 - sigma_{t-1}^2)^2 / (sigma_t^2 S_t S_{t-1}^2),  S_t = lam + sigma_t^2.
    The middle term is the start mismatch, the sum the discretisation (its t = 1 term is the last,
    full denoising, which alone would leave lam^2 / (lam + sigma_1^2))."""
    s2 = S.check_sigmas(sigmas).numpy() ** 2
    assert s2[0] == 0
    lam = np.asarray(lam, dtype=np.float64)[:, None]
    St = lam + s2[None, :]
    term = (s2[1:] - s2[:-1]) ** 2 / (s2[1:] * St[:, 1:] * St[:, :-1] ** 2)
    start = lam**2 * (lam - init_std**2) / St[:, -1:] ** 2
    var = lam - start - lam**3 * term.sum(1, keepdims=True)
    mean_offset = lam / St[:, -1:] * np.broadcast_to(np.asarray(offset, dtype=np.float64), lam.shape[:1])[:, None]
    return mean_offset[:, 0], var[:, 0], start[:, 0]


@pytest.mark.parametrize(
    "sigmas, rho, init_std, start_noise",
    [
        (S.prune(S.ddpm(), 20), "canonical", 0.0, 0.0),
        (S.geometric(12, 0.01, 1.5), "ind", 0.2, 0.0),
        (S.karras(9, 0.02, 2.0), "ddim", 2.0, 2.0),
        (S.affine(7, 0.05, 1.0), 0.8, 0.1, 0.3),
    ],
)
def test_output_law_equals_pixel_space_covariance_recursion(sigmas, rho, init_std, start_noise):
    spec = _random_spectrum()
    Q = spec.basis
    pixel_mean = Q @ spec.mean
    cov = (Q * spec.eigenvalues) @ Q.T
    init = 0.3 + 0.2 * np.linspace(0, 1, 16)  # a non-constant start image
    mu_px, K_px = _brute_force_law(sigmas, rho, pixel_mean, cov, init, init_std, start_noise)
    law = spec.law(sigmas, rho, init=init, init_std=init_std, start_noise=start_noise)
    np.testing.assert_allclose(Q @ law.mean, mu_px, rtol=0, atol=1e-12)
    np.testing.assert_allclose((Q * law.var) @ Q.T, K_px, rtol=0, atol=1e-12 * max(1.0, np.abs(K_px).max()))


def test_canonical_law_matches_the_telescoped_closed_form():
    lam = np.logspace(-6, 1, 15)
    offset = np.linspace(-0.5, 0.5, 15)
    for sigmas in (S.ddpm(), S.prune(S.ddpm(), 17), S.karras(30)):
        for init_std in (0.0, 0.7):
            law = G.output_law(sigmas, "canonical", lam, 0.0, init=offset, init_std=init_std)
            mean_ref, var_ref, _ = _canonical_closed_form(sigmas, lam, offset, init_std)
            np.testing.assert_allclose(law.mean, mean_ref, rtol=1e-10, atol=1e-300)
            np.testing.assert_allclose(law.var, var_ref, rtol=1e-9)


def test_w2_formula_against_the_general_gaussian_w2():
    """W2^2(N(mu1, K1), N(mu2, K2)) = |mu1 - mu2|^2 + tr(K1 + K2 - 2 (K2^1/2 K1 K2^1/2)^1/2) for
    commuting K1, K2 reduces to the diagonal formula used by inrd.gaussian."""
    scipy_linalg = pytest.importorskip("scipy.linalg")
    spec = _random_spectrum(seed=3)
    law = spec.law(S.prune(S.ddpm(), 10), "canonical")
    Q = spec.basis
    K1, K2 = (Q * law.var) @ Q.T, (Q * spec.eigenvalues) @ Q.T
    r2 = scipy_linalg.sqrtm(K2).real
    w2sq = np.sum((Q @ (law.mean - spec.mean)) ** 2) + np.trace(K1 + K2 - 2 * scipy_linalg.sqrtm(r2 @ K1 @ r2).real)
    res = G.w2_distance(law, spec.eigenvalues, spec.mean)
    assert res.w2 == pytest.approx(math.sqrt(w2sq), rel=1e-6)
    assert res.w2**2 == pytest.approx(res.bias**2 + res.spread**2, rel=1e-12)
    assert res.relative == pytest.approx(res.w2 / math.sqrt(spec.eigenvalues.sum()), rel=1e-12)
    assert res.rms == pytest.approx(res.w2 / 4.0, rel=1e-12)  # d = 16
    # one coordinate, by hand
    one = G.w2_distance(G.Law(np.array([0.3]), np.array([0.04])), [0.09], [0.5])
    assert (one.bias, one.spread, one.w2) == pytest.approx((0.2, 0.1, math.sqrt(0.05)), rel=1e-12)


MC_CASES = {
    # DDPM pruned to 20 steps (uniform "trailing" subgrid) from the paper's V_T = 0.5, with the
    # sampler's own per-sample noise (float32 draws), n = 4000
    "ddpm20-canonical": dict(sigmas=S.prune(S.ddpm(), 20), rho="canonical", init=0.5, n=4000, noise="per-sample"),
    "ddpm20-ind": dict(sigmas=S.prune(S.ddpm(), 20), rho="ind", init=0.5, n=20000),
    # DDIM-like: gamma_t = 0 after the start, so Var V_0 is the start noise init_std^2 propagated by c_t^2
    "ddim-geometric10": dict(sigmas=S.geometric(10, 0.01, 2.0), rho="ddim", init=0.5, init_std=2.0, start_noise=2.0, n=20000),
    # Gaussian start with sigma_T small enough that the start is not forgotten; init != data mean
    "gauss-start-canonical": dict(sigmas=S.geometric(10, 0.01, 0.5), rho="canonical", init=0.2, init_std=0.3, n=20000),
    # constant relaxation with a start that already carries noise (gamma_T < sigma_T)
    "constant-rho": dict(sigmas=S.karras(8, 0.02, 1.0), rho=0.7, init=0.5, init_std=0.25, start_noise=0.25, n=20000),
}


@pytest.mark.parametrize("case", list(MC_CASES))
def test_monte_carlo_moments_match_output_law(case):
    kw = dict(MC_CASES[case])
    n = kw.pop("n")
    spec = _random_spectrum()
    law = spec.law(kw["sigmas"], kw["rho"], init=kw["init"], init_std=kw.get("init_std", 0.0), start_noise=kw.get("start_noise", 0.0))
    coords = _sample_coords(spec, spec.basis, n=n, **kw)
    _check_moments(coords, law)
    if case == "gauss-start-canonical":
        # The same statistic rejects plausible bugs: forgetting the start noise, or the start offset.
        for wrong in (
            spec.law(kw["sigmas"], "canonical", init=kw["init"], init_std=0.0),
            spec.law(kw["sigmas"], "canonical", init=0.5, init_std=kw["init_std"]),
        ):
            zm, zv = _z_scores(coords, wrong)
            assert max(np.abs(zm).max(), np.abs(zv).max()) > 2 * _threshold(2 * coords.shape[1])


def test_monte_carlo_stationary_power_law_field():
    """StationaryGaussianDenoiser (FFT) on an 8x8 power-law field: coordinates in the real Fourier basis."""
    spec = G.Spectrum.power_law(8, alpha=2.0, std=0.25, mean=0.4)
    basis, index = G.real_fourier_basis(8, 8)
    sigmas = S.geometric(12, 0.005, 1.0)
    law = spec.law(sigmas, "canonical", init=0.5)
    law_b = G.Law(law.mean[index], law.var[index])
    coords = _sample_coords(spec, basis, sigmas, "canonical", 20000, init=0.5, seed=1)
    _check_moments(coords, law_b)
    # the start offset (0.5 - 0.4) is not forgotten at sigma_T = 1: the DC mean moved, measurably
    dc = int(np.flatnonzero(index == 0)[0])
    assert abs(law_b.mean[dc] - spec.mean[0]) > 10 * math.sqrt(law_b.var[dc] / 20000)


def test_ddpm_1000_is_close_to_exact_and_degenerate_choices_are_worse():
    """Canonical INRD on the 1000 DDPM levels from V_T = 0.5, exact denoiser, power-law spectrum 32x32.

    Expected W2: not 0. DDPM with the exact denoiser is exact only as T -> infinity: each step adds the
    noise gamma_{t-1}^2 of the bridge and omits (1 - rho_t)^2 Var(X_0 | U_t), so Var V_0 falls short by
    O(1/T); the last step is a full denoising at sigma_1 = 0.005. The start mismatch (V_T = 0.5 instead
    of a data sample) is forgotten by the factor prod c_t = lam / (lam + sigma_T^2) <= 5e-4 here: negligible.
    """
    spec = G.Spectrum.power_law(32, alpha=2.0, std=0.25, mean=0.5).compress()
    lam, cnt = spec.eigenvalues, spec.counts
    sig = S.ddpm()
    res = spec.w2(sig, "canonical")
    # the value predicted by the closed form (offset 0: init 0.5 = data mean)
    _, var_ref, start = _canonical_closed_form(sig, lam, 0.0, 0.0)
    pred = math.sqrt(np.sum(cnt * (np.sqrt(var_ref) - np.sqrt(lam)) ** 2))
    assert res.w2 == pytest.approx(pred, rel=1e-9)
    assert res.bias == 0.0
    # start mismatch: contributes < 1e-7 of the total std; the discretisation is what remains
    exact_start = spec.w2(sig, "canonical", init=0.5, init_std=np.sqrt(lam))  # V_T ~ N(m, C) (per-coordinate std)
    assert abs(exact_start.relative - res.relative) < 1e-7
    assert np.max(start / lam) < 1e-6  # relative variance change (lam / S_T)^2 <= (2.95 / 6194)^2 = 2.3e-7
    assert res.relative < 0.01  # measured 0.0078 (0.78 %) for this spectrum
    # discretisation error is O(1/T): the same DDPM curve sampled twice as finely halves it
    fine = spec.w2(S.ddpm(2000, 0.5e-4, 0.01), "canonical")
    assert 1.7 < res.w2 / fine.w2 < 2.1
    # degenerate choices are much worse
    ddim_const = spec.w2(sig, "ddim", start_noise=float(sig[-1]))  # gamma_T = 0: deterministic from a constant
    assert ddim_const.relative == pytest.approx(1.0, abs=1e-15)  # outputs the data mean: W2 = total std
    one_step = spec.w2(S.prune(sig, 1), "canonical")  # V_0 = D(0.5 + sT Z): std lam sT / (lam + sT^2)
    sT = float(sig[-1])
    by_hand = math.sqrt(np.sum(cnt * (lam * sT / (lam + sT**2) - np.sqrt(lam)) ** 2))
    assert one_step.w2 == pytest.approx(by_hand, rel=1e-12) and one_step.relative > 0.98
    ind = spec.w2(sig, "ind")  # IND converges to about half the variance (1 - 1/sqrt 2 = 29 %)
    assert 0.25 < ind.relative < 0.35
    pruned = spec.w2(S.prune(sig, 20), "canonical")
    assert pruned.relative > 10 * res.relative
    for worse in (ddim_const, one_step, ind, pruned):
        assert worse.w2 > res.w2


def test_bad_inputs_raise_clear_value_errors():
    sig = S.prune(S.ddpm(), 10)
    with pytest.raises(ValueError, match="eigenvalues must be >= 0"):
        G.output_law(sig, "canonical", [0.1, -0.2], 0.5)
    with pytest.raises(ValueError, match="mean has shape"):
        G.output_law(sig, "canonical", [0.1, 0.2, 0.3], [0.5, 0.5])
    with pytest.raises(ValueError, match="init has shape"):
        G.output_law(sig, "canonical", [0.1, 0.2], 0.5, init=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="init_std must be >= 0"):
        G.output_law(sig, "canonical", [0.1], 0.5, init_std=-1.0)
    with pytest.raises(ValueError, match="NaN"):
        G.output_law(sig, "canonical", [0.1, float("nan")], 0.5)
    with pytest.raises(ValueError, match="empty"):
        G.output_law(sig, "canonical", [], 0.5)
    with pytest.raises(ValueError, match="strictly ascending"):
        G.output_law(sig.flip(0), "canonical", [0.1], 0.5)
    with pytest.raises(ValueError, match="denoises too little"):
        G.output_law(sig, 0.01, [0.1], 0.5)


def test_ddim_on_affine_schedules_is_admissible():
    """Regression: "ddim" on affine(20) (sigma_2 / sigma_1 = 830) left gamma_1^2 = -2e-18 from rounding in
    rho_2, which relaxations.gammas used to reject; the analysis runs every schedule with every relaxation."""
    for n in (5, 20, 1000):
        g = R.gammas(S.affine(n), "ddim")
        assert torch.all(g[1:-1] == 0) and g[-1] == S.affine(n)[-1]
