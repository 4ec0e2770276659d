"""inrd.relaxations: rho_t (canonical = DDPM, IND, DDIM-like, constant, custom) and gamma_t (paper eqs. 19-21)."""

import math

import pytest
import torch

import inrd
from inrd import relaxations as R
from inrd import schedules as S


def test_relaxations():
    s = S.ddpm()
    r = R.relaxation(s, "canonical")
    assert math.isnan(r[0])
    assert r[1] == 1.0  # sigma_0 = 0
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    # paper eq. (18)-(21): rho_t = beta_t / betabar_t with betabar_t = 1 - abar_t (variance preserving)
    assert torch.allclose(r[1:], betas / (1 - abar), rtol=1e-10)
    assert (R.relaxation(s, "ind")[1:] == 1).all()
    assert torch.allclose(R.relaxation(s, "ddim")[1:], 1 - s[:-1] / s[1:])
    assert (R.relaxation(s, 0.3)[1:] == 0.3).all()
    custom = torch.linspace(0, 1, 1001, dtype=torch.float64)
    assert torch.equal(R.relaxation(s, custom)[1:], custom[1:])



def test_gammas_canonical_is_ddpm_posterior_std():
    s = S.ddpm()
    g = R.gammas(s, "canonical")
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    # paper eq. (19): gamma_{t-1}^2 = tilde beta_t / abar_{t-1}, here /4 for [0, 1] units, t = 2..T
    tilde = (1 - abar[:-1]) / (1 - abar[1:]) * betas[1:]
    assert torch.allclose(g[1:-1] ** 2, tilde / abar[:-1] / 4, rtol=1e-9)
    assert g[-1] == s[-1]  # start: rho_{T+1} = 1
    assert g[0] == 0
    assert torch.equal(R.gammas(s, "ind"), torch.cat([torch.zeros(1, dtype=torch.float64), s[1:]]))
    assert torch.all(R.gammas(s, "ddim")[1:-1] == 0)  # deterministic: rounding residue is not turned into noise



def test_noise_level_is_preserved():
    # eq. (20): sigma_{t-1}^2 = (1 - rho_t)^2 sigma_t^2 + gamma_{t-1}^2 for any admissible relaxation
    s = S.geometric(30, 0.01, 10.0)
    for rho in ("canonical", "ind", "ddim", 0.9):
        r, g = R.relaxation(s, rho), R.gammas(s, rho)
        lhs = s[1:-1] ** 2
        rhs = (1 - r[2:]) ** 2 * s[2:] ** 2 + g[1:-1] ** 2
        assert torch.allclose(lhs, rhs, rtol=1e-10)



def test_gammas_with_start_noise():
    s = S.geometric(10, 0.01, 1.0)
    assert R.gammas(s, start_noise=0.6)[-1].item() == pytest.approx(0.8)
    with pytest.raises(ValueError, match="start noise"):
        R.gammas(s, start_noise=2.0)



def test_bad_relaxations():
    s = S.geometric(10, 0.01, 1.0)
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        R.relaxation(s, 1.5)
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        R.relaxation(s, -0.1)
    with pytest.raises(ValueError, match="length T\\+1 = 11"):
        R.relaxation(s, torch.ones(10))
    with pytest.raises(ValueError, match="unknown relaxation"):
        R.relaxation(s, "ddpm++")
    # rho too small: names the first offending t and the smallest admissible rho there
    ratio = (s[1] / s[2]).item()
    with pytest.raises(ValueError, match=f"gamma_1\\^2 .* rho_2 = 0.1 .* >= 1 - sigma_1/sigma_2 = {1 - ratio:.6g}"):
        R.gammas(s, 0.1)


def test_bad_relaxation_and_start_noise_inputs():
    s = S.geometric(5, 0.01, 1.0)
    for rho in (None, True, "0.5x"):
        with pytest.raises((TypeError, ValueError), match="rho|relaxation"):
            R.relaxation(s, rho)
    for start in (float("nan"), -1.0, float("inf")):
        with pytest.raises(ValueError, match="start_noise .* finite number >= 0"):
            R.gammas(s, "ind", start_noise=start)


def test_ddim_eta_interpolates_ddim_and_canonical():
    s = S.ddpm()[S.prune_indices(1000, 20, 2.5, 10)]
    r0, r1 = R.ddim_eta(s, 0.0), R.ddim_eta(s, 1.0)
    assert torch.allclose(r0[1:], R.relaxation(s, "ddim")[1:], rtol=0, atol=1e-15)
    assert torch.allclose(r1[1:], R.relaxation(s, "canonical")[1:], rtol=0, atol=1e-15)
    # fresh noise before step t is eta^2 times canonical's (DDIM's sigma_t(eta), in INRD's units)
    g_can = R.gammas(s, "canonical")
    for eta in (0.3, 0.7):
        g = R.gammas(s, R.ddim_eta(s, eta))
        assert torch.allclose(g[1:-1] ** 2, eta**2 * g_can[1:-1] ** 2, rtol=1e-10, atol=0)
        assert g[-1] == pytest.approx(float(s[-1]), rel=1e-12)  # the start is unchanged
    with pytest.raises(ValueError, match="eta must be in"):
        R.ddim_eta(s, 1.5)


def test_a_scheme_resolves_sigmas_rhos_and_gammas_once_and_sample_runs_it_as_given():
    s = S.geometric(6, 0.01, 1.0)
    sch = R.scheme(s, "ddim")
    assert sch.T == 6 and sch.rho == "ddim" and torch.equal(sch.rhos[1:], R.relaxation(s, "ddim")[1:])
    assert torch.equal(sch.gammas, R.gammas(s, "ddim"))
    D = lambda x, sigma: 0.5 + 0.9 * (x - 0.5)  # noqa: E731
    a = inrd.sample(D, sch, shape=(2, 1, 4, 4), init=0.5, init_std=0.3, seed=1)
    b = inrd.sample(D, s, "ddim", shape=(2, 1, 4, 4), init=0.5, init_std=0.3, seed=1)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="fixes rho"):
        inrd.sample(D, sch, "ind", shape=(1, 1, 4, 4))
    assert R.scheme(s, 0.9).rho == 0.9 and R.scheme(s, torch.full((7,), 0.95)).rho == "custom"
    assert R.scheme(s, "IND").rho == "ind"  # one spelling


def test_complex_sigmas_or_rho_are_refused():
    with pytest.raises(ValueError, match="complex"):
        R.scheme(torch.tensor([0, 0.1, 0.2], dtype=torch.complex64))
    with pytest.raises(TypeError):
        R.relaxation(S.geometric(3, 0.01, 1.0), 0.5 + 1j)
