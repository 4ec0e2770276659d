import math
import typing

import pytest
import torch

from inrd import relaxations as R
from inrd import schedules as S


def test_ddpm_check_values():
    s = S.ddpm()
    assert s.dtype == torch.float64 and s.shape == (1001,)
    assert s[0] == 0
    # check values (sigma_1, sigma_T of the DDPM grid), and sigma_1 = sqrt(beta_1 / (1 - beta_1)) / 2 in closed form
    assert s[1].item() == pytest.approx(math.sqrt(1e-4 / (1 - 1e-4)) / 2, rel=1e-12)
    assert s[1].item() == pytest.approx(0.0050003, abs=5e-8)
    assert s[-1].item() == pytest.approx(78.7036, abs=5e-5)


def float32_cumprod_error_bound(abar: torch.Tensor) -> torch.Tensor:
    """Bound on the relative error of alphabar_t = prod_{s <= t} (1 - beta_s) computed in float32 (as
    diffusers does) from the exact values, to first order in u = 2^-24: rounding beta_s to float32 moves
    1 - beta_s by u beta_s / (1 - beta_s) relatively, the subtraction and the product add u each, and
    the final rounding of our float64 value to float32 one more u."""
    u = 2.0**-24
    beta = 1 - abar / torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])
    return u * (torch.cumsum(2 + beta / (1 - beta), 0) + 1)


def test_ddpm_matches_diffusers_alphas():
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    ours = S.ddpm_alphas_cumprod()
    rel = (ours - sched.alphas_cumprod.double()).abs() / ours
    assert (rel <= float32_cumprod_error_bound(ours)).all()  # measured: at most 8% of the bound


def test_cosine_matches_diffusers():
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    s = S.cosine()
    abar = 1 / (1 + 4 * s[1:] ** 2)  # invert sigma_t = sqrt((1 - abar_t) / abar_t) / 2 (float64: exact to 1e-15)
    rel = (abar - sched.alphas_cumprod.double()).abs() / abar
    assert (rel <= float32_cumprod_error_bound(abar)).all()  # measured: at most 11% of the bound


@pytest.mark.parametrize("name", ["affine", "geometric", "super-geometric", "karras"])
def test_parametric_schedules_endpoints_and_shape(name):
    s = S.make(name, steps=50, sigma_min=0.01, sigma_max=0.2)
    assert s.shape == (51,) and s[0] == 0
    assert s[1].item() == pytest.approx(0.01, rel=1e-12)
    assert s[-1].item() == pytest.approx(0.2, rel=1e-12)
    assert (s[1:] > s[:-1]).all()


def test_schedule_shapes_of_log_sigma():
    g = torch.log(S.geometric(20, 0.01, 1.0)[1:])
    assert torch.allclose(g[1:] - g[:-1], torch.full((19,), math.log(100) / 19, dtype=torch.float64))
    sg = torch.log(S.super_geometric(20, 0.01, 1.0)[1:])
    d = sg[1:] - sg[:-1]
    assert (d[1:] > d[:-1]).all()  # log sigma strictly convex in t
    a = S.affine(20, 0.01, 1.0)[1:]
    assert torch.allclose(a[1:] - a[:-1], torch.full((19,), 0.99 / 19, dtype=torch.float64))
    k = S.karras(20, 0.01, 1.0)[1:] ** (1 / 7)
    assert torch.allclose(k[1:] - k[:-1], (k[-1] - k[0]).expand(19) / 19)


@pytest.mark.parametrize("steps", [1000, 250, 100, 50, 20, 7, 3, 1])
def test_prune_matches_diffusers_trailing(steps):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, timestep_spacing="trailing")
    sched.set_timesteps(steps)
    idx = S.prune_indices(1000, steps)
    # diffusers' timesteps are 0-indexed (timestep k is the paper's t = k + 1), descending
    assert idx[0] == 0
    assert torch.equal(idx[1:].flip(0), sched.timesteps.long() + 1)
    s = S.prune(S.ddpm(), steps)
    assert s.shape == (steps + 1,) and s[-1] == S.ddpm()[-1]


def test_prune_divisor_is_the_papers_subgrid():
    s = S.ddpm()
    assert torch.equal(S.prune(s, 50), s[::20])


@pytest.mark.parametrize(
    "sigmas, match",
    [
        ([0.0, 0.2, 0.1], "strictly ascending.*sigmas\\[2\\]"),
        ([0.0, -0.1, 0.3], "negative"),
        ([0.0, float("nan"), 0.3], "not finite"),
        ([0.0, 0.1, float("inf")], "not finite"),
        ([[0.0, 0.1]], "1-D"),
        ([0.1], "at least 2"),
        ([0.0, 0.1, 0.1], "strictly ascending"),
    ],
)
def test_bad_sigmas(sigmas, match):
    with pytest.raises(ValueError, match=match):
        S.check_sigmas(sigmas)
    with pytest.raises(ValueError, match=match):
        R.gammas(sigmas)  # every consumer of a schedule validates it the same way


def test_power_spacing_of_a_pruned_grid():
    idx = S.prune_indices(1000, 20, power=1.5, first=10)
    k = torch.arange(1, 21, dtype=torch.float64)
    # a_k = round(a_1 + (T - a_1) ((k - 1) / (n - 1))^power): no merged neighbours at n = 20, so no bumps
    assert torch.equal(idx[1:], torch.round(10 + 990 * ((k - 1) / 19) ** 1.5).long())
    assert idx[0] == 0 and idx[1] == 10 and idx[-1] == 1000
    assert torch.equal(S.prune_indices(1000, 20, 1.0, None), S.prune_indices(1000, 20))  # trailing, as diffusers
    assert S.prune_indices(1000, 20, 1.0, 50).tolist() == list(range(0, 1001, 50))
    # dense end: rounding would merge the first levels; they stay distinct and a_n stays T
    dense = S.prune_indices(30, 25, power=3.0, first=1)
    assert (dense.diff() > 0).all() and dense[1] == 1 and dense[-1] == 30
    assert S.prune_indices(12, 12, power=2.0, first=1).tolist() == list(range(13))
    assert torch.equal(S.prune(S.ddpm(), 20, 1.5, 10), S.ddpm()[idx])
    with pytest.raises(ValueError, match="power must be a finite number > 0"):
        S.prune_indices(1000, 20, power=0.0)
    with pytest.raises(ValueError, match=r"first must be an integer in 1..T - steps \+ 1 = 1..981"):
        S.prune_indices(1000, 20, power=2.0, first=990)


def test_bad_prune():
    with pytest.raises(ValueError, match="1..T = 1..1000"):
        S.prune(S.ddpm(), 1001)
    with pytest.raises(ValueError, match="1..T"):
        S.prune(S.ddpm(), 0)


def test_load_sigmas(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("# my schedule\n0\n0.01, 0.02\n0.5  # top\n")
    assert torch.equal(S.load_sigmas(f), torch.tensor([0, 0.01, 0.02, 0.5], dtype=torch.float64))
    f.write_text("0 0.1 abc\n")
    with pytest.raises(ValueError, match="'abc' is not a number"):
        S.load_sigmas(f)
    f.write_text("0 0.3 0.2\n")
    with pytest.raises(ValueError, match="strictly ascending"):
        S.load_sigmas(f)
    with pytest.raises(ValueError, match="cannot read"):
        S.load_sigmas(tmp_path / "missing.txt")
    f.write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no numbers"):
        S.load_sigmas(f)
    f.write_bytes(bytes([0x80, 0xB0, 0xFF, 0x00]))  # a binary file given by mistake (a checkpoint, an image)
    with pytest.raises(ValueError, match="not a text file"):
        S.load_sigmas(f)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: S.ddpm(T=0), "T .* must be a positive integer, got 0"),
        (lambda: S.ddpm(T=2.5), "positive integer"),
        (lambda: S.ddpm(beta_end=1.5), "0 < beta_start <= beta_end < 1"),
        (lambda: S.ddpm(beta_end=1.0), "0 < beta_start <= beta_end < 1"),  # alphabar = 0: sigma_T infinite
        (lambda: S.ddpm(beta_start=0.0), "0 < beta_start"),  # beta_1 = 0: sigma_1 = 0 = sigma_0
        (lambda: S.ddpm(beta_start=0.03), "beta_start <= beta_end"),
        (lambda: S.cosine(T=0), "positive integer"),
        (lambda: S.cosine(max_beta=1.0), "0 < max_beta < 1"),
        (lambda: S.karras(10, rho=0), "finite rho > 0"),
        (lambda: S.karras(10, rho=float("nan")), "finite rho > 0"),
        (lambda: S.karras(5, 1e-300, 1e300, rho=1e-3), "overflow float64"),
        (lambda: S.super_geometric(10, power=float("inf")), "finite power >= 1"),
        (lambda: S.geometric(10, 0.1, 1.0, sigma_0=0.2), "sigma_0 = 0.2 must be >= 0 and below sigma_1 = 0.1"),
        (lambda: S.affine(10**6, 1e-3, 1e-3 * (1 + 1e-13)), "not strictly ascending in float64; use fewer steps"),
        (lambda: S.geometric(0), "steps must be a positive integer"),
        (lambda: S.geometric(True), "steps must be a positive integer"),
        (lambda: S.geometric(10, float("nan"), 1.0), "0 < sigma_min < sigma_max"),
        (lambda: S.geometric(10, 0.1, float("inf")), "sigma_max < inf"),
        (lambda: S.sigmas_from_alphas_cumprod([0.9, 0.95]), "decrease strictly"),
        (lambda: S.sigmas_from_alphas_cumprod([0.9, 0.0]), r"values in \(0, 1\)"),
    ],
)
def test_bad_schedule_parameters_are_one_line_errors(build, match):
    with pytest.raises(ValueError, match=match) as e:
        build()
    assert "\n" not in str(e.value)


def test_bad_prune_inputs():
    s = S.geometric(5, 0.01, 1.0)
    with pytest.raises(ValueError, match=r"steps must be an integer in 1..T = 1..5"):
        S.prune(s, float("nan"))
    assert torch.equal(S.prune(s, 2.0), S.prune(s, 2))


def test_schedule_name_normalises_once():
    assert S.schedule_name("Super_Geometric") == "super-geometric" and S.schedule_name(" DDPM ") == "ddpm"
    assert S.schedule_name("my_sigmas.txt") is None and S.schedule_name(None) is None
    assert set(S.SCHEDULES) == set(typing.get_args(S.ScheduleName))
    assert torch.equal(S.make("super_geometric", 10, 0.01, 1.0), S.super_geometric(10, 0.01, 1.0))
    assert torch.equal(S.affine(5.0, 0.1, 1.0), S.affine(5, 0.1, 1.0))  # an integral float is an integer


def test_sigma_files_take_only_plain_numbers_and_any_bytes_in_comments(tmp_path):
    f = tmp_path / "s.txt"
    f.write_bytes(b"0 0.1 # niveau \xe9lev\xe9 (latin-1)\n2e-1, .4\n")
    assert S.load_sigmas(f).tolist() == [0.0, 0.1, 0.2, 0.4]
    f.write_text("0 1_0\n")  # Python's float() would read 10
    with pytest.raises(ValueError, match="'1_0' is not a number"):
        S.load_sigmas(f)
    f.write_bytes(b"0 0.1\x00\n")
    with pytest.raises(ValueError, match="not a text file"):
        S.load_sigmas(f)


def test_a_duplicate_level_is_named_as_such():
    with pytest.raises(ValueError, match=r"sigmas\[1\] = sigmas\[2\] = 0.1: a noise level appears twice"):
        S.check_sigmas([0, 0.1, 0.1, 0.3])
    with pytest.raises(ValueError, match="sort them ascending"):
        S.check_sigmas([0, 0.3, 0.2, 0.2])


def test_a_grid_too_large_for_memory_is_refused_before_it_is_built():
    with pytest.raises(ValueError, match=r"T = 1000000000000 levels needs at least .* GiB"):
        S.ddpm(T=10**12)


def test_prune_grid_uses_a_subgrid_at_its_own_length_only():
    g = S.ddpm()
    assert torch.equal(S.prune_grid(g, 3, subgrid=(10, 500, 1000)), g[[0, 10, 500, 1000]])
    assert torch.equal(S.prune_grid(g, 4, subgrid=(10, 500, 1000)), S.prune(g, 4))
    assert torch.equal(S.prune_grid(g, 995, 1.5, 10), S.prune(g, 995, 1.5, 6))  # first lowered to leave room
