"""The restoration resolver: options checked field by field, the plan and its record, the memory estimate."""

import dataclasses
import re

import numpy as np
import pytest
from PIL import Image

import inrd.memory
from inrd.restoration import NU_MIN
from inrd.restoration.plan import NETWORK_BYTES_PER_PIXEL, DeblurOptions, RestoreOptions, check_restore_memory, image_header


def test_restore_options_normalise_names_and_map_the_algorithm_options():
    o = RestoreOptions(task="Super_Resolution", observed="x.png", noise_level="AUTO", algorithm="INRD_posterior", iters=7,
                       samples=2, seed=3, factor=4)
    assert (o.task, o.noise_level, o.algorithm, o.chosen_algorithm) == ("super-resolution", "auto", "inrd-posterior", "inrd-posterior")
    assert o.algorithm_options == {"steps": 7, "samples": 2, "seed": 3}  # --iters is the steps of the sampler
    assert o.kernel_spec == "gaussian:2"  # the default kernel of factor F: gaussian:F/2
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.task = "deblur"
    d = RestoreOptions(task="deblur", observed="x.png", kernel="gaussian:1", noise_level="0.02", sigma_denoiser=0.05,
                       algorithm="pnp_pgd")
    assert d.noise_level == 0.02 and d.algorithm_options == {"sigma_denoiser": 0.05} and d.kernel_spec == "gaussian:1"
    assert RestoreOptions(task="denoise", observed="x.png", noise_level=NU_MIN).noise_level == NU_MIN  # the floor is allowed
    assert RestoreOptions(task="denoise", observed="x.png").chosen_algorithm == "hqs"  # the task's default
    assert o.chosen_boundary == d.chosen_boundary == "valid"  # the unknown boundary of a photograph by default
    assert RestoreOptions(task="deblur", observed="x.png", kernel="gaussian:1", boundary="Periodic").chosen_boundary == "periodic"
    assert RestoreOptions(task="denoise", observed="x.png").chosen_boundary is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(task="blur"), "--task must be"),
    (dict(task="denoise", noise_level="abc"), "--noise-level must be a number > 0 or 'auto'"),
    (dict(task="denoise", noise_level=True), "--noise-level must be a number"),
    (dict(task="denoise", noise_level=1e-8), "is below 1.192e-07"),
    (dict(task="denoise", iters=0), "--iters must be an integer >= 1"),
    (dict(task="denoise", samples=1.5), "--samples must be an integer >= 1"),
    (dict(task="denoise", seed=1.5), "--seed must be >= 0"),
    (dict(task="denoise", factor=3), "--factor must be 2 or 4"),
    (dict(task="denoise", device="meta"), "device meta cannot run inrd"),
    (dict(task="inpaint"), "--task inpaint needs --mask"),
    (dict(task="deblur"), "--task deblur needs --kernel"),
    (dict(task="deblur", kernel="gaussian:1", mask="m.png"), "--mask does not apply to --task deblur"),
    (dict(task="inpaint", mask="m.png", kernel="gaussian:1"), "--kernel does not apply to --task inpaint"),
    (dict(task="denoise", sigma_denoiser=0.1), "--sigma-denoiser is for pnp-pgd and gs-pnp"),
    (dict(task="denoise", noise_level=0.2), None),  # inside FFDNet's range [0, 75/255]: every HQS level is nu
    (dict(task="denoise", noise_level=0.3), "above the range ffdnet was trained for, [0, 0.2941]"),
    (dict(task="denoise", noise_level=0.3, algorithm="inrd-posterior"), "and inrd-posterior runs it at levels down to nu"),
    (dict(task="denoise", noise_level=0.3, denoiser="tv"), None),  # no trained range known before loading: checked after
    (dict(task="denoise", noise_level=0.2, algorithm="pnp-pgd"), None),  # a fixed-level scheme takes it
    (dict(task="denoise", boundary="valid"), "--boundary does not apply to --task denoise (it has no blur)"),
    (dict(task="inpaint", mask="m.png", boundary="periodic"), "--boundary does not apply to --task inpaint"),
    (dict(task="deblur", kernel="gaussian:1", boundary="circular"), "--boundary must be valid, reflect, replicate or periodic"),
])
def test_restore_options_refuse_each_bad_field(kwargs, message):
    kwargs = {"observed": "x.png", "noise_level": 0.01, **kwargs}
    if message is None:
        RestoreOptions(**kwargs)
        return
    with pytest.raises(ValueError, match=re.escape(message)):
        RestoreOptions(**kwargs)


def test_deblur_options():
    o = DeblurOptions(algorithm="GS_PNP", noise_level=0.02)
    assert o.algorithm == "gs-pnp" and o.noise_level == 0.02 and o.size == 256 and o.pad == 16
    with pytest.raises(ValueError, match="--stepsize must be a finite number > 0"):
        DeblurOptions(stepsize=-1.0)


def test_image_header_reads_the_size_without_decoding(tmp_path):
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(tmp_path / "c.png")
    Image.fromarray(np.zeros((5, 7), np.uint16)).save(tmp_path / "g16.png")
    (tmp_path / "bad.png").write_text("not an image")
    assert image_header(str(tmp_path / "g.png")) == (1, 5, 7)
    assert image_header(str(tmp_path / "c.png")) == (3, 5, 7)
    assert image_header(str(tmp_path / "g16.png")) == (1, 5, 7)
    assert image_header(str(tmp_path / "bad.png")) is None and image_header("camera") is None


def test_memory_estimate(monkeypatch):
    """Float64 buffers per image and channel (3 for HQS on a diagonal operator, 8 with a periodic one, 7 for the
    sampler) plus, for a shipped network on the CPU, its bytes per pixel of the padded input: the refusal comes
    exactly above the estimate."""
    need = 3 * (8 * 8 * 100 * 100 + NETWORK_BYTES_PER_PIXEL["ffdnet"][1] * 132 * 132)  # periodic, padded by 16
    usable = inrd.memory.USABLE  # the share of the available memory a run may plan for
    monkeypatch.setattr(inrd.memory, "available_memory", lambda device=None: need / usable)
    check_restore_memory("ffdnet", 1, 100, 100, 3, "fix it", "cpu", pad=16)  # exactly what may be planned for: accepted
    monkeypatch.setattr(inrd.memory, "available_memory", lambda device=None: (need - 1) / usable)
    with pytest.raises(ValueError, match="restoring 3 image\\(s\\) of 1x100x100 needs at least .* fix it"):
        check_restore_memory("FFDNet", 1, 100, 100, 3, "fix it", "cpu", pad=16)
    sampler = 3 * (7 * 8 * 100 * 100 + NETWORK_BYTES_PER_PIXEL["ffdnet"][1] * 100 * 100)
    monkeypatch.setattr(inrd.memory, "available_memory", lambda device=None: sampler / usable)
    check_restore_memory("ffdnet", 1, 100, 100, 3, "fix it", "cpu", sampling=True)
    with pytest.raises(ValueError, match="needs at least"):
        check_restore_memory("ffdnet", 1, 100, 101, 3, "fix it", "cpu", sampling=True)
    check_restore_memory("tv", 1, 100, 100, 3, "fix it", "cpu")  # no network term: 0.7 MB
    check_restore_memory("ffdnet", 1, 100, 100, 3, "fix it", "cuda")  # the network's memory is the GPU's
