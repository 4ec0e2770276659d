"""INRD reproduces other libraries' samplers exactly, given identical noise.

Every test runs ``inrd.sample`` and a reference sampler on the same schedule, the same denoiser and the
same Gaussian draws, and compares the two *trajectories* state by state (not only the final sample: at
large sigma the exact denoiser forgets its input, so a wrong early step could hide in V_0).

Common ground. INRD (paper, Section 2.3) writes a step as V_{t-1} = D^{rho_t}_{sigma_t}(U_t) with
U_t = V_t + gamma_t Z_t the iterate *at noise level sigma_t*. The reference samplers below carry U_t
(their "x_t") and write one step as

    x_{t-1} = (1 - rho_t) x_t + rho_t D(x_t, sigma_t) + sigma_{t-1} c_t z,

i.e. they add the noise *after* denoising. This is the same recursion, U_{t-1} = D^{rho_t}(U_t) +
gamma_{t-1} Z_{t-1}, provided that (a) the noise they draw on the step t -> t-1 is our Z_{t-1}, and
(b) their noise std is our gamma_{t-1}: sigma_{t-1}^2 c_t^2 = sigma_{t-1}^2 - (1 - rho_t)^2 sigma_t^2
(paper eq. 20). Both hold for the mappings below; the tests check (a) by injecting Z_{t-1} and (b) by
the match itself. Their start x_T = (mean) + sigma_T Z_T is our U_T with V_T = mean, gamma_T = sigma_T.

Denoiser: the exact MMSE denoiser of a Gaussian law on 1x4x4 images (``GaussianDenoiser``), with a
random covariance whose eigenvalues 0.01..0.1 are image-like variances: it depends on x and on sigma
in a non-trivial way, and it is exact in float64, so any mismatch is the samplers' own.

Tolerance. Everything runs in float64 (unit roundoff u = 1.1e-16). The two sides evaluate different
but algebraically equal formulas (e.g. deepinv's sigma_t^2 (1 - r^2) (D - x) / sigma_t^2 against our
x + rho (D - x)), so they differ by a few ulps of the state per step; errors are not amplified (each
step is a convex combination of x and of a contraction D). The state scale is ~ 1 + 3 sigma_t, so we
compare ``|ours - theirs| / (1 + sigma_t)`` with ``TOL = 1e-12``, the bound "~10 ulps per step over
N <= 1000 steps" (1000 * 10 * 1.1e-16). Measured: 1.2e-14 for the 1000-step DDPM, <= 2.2e-15 for every
run of <= 50 steps (deepinv and smalldiffusion). Any modelling discrepancy is ~1e9 times larger (the
negative controls below differ by > 1e-3).
"""

from __future__ import annotations

import math

import pytest
import torch
from deepinv.sampling import AncestralSolver, DDIMSolver, DDPMSolver, EDMDiffusionSDE

import inrd
from inrd import schedules
from inrd.denoisers import GaussianDenoiser

try:  # smalldiffusion is a test extra (an oracle); its tests skip without it
    from smalldiffusion.model import ModelMixin
except ImportError:  # pragma: no cover
    ModelMixin = object

F64 = torch.float64
IMAGE = (1, 4, 4)  # (C, H, W): d = 16 pixels, enough for a full covariance
BATCH = 3
TOL = 1e-12  # float64, see the module docstring (measured <= 1.2e-14)
TOL_F32 = 1e-6  # deepinv's real SDE evaluates the denoiser in float32, see test_deepinv_real_sde_*


# --------------------------------------------------------------------------------------------------
# shared fixtures: an exact denoiser, a table of Gaussian draws, our side of the comparison
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def denoiser() -> GaussianDenoiser:
    """Exact MMSE denoiser of N(m, C) on 1x4x4 images, C = Q diag(0.01..0.1) Q^T with Q random."""
    g = torch.Generator().manual_seed(2025)
    d = math.prod(IMAGE)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    lam = torch.logspace(-2, -1, d, dtype=F64)  # pixel variances of natural images are ~0.01..0.1
    cov = (q * lam) @ q.T
    mean = 0.3 + 0.4 * torch.rand(IMAGE, generator=g, dtype=F64)
    return GaussianDenoiser(mean, (cov + cov.T) / 2)


def noise_table(T: int, seed: int = 0) -> dict[int, torch.Tensor]:
    """Z_t for t = 0..T (float64, (B, C, H, W)): the one source of randomness of both samplers."""
    g = torch.Generator().manual_seed(seed)
    return {t: torch.randn((BATCH, *IMAGE), generator=g, dtype=F64) for t in range(T + 1)}


def inrd_trajectory(denoiser, sigmas, rho, Z, init=0.5) -> list[torch.Tensor]:
    """Run ``inrd.sample`` with noise Z and return [U_T, U_{T-1}, ..., U_1, V_0], U_t = V_t + gamma_t Z_t
    (the iterate at noise level sigma_t, which is what the other libraries carry)."""
    noisy = []
    v0 = inrd.sample(
        denoiser,
        sigmas,
        rho,
        shape=(BATCH, *IMAGE),
        init=init,
        noise=lambda t, like: Z[t],  # KeyError if inrd asked for a Z_t outside 1..T
        callback=lambda step: noisy.append(step.noisy.clone()),
        dtype=F64,
    )
    return noisy + [v0]


def max_scaled_error(ours: list[torch.Tensor], theirs: list[torch.Tensor], sigmas_desc) -> float:
    """max over states of |ours - theirs| / (1 + sigma), sigma the noise level of that state."""
    assert len(ours) == len(theirs), f"{len(ours)} states against {len(theirs)}"
    err = 0.0
    for a, b, s in zip(ours, theirs, sigmas_desc):
        assert a.shape == b.shape and b.dtype == F64
        err = max(err, float((a - b).abs().max()) / (1.0 + float(s)))
    return err


def rho_from_exponent(sigmas: torch.Tensor, exponent) -> torch.Tensor:
    """rho_t = 1 - r_t^exponent with r_t = sigma_{t-1} / sigma_t (exponent scalar or per step)."""
    r = sigmas[:-1] / sigmas[1:]
    return torch.cat([torch.tensor([float("nan")], dtype=F64), 1.0 - r**exponent])


def ddpm_pruned(steps: int) -> torch.Tensor:
    return schedules.prune(schedules.ddpm(), steps)


# --------------------------------------------------------------------------------------------------
# deepinv 0.5: AncestralSolver (DDPMSolver = eta 1, DDIMSolver = eta in [0, 1], or the SDE's alpha)
# --------------------------------------------------------------------------------------------------
#
# AncestralSolver.step from time t0 to t1 (deepinv/sampling/sde_solver.py), variance exploding
# (scale s = 1), r = sigma(t1) / sigma(t0):
#     x1 = x0 + sigma(t0)^2 (1 - r^{1+alpha}) score(x0) + sigma(t1) sqrt(1 - r^{2 alpha}) z
# and with the denoiser's score, score = (D(x0, sigma(t0)) - x0) / sigma(t0)^2 (Tweedie):
#     x1 = (1 - rho) x0 + rho D(x0),   rho = 1 - r^{1+alpha},
# noise std^2 = sigma(t1)^2 (1 - r^{2 alpha}) = sigma(t1)^2 - (1 - rho)^2 sigma(t0)^2 = gamma^2 (eq. 20).
# So AncestralSolver is INRD with rho_t = 1 - r_t^{1+alpha}:
#   * eta = 1 (DDPMSolver): r^{2 alpha} := 1 - (1 - r^2) = r^2, alpha = 1, rho = 1 - r^2: canonical;
#   * eta = 0 (DDIMSolver default): r^{2 alpha} := 1, alpha = 0, rho = 1 - r, no noise: inrd's "ddim";
#   * eta in (0, 1): r^{2 alpha_eta} := 1 - eta^2 (1 - r^2), rho = 1 - r^{1 + alpha_eta}, between the two;
#   * eta = None: alpha = sde.alpha(t).
#
# Which SDE. deepinv's EDMDiffusionSDE.score calls the denoiser on ``x.to(torch.float32)`` with a float32
# sigma (documented: "except for the denoiser which will use torch.float32"), so a real deepinv SDE cannot
# agree beyond float32 rounding. The exactness tests therefore drive the real solver (its own ``sample``
# and ``step``) with ``ToySDE``, a minimal object providing exactly what AncestralSolver reads: sigma_t,
# scale_t = 1, alpha, score = (D(x, sigma) - x) / sigma^2 in float64, device and dtype. A separate test
# runs the full user path, a real ``EDMDiffusionSDE`` (variance exploding, [-1, 1] states through
# deepinv's MinusOneOneDenoiserWrapper, our sigmas doubled), at float32 tolerance.
#
# Time is the index into our ascending schedule: the solver's timesteps are T, T-1, ..., 0 and
# sigma(t) = sigmas[t], so the solver visits exactly our noise levels.
# Noise: AncestralSolver draws through its method ``randn_like`` (one call per step with noise_std > 0,
# after the score); we replace it on the instance by the queue Z_{T-1}, ..., Z_1.


class ToySDE:
    """What ``AncestralSolver`` needs of an SDE, in float64 and [0, 1] units (variance exploding)."""

    device = torch.device("cpu")
    dtype = F64

    def __init__(self, denoiser, sigmas: torch.Tensor, alpha: float = 1.0):
        self.denoiser, self.sigmas, self._alpha = denoiser, sigmas, alpha

    def sigma_t(self, t) -> torch.Tensor:
        return self.sigmas[int(round(float(t)))]

    def scale_t(self, t) -> torch.Tensor:
        return torch.ones((), dtype=F64)

    def alpha(self, t) -> float:
        return self._alpha

    def score(self, x: torch.Tensor, t) -> torch.Tensor:
        sigma = self.sigma_t(t)
        return (self.denoiser(x, float(sigma)) - x) / sigma**2


def inject_noise(solver, draws: list[torch.Tensor]) -> list[int]:
    """Make ``solver.randn_like`` return ``draws`` in order; returns a one-element list counting the calls."""
    it, calls = iter(draws), [0]

    def randn_like(input, seed=None):
        calls[0] += 1
        z = next(it)
        assert z.shape == input.shape
        return z.to(input).clone()

    solver.randn_like = randn_like
    return calls


def timesteps(T: int) -> torch.Tensor:
    """Solver times T, T-1, ..., 0: indices into our schedule (sigma(t) = sigmas[t])."""
    return torch.arange(T, -1, -1, dtype=F64)


def deepinv_trajectory(solver, sde, sigmas, Z) -> list[torch.Tensor]:
    """Run ``solver.sample`` over its timesteps T..0 from x_T = 0.5 + sigma_T Z_T (our U_T for V_T = 0.5)
    with noise Z_{T-1}, ..., Z_1; returns its trajectory [x_T, ..., x_0]."""
    T = sigmas.numel() - 1
    assert torch.equal(solver.timesteps, timesteps(T))
    calls = inject_noise(solver, [Z[t] for t in range(T - 1, 0, -1)])
    out = solver.sample(sde, 0.5 + sigmas[T] * Z[T], get_trajectory=True)
    stochastic = bool(calls[0])
    assert calls[0] == (T - 1 if stochastic else 0), f"deepinv drew noise {calls[0]} times in {T} steps"
    return list(out.trajectory)


@pytest.mark.parametrize("steps", [1000, 50, 7], ids=["ddpm-T1000", "pruned-50", "pruned-7"])
def test_deepinv_ddpm_solver_is_canonical_inrd(denoiser, steps):
    """DDPMSolver (eta = 1) on DDPM sigmas, full and pruned (7 does not divide 1000) == canonical INRD."""
    sigmas = ddpm_pruned(steps) if steps < 1000 else schedules.ddpm()
    T = steps
    Z = noise_table(T)
    ours = inrd_trajectory(denoiser, sigmas, "canonical", Z, init=0.5)
    theirs = deepinv_trajectory(DDPMSolver(timesteps(T)), ToySDE(denoiser, sigmas), sigmas, Z)
    assert max_scaled_error(ours, theirs, sigmas.flip(0)) < TOL


@pytest.mark.parametrize(
    "sigmas",
    [ddpm_pruned(25), schedules.karras(12, 0.002, 80.0)],
    ids=["ddpm-pruned-25", "karras-12"],
)
def test_deepinv_ddim_solver_is_inrd_ddim(denoiser, sigmas):
    """DDIMSolver(eta = 0): rho = 1 - r, gamma = 0 (deterministic): inrd's "ddim" relaxation."""
    T = sigmas.numel() - 1
    Z = noise_table(T)
    ours = inrd_trajectory(denoiser, sigmas, "ddim", Z, init=0.5)
    theirs = deepinv_trajectory(DDIMSolver(timesteps(T), eta=0.0), ToySDE(denoiser, sigmas), sigmas, Z)
    assert max_scaled_error(ours, theirs, sigmas.flip(0)) < TOL


def test_deepinv_intermediate_eta_is_inrd_with_rho_between_ddim_and_ind(denoiser):
    """DDIMSolver(eta = 0.5): rho_t = 1 - r^{1 + alpha_eta}, alpha_eta = log(1 - eta^2 (1 - r^2)) / (2 log r)."""
    eta = 0.5
    sigmas = ddpm_pruned(20)
    T = sigmas.numel() - 1
    r = sigmas[:-1] / sigmas[1:]
    alpha_eta = torch.log(1 - eta**2 * (1 - r**2)) / (2 * torch.log(r))  # last step: r = 0 -> alpha = 0
    rho = rho_from_exponent(sigmas, 1 + alpha_eta)
    assert (rho[1:] >= 1 - r - 1e-15).all() and (rho[1:] <= 1).all()  # between DDIM and IND
    assert (rho[2:] < 1 - r[1:] ** 2).all()  # and less than canonical (eta < 1) where sigma_{t-1} > 0
    Z = noise_table(T)
    ours = inrd_trajectory(denoiser, sigmas, rho, Z, init=0.5)
    theirs = deepinv_trajectory(DDIMSolver(timesteps(T), eta=eta), ToySDE(denoiser, sigmas), sigmas, Z)
    assert max_scaled_error(ours, theirs, sigmas.flip(0)) < TOL


def test_deepinv_sde_alpha_is_inrd_with_rho_one_minus_r_power(denoiser):
    """AncestralSolver(eta=None) uses the SDE's alpha (deepinv's VE default 0.25): rho = 1 - r^{1.25}."""
    alpha = 0.25
    sigmas = schedules.geometric(15, 0.01, 50.0)
    T = sigmas.numel() - 1
    rho = rho_from_exponent(sigmas, 1 + alpha)
    Z = noise_table(T)
    ours = inrd_trajectory(denoiser, sigmas, rho, Z, init=0.5)
    sde = ToySDE(denoiser, sigmas, alpha=alpha)
    theirs = deepinv_trajectory(AncestralSolver(timesteps(T)), sde, sigmas, Z)
    assert max_scaled_error(ours, theirs, sigmas.flip(0)) < TOL
    # negative control: the canonical relaxation is a different sampler, by far more than TOL
    other = inrd_trajectory(denoiser, sigmas, "canonical", Z, init=0.5)
    assert max_scaled_error(other, theirs, sigmas.flip(0)) > 1e-3


def _real_deepinv_sde(denoiser, sigmas, solver, alpha=1.0) -> EDMDiffusionSDE:
    """deepinv's own EDMDiffusionSDE, variance exploding, states in [-1, 1] (minus_one_one=True, its
    default): a state W = 2 U - 1 has noise std 2 sigma, so sigma(t) = 2 sigmas[t]; deepinv wraps our
    [0, 1] denoiser in MinusOneOneDenoiserWrapper, which calls it on ((W + 1) / 2, sigma(t) / 2)."""
    sig_w = 2 * sigmas
    return EDMDiffusionSDE(
        sigma_t=lambda t: sig_w[t.round().long()],
        variance_exploding=True,
        alpha=alpha,
        denoiser=denoiser,
        solver=solver,
        dtype=F64,
    )


@pytest.mark.parametrize("which", ["ddpm", "ddim", "alpha-0.25"])
def test_deepinv_real_sde_matches_in_float32(denoiser, which):
    """The full deepinv path: EDMDiffusionSDE.sample, [-1, 1] states, deepinv's own score and wrapper.

    Tolerance: deepinv rounds the denoiser input and sigma to float32 (relative 6e-8), so each step
    differs by a few float32 ulps of the state scale, not amplified; measured max over the trajectory
    5e-8 (relative to 1 + sigma), asserted < TOL_F32 = 1e-6 (16 float32 ulps).
    The match also pins the units: sigma_deepinv = 2 sigma_inrd, W = 2 U - 1."""
    sigmas = ddpm_pruned(20)
    T = sigmas.numel() - 1
    solver, rho, alpha = {
        "ddpm": (DDPMSolver(timesteps(T)), "canonical", 1.0),
        "ddim": (DDIMSolver(timesteps(T), eta=0.0), "ddim", 1.0),
        "alpha-0.25": (AncestralSolver(timesteps(T)), rho_from_exponent(sigmas, 1.25), 0.25),
    }[which]
    Z = noise_table(T)
    ours = inrd_trajectory(denoiser, sigmas, rho, Z, init=0.5)
    sde = _real_deepinv_sde(denoiser, sigmas, solver, alpha=alpha)
    calls = inject_noise(solver, [Z[t] for t in range(T - 1, 0, -1)])
    # deepinv's zero-mean start in [-1, 1] is our V_T = 0.5, and its noise 2 sigma z maps to sigma z
    w0, traj = sde.sample(2 * sigmas[T] * Z[T], get_trajectory=True)
    assert calls[0] == (0 if which == "ddim" else T - 1)
    assert max_scaled_error(ours, list(traj), sigmas.flip(0)) < TOL_F32
    assert float((ours[-1] - w0).abs().max()) < TOL_F32


# --------------------------------------------------------------------------------------------------
# smalldiffusion: samples(model, sigmas, gam, mu)
# --------------------------------------------------------------------------------------------------
#
# smalldiffusion/diffusion.py, ``samples``: sigmas are *descending* (sigma_N, ..., sigma_0), the model
# predicts eps of x = x0 + sigma eps (variance exploding, in whatever units the model works), and a step
# (sig -> sig_prev) with gam = 1 is
#     sig_p = (sig_prev / sig^mu)^{1 / (1 - mu)},   eta = sqrt(sig_prev^2 - sig_p^2),
#     x <- x - (sig - sig_p) eps(x, sig) + eta z.
# With eps = (x - D(x, sig)) / sig this is x <- (1 - rho) x + rho D(x) + eta z with
#     1 - rho = sig_p / sig = (sig_prev / sig)^{1 / (1 - mu)},   i.e.  rho_t = 1 - r_t^{1/(1-mu)},
# and eta^2 = sig_prev^2 - (1 - rho)^2 sig^2 = gamma_{t-1}^2 (eq. 20): INRD, with the same exponent as
# deepinv's 1 + alpha for alpha = mu / (1 - mu). mu = 0: rho = 1 - r, eta = 0 (DDIM, "ddim");
# mu = 1/2: rho = 1 - r^2 (DDPM, "canonical"). smalldiffusion's eta is not DDIM's eta.
#
# gam != 1 is *not* INRD: eps_av = gam eps + (1 - gam) eps_prev extrapolates with the previous step's
# prediction (a two-step, momentum-like method), see the negative control below.
#
# Draws: ``model.rand_input(B)`` gives the start x_N = sigma_N z (zero mean: our V_T = 0 in the model's
# units) and one z per step, *including the last* (times eta, 0 when sigma_0 = 0). The model is ours
# (smalldiffusion expects the user to provide it), so its rand_input hook is the natural injection
# point: it returns Z_T, Z_{T-1}, ..., Z_0 in order.
# Last step: smalldiffusion's own schedules end at their smallest training sigma, not 0
# (``Schedule.sample_sigmas`` appends ``self[0]``), and still add eta z there: its output is then our
# U_0 = V_0 + gamma_0 Z_0 with gamma_0^2 = sigma_0^2 - (1 - rho_1)^2 sigma_1^2, one noise more than V_0.


class SmallDiffusionModel(ModelMixin, torch.nn.Module):
    """A smalldiffusion model around a [0, 1] denoiser: eps(x, sigma) = (x - D(x, sigma)) / sigma.
    smalldiffusion's own ModelMixin.predict_eps_cfg -> predict_eps -> forward path computes it.

    With ``minus_one_one`` the model works on [-1, 1] states W = 2 U - 1 with sigma_W = 2 sigma, as
    smalldiffusion's DDPM schedule assumes: D_W(W, s) = 2 D((W + 1) / 2, s / 2) - 1.
    ``rand_input`` returns the injected draws in order (smalldiffusion's noise hook on the model).
    """

    def __init__(self, denoiser, draws, minus_one_one=False):
        super().__init__()
        self.denoiser, self.minus_one_one = denoiser, minus_one_one
        self.input_dims = IMAGE
        self._draws, self.calls = iter(draws), 0

    def rand_input(self, batchsize):
        self.calls += 1
        z = next(self._draws)
        assert z.shape[0] == batchsize
        return z.clone()

    def forward(self, x, sigma, cond=None):
        assert cond is None and sigma.ndim == 0  # samples() passes one sigma for the batch
        s = float(sigma)
        if self.minus_one_one:
            d = 2 * self.denoiser((x + 1) / 2, s / 2) - 1
        else:
            d = self.denoiser(x, s)
        return (x - d) / s


def smalldiffusion_trajectory(denoiser, sigmas, Z, gam=1.0, mu=0.0, minus_one_one=False) -> list[torch.Tensor]:
    """Run ``smalldiffusion.samples`` on ``sigmas`` (ascending here, flipped for it); returns the states
    after each step, U_{T-1}, ..., U_0, in [0, 1] units."""
    samples = pytest.importorskip("smalldiffusion").samples

    T = sigmas.numel() - 1
    scale = 2.0 if minus_one_one else 1.0
    model = SmallDiffusionModel(denoiser, [Z[t] for t in range(T, -1, -1)], minus_one_one)
    states = list(samples(model, scale * sigmas.flip(0), gam=gam, mu=mu, batchsize=BATCH))
    assert model.calls == T + 1  # start + one draw per step
    return [(w + 1) / 2 if minus_one_one else w for w in states]


def _ours_after_each_step(denoiser, sigmas, rho, Z, init):
    """INRD's states U_{T-1}, ..., U_1, V_0 (what smalldiffusion yields when sigma_0 = 0)."""
    return inrd_trajectory(denoiser, sigmas, rho, Z, init=init)[1:]


@pytest.mark.parametrize(
    "mu, rho",
    [(0.0, "ddim"), (0.5, "canonical"), (0.3, None)],
    ids=["mu0-ddim", "mu0.5-canonical", "mu0.3"],
)
def test_smalldiffusion_mu_is_inrd_with_one_minus_rho_power(denoiser, mu, rho):
    """samples(..., gam=1, mu) == INRD with 1 - rho_t = (sigma_{t-1} / sigma_t)^{1/(1-mu)}, sigma_0 = 0."""
    sigmas = ddpm_pruned(30)
    T = sigmas.numel() - 1
    if rho is None:
        rho = rho_from_exponent(sigmas, 1 / (1 - mu))
    Z = noise_table(T)
    theirs = smalldiffusion_trajectory(denoiser, sigmas, Z, gam=1.0, mu=mu)
    ours = _ours_after_each_step(denoiser, sigmas, rho, Z, init=0.0)  # smalldiffusion starts at sigma_T z
    assert max_scaled_error(ours, theirs, sigmas.flip(0)[1:]) < TOL


def test_smalldiffusion_ddpm_schedule_in_minus_one_one_units(denoiser):
    """smalldiffusion's own DDPM schedule and [-1, 1] model: its sigmas are 2x ours, its zero-mean start
    is our V_T = 0.5, its trailing subgrid is our prune(), and its last step (to sigma_1 > 0) adds
    gamma_0 Z_0 on top of our V_0."""
    ScheduleDDPM = pytest.importorskip("smalldiffusion").ScheduleDDPM

    steps, mu = 10, 0.5
    sd = ScheduleDDPM(1000).sample_sigmas(steps).to(F64)  # descending, float32 arithmetic, last = sigma_1
    sigmas = sd.flip(0) / 2  # our units; sigmas[0] = DDPM sigma_1 > 0
    ref = schedules.ddpm()[schedules.prune_indices(1000, steps)]
    # same levels as our pruned DDPM grid, except the bottom (DDPM's sigma_1 instead of 0);
    # smalldiffusion computes alphabar in float32 (cumprod of 1000 factors): relative error < 1e-5
    torch.testing.assert_close(sigmas[1:], ref[1:], rtol=1e-5, atol=0)
    # the bottom level sqrt(1 / abar_1 - 1), abar_1 = 1 - 1e-4, cancels in float32: relative error
    # ~ 6e-8 / 1e-4 / 2 = 3e-4 at most (measured 3.3e-5)
    assert float(sigmas[0]) == pytest.approx(float(schedules.ddpm()[1]), rel=1e-3)

    T = steps
    Z = noise_table(T)
    theirs = smalldiffusion_trajectory(denoiser, sigmas, Z, gam=1.0, mu=mu, minus_one_one=True)
    ours = _ours_after_each_step(denoiser, sigmas, "canonical", Z, init=0.5)
    rho_1 = 1 - (sigmas[0] / sigmas[1]) ** 2
    gamma_0 = torch.sqrt(sigmas[0] ** 2 - (1 - rho_1) ** 2 * sigmas[1] ** 2)  # = sigma_0 sqrt(1 - r^2) > 0
    ours[-1] = ours[-1] + gamma_0 * Z[0]
    assert max_scaled_error(ours, theirs, sigmas.flip(0)[1:]) < TOL


def test_smalldiffusion_gam_not_one_is_not_inrd(denoiser):
    """Negative control: gam = 2 ("accelerated") mixes in the previous step's eps, which no relaxation
    reproduces; it differs from canonical / ddim INRD by far more than TOL (and gam = 1 matches)."""
    sigmas = ddpm_pruned(30)
    T = sigmas.numel() - 1
    Z = noise_table(T)
    ours = _ours_after_each_step(denoiser, sigmas, "ddim", Z, init=0.0)
    levels = sigmas.flip(0)[1:]
    assert max_scaled_error(ours, smalldiffusion_trajectory(denoiser, sigmas, Z, gam=1.0, mu=0.0), levels) < TOL
    assert max_scaled_error(ours, smalldiffusion_trajectory(denoiser, sigmas, Z, gam=2.0, mu=0.0), levels) > 1e-3
