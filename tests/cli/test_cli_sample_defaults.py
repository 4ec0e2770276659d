"""`inrd sample` with every registry denoiser at its own defaults: the sidecar must record the relaxation
and the sigmas that the denoiser declares (eps/v-networks: canonical INRD on their own training grid)."""

import json

import pytest
import torch

from inrd import schedules
from inrd.cli import main
from inrd.denoisers import load


def _sidecar(tmp_path, *argv):
    out = tmp_path / "out"
    code = main(["sample", "--batch", "1", "--no-progress", "--out", str(out), *argv])
    assert code == 0
    return json.loads((out / "grid.json").read_text())


def _tiny_diffusers(folder, beta_schedule, prediction="epsilon"):
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=8)
    unet.save_pretrained(folder)
    sched = DDPMScheduler(num_train_timesteps=100, beta_schedule=beta_schedule, prediction_type=prediction)
    sched.save_pretrained(folder)
    return sched


def test_inrd_small_defaults_to_its_recorded_setting_on_its_training_grid(tmp_path):
    import json

    from inrd.denoisers.small import BUNDLED

    recorded = json.loads(BUNDLED.with_suffix(".json").read_text())["sampling"]  # the best measured INRD setting
    D = load("inrd-small")
    d = D.sampling_defaults
    assert d.rho == recorded["rho"] and d.schedule == "training" and d.clip == recorded.get("clip", "none")
    grid = schedules.ddpm()
    power, first = recorded.get("power", 1.0), recorded.get("first")  # the spacing rule of any other step count
    expected = grid[[0, *recorded["subgrid"]]] if recorded.get("subgrid") else schedules.prune(grid, recorded["steps"], power, first)
    assert torch.equal(d.sigmas(), expected)
    side = _sidecar(tmp_path)
    assert side["denoiser"] == "inrd-small" and side["rho"] == recorded["rho"] and side["clip"] == d.clip
    assert side["sigmas"] == expected.tolist()
    # another step count: its own recorded setting if it has one, else the same one with the grid pruned by the same rule
    own = recorded.get("by_steps", {}).get("5")
    five = own or {**recorded, "subgrid": None}
    side = _sidecar(tmp_path / "five", "--steps", "5")
    assert side["rho"] == five["rho"] and side["clip"] == five.get("clip", "none")
    pruned = grid[[0, *five["subgrid"]]] if five.get("subgrid") else schedules.prune(grid, 5, five.get("power", 1.0), five.get("first"))
    assert side["sigmas"] == pruned.tolist()


@pytest.mark.parametrize("beta_schedule", ["linear", "squaredcos_cap_v2"])
def test_diffusers_folder_samples_its_own_training_grid(tmp_path, beta_schedule):
    folder = tmp_path / "model"
    sched = _tiny_diffusers(folder, beta_schedule)
    # the adapter's float64 grid: linear betas recomputed exactly (as inrd.schedules.ddpm), others from the
    # scheduler's betas
    if beta_schedule == "linear":
        abar = schedules.ddpm_alphas_cumprod(100)
    else:
        abar = torch.cumprod(1 - sched.betas.double(), 0)
    own = schedules.sigmas_from_alphas_cumprod(abar)
    side = _sidecar(tmp_path, "--denoiser", str(folder), "--steps", "4")
    assert side["denoiser"] == "diffusers" and side["rho"] == "canonical"
    assert torch.tensor(side["sigmas"], dtype=torch.float64).equal(schedules.prune(own, 4))
    assert side["shape"] == [1, 1, 8, 8]
    D = load("diffusers", weights=str(folder))
    assert D.sampling_defaults.steps == 100 and D.sampling_defaults.rho == "canonical"


def test_v_prediction_folder_loads_with_its_prediction_type(tmp_path):
    folder = tmp_path / "vmodel"
    _tiny_diffusers(folder, "linear", prediction="v_prediction")
    assert load("diffusers", weights=str(folder)).prediction == "v_prediction"


def test_diffunet_random_weights_file_defaults_to_canonical_ddpm(tmp_path):
    from inrd.denoisers.diffunet import make_network, random_init_

    path = tmp_path / "diffunet_random.pt"
    torch.save(random_init_(make_network(False, seed=0), seed=0).state_dict(), path)
    side = _sidecar(tmp_path, "--denoiser", "diffunet", "--weights", str(path), "--steps", "2", "--size", "32")
    assert side["rho"] == "canonical"
    assert side["sigmas"] == schedules.prune(schedules.ddpm(), 2).tolist()
    d = load("diffunet", random_init=True).sampling_defaults
    assert d.rho == "canonical" and torch.equal(d.sigmas(), schedules.prune(schedules.ddpm(), 100))


@pytest.mark.parametrize(
    "name, extra, rho, lo, hi",
    [
        ("ffdnet", [], "ind", 0.002, 0.2),
        ("tv", [], "canonical", 0.002, 1.0),
        ("bm3d", [], "ind", 0.002, 0.2),
        ("drunet", [], "ind", 0.002, 0.2),
    ],
)
def test_off_the_shelf_denoisers_record_their_declared_defaults(tmp_path, name, extra, rho, lo, hi):
    options = {"random_init": True} if name == "drunet" else {}
    d = load(name, **options).sampling_defaults
    assert (d.rho, d.schedule, d.sigma_min, d.sigma_max) == (rho, "geometric", lo, hi)
    if name == "drunet":
        return  # no DRUNet weights offline: the library-level defaults are what can be checked
    side = _sidecar(tmp_path, "--denoiser", name, "--steps", "3", "--size", "16", *extra)
    assert side["rho"] == rho and side["schedule"] == "geometric"
    assert side["sigmas"] == pytest.approx(schedules.geometric(3, lo, hi).tolist(), rel=1e-12)
    assert side["init_std"] == d.init_std


@pytest.mark.parametrize("schedule", ["karras", "geometric", "affine", "super-geometric", "cosine", "ddpm"])
def test_every_named_schedule_runs_with_the_default_model(tmp_path, schedule):
    side = _sidecar(tmp_path, "--schedule", schedule, "--steps", "4")
    lo, hi = load("inrd-small").sigma_range
    positive = [s for s in side["sigmas"] if s > 0]
    assert lo * (1 - 1e-9) <= positive[0] and positive[-1] <= hi * (1 + 1e-9)
    assert side["rho"] == load("inrd-small").sampling_defaults.rho and side["steps"] == 4


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--channels", "3"], "cannot denoise images of shape (3, 32, 32)"),
        (["--size", "0"], "--size must be an integer >= 1"),
        (["--steps", "1000000000"], "--steps must be an integer >= 1 and <= 100000"),
        (["--device", "cuda"], "no CUDA GPU"),
        (["--batch", "64", "--size", "8192", "--denoiser", "ffdnet"], "GiB are available"),
        (["--schedule", "geometric", "--sigma-max", "200"], "outside the denoiser's trained range"),
        (["--schedule", "training", "--denoiser", "tv"], "has no training grid"),
    ],
)
def test_bad_requests_fail_in_one_line_before_writing(tmp_path, capsys, argv, message):
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "o"
    assert main(["sample", "--batch", "1", "--no-progress", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_other_dtypes_run_with_a_float32_network(tmp_path, dtype):
    side = _sidecar(tmp_path, "--steps", "3", "--dtype", dtype)
    assert side["dtype"] == dtype


def test_divergence_is_one_line_and_writes_no_images(tmp_path, capsys, monkeypatch):
    from inrd import denoisers
    from inrd.denoisers import SamplingDefaults

    class Exploding(torch.nn.Module):  # amplifies its input: the iterates blow up within a few steps
        sampling_defaults = SamplingDefaults(rho="ind", schedule="geometric", steps=30, sigma_min=0.01, sigma_max=1.0,
                                             channels=1, size=8)

        def forward(self, x, sigma):
            return 10 * x

    monkeypatch.setattr(denoisers, "load", lambda *a, **k: Exploding())
    out = tmp_path / "o"
    assert main(["sample", "--denoiser", "ffdnet", "--batch", "1", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "diverged at step t=" in err and "Nothing sampled was written" in err and "\n" not in err
    assert [p.name for p in out.glob("*.png")] == ["stability.png"]


def test_power_and_first_space_a_pruned_grid(tmp_path, capsys):
    ddpm = schedules.ddpm()
    side = _sidecar(tmp_path / "ddpm", "--schedule", "ddpm", "--steps", "12", "--power", "2", "--first", "3")
    assert side["sigmas"] == schedules.prune(ddpm, 12, 2.0, 3).tolist()
    assert side["config"]["power"] == 2.0 and side["config"]["first"] == 3
    # the training grid: a user's power keeps the denoiser's own a_1 unless --first is given too
    d = load("inrd-small").sampling_defaults
    side = _sidecar(tmp_path / "training", "--steps", "30", "--power", "3")
    assert side["sigmas"] == schedules.prune(ddpm, 30, 3.0, d.first).tolist()
    for argv, match in ((["--schedule", "geometric", "--power", "2"], "not 'geometric'"),
                        (["--schedule", "ddpm", "--first", "2"], "without --steps")):
        assert main(["sample", "--batch", "1", "--no-progress", "--out", str(tmp_path / "bad"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert "--power/--first space a grid" in err and match in err and "\n" not in err
