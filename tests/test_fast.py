"""The fast path (inrd.fast): exactness when nothing is reduced, eq. (15) kept in float32 around a
low-precision network, measured bf16 / fp16 accuracy, chunked batching."""

import copy
import math
import warnings

import pytest
import torch
from torch import nn

import inrd
from inrd import schedules
from inrd.denoisers import EpsDenoiser, GaussianDenoiser
from inrd.experiments.fast_compare import compare  # the instrument that measures the fast path's accuracy
from inrd.fast import Chunked, CudaGraphed, accelerate, speed_up

ABAR = schedules.ddpm_alphas_cumprod()


class ConvEps(nn.Module):
    """A small eps-network with random, non-trivial weights: conv - GroupNorm - SiLU blocks and a
    timestep embedding, the layer types of a diffusion UNet (none zero-initialised)."""

    def __init__(self, channels: int = 3, width: int = 32, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.inp = nn.Conv2d(channels, width, 3, padding=1)
            self.emb = nn.Linear(16, width)
            self.blocks = nn.ModuleList(
                [nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1)) for _ in range(3)]
            )
            self.out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x, t):
        freqs = torch.exp(-math.log(1000.0) * torch.arange(8, device=x.device) / 8)
        arg = t.float()[:, None] * freqs[None]
        e = self.emb(torch.cat([arg.sin(), arg.cos()], 1))[:, :, None, None]
        h = self.inp(x) + e
        for b in self.blocks:
            h = h + b(h)
        return self.out(h)


def eps_denoiser(seed=0):
    return EpsDenoiser(ConvEps(seed=seed).eval(), ABAR).eval()


def images(b=3, size=16, seed=1):
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------------
# nothing reduced: bit for bit
# --------------------------------------------------------------------------------------------------


def test_fast_without_reduction_is_bit_identical():
    D = eps_denoiser()
    F = accelerate(D, dtype=None, channels_last=False, compile=False)
    x = images()
    with torch.no_grad():
        for sigma in (0.01, 0.3, 50.0, torch.tensor([0.02, 1.0, 70.0])):
            assert torch.equal(F(x, sigma), D(x, sigma))
    sigmas = schedules.prune(schedules.ddpm(), 12)
    assert torch.equal(inrd.sample(F, sigmas, shape=(2, 3, 16, 16), seed=4), inrd.sample(D, sigmas, shape=(2, 3, 16, 16), seed=4))


def test_fast_keeps_the_adapter_and_leaves_the_original_alone():
    D = eps_denoiser()
    D.sampling_defaults = {"schedule": "ddpm", "steps": 50}
    net = D.eps_model
    F = accelerate(D, dtype="bf16", compile=False)
    assert type(F) is EpsDenoiser and F is not D
    assert D.eps_model is net  # the original still calls its own network, in full precision
    assert F.sigma_range == D.sigma_range and F.sampling_defaults == D.sampling_defaults
    assert F.timestep == D.timestep and torch.equal(F.log_s_grid, D.log_s_grid)
    y = F(images(), 0.5)
    assert y.dtype == torch.float32 and y.is_contiguous()


def test_generic_module_denoiser_and_plain_callables():
    ff = inrd.denoisers.load("ffdnet", channels=3).eval()
    F = accelerate(ff, dtype=None, channels_last=False, compile=False)
    x = images(2, 16)
    with torch.no_grad():
        assert torch.equal(F(x, 0.1), ff(x, 0.1))
        assert torch.equal(F(x, torch.tensor([0.05, 0.2])), ff(x, torch.tensor([0.05, 0.2])))
    assert F.sampling_defaults == ff.sampling_defaults
    plain = lambda x, sigma: x  # noqa: E731  (BM3D-like: not a torch network)
    with pytest.warns(RuntimeWarning, match="not one and runs unchanged"):
        assert accelerate(plain) is plain
    with pytest.raises(ValueError, match="fast-path dtype"):
        accelerate(ff, dtype="int8")


def test_cuda_graph_wrapper_passes_cpu_tensors_through():
    net = ConvEps().eval()
    x, t = images(), torch.tensor([3, 500, 999])
    with torch.no_grad():
        assert torch.equal(CudaGraphed(net)(x, t), net(x, t))


# --------------------------------------------------------------------------------------------------
# reduced precision: only the network; eq. (15) in float32
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_eq15_stays_in_float32_around_the_low_precision_network(dtype):
    """D = (w - s eps + 1) / 2, so D_fast - D = -(s / 2) (eps_fast - eps) exactly in real arithmetic:
    with eq. (15) in float32 this holds to float32 rounding of D (|D| <= 1 + s |eps|, 6e-8 relative),
    even at s = 2 sigma = 157 where the network's own error is multiplied by 78. Had w - s * eps been
    taken in the network's precision, this normalised residual would be ~ 2^-10 = 1e-3 (bf16) instead."""
    D = eps_denoiser()
    F = accelerate(eps_denoiser(), dtype=dtype, compile=False)
    x = images()
    sigma = torch.tensor([0.05, 3.0, float(D.sigma_range[1])])
    with torch.no_grad():
        s64 = 2 * sigma.double()  # as EpsDenoiser.forward computes it
        t = D.timesteps(sigma.double()).long()
        s = s64.float().reshape(-1, 1, 1, 1)
        w = 2 * x - 1
        xin = (1 / torch.sqrt(1 + s64**2)).float().reshape(-1, 1, 1, 1) * w
        eps = D.eps_model(xin, t)
        eps_fast = F.eps_model(xin, t)
        assert eps_fast.dtype == torch.float32
        residual = (F(x, sigma) - D(x, sigma)) + (s / 2) * (eps_fast - eps)
        scale = 1 + s * eps.abs()
    assert float((residual / scale).abs().max()) < 1e-6
    assert float((eps_fast - eps).abs().max()) > 0  # the network did run in low precision


class WienerEps(nn.Module):
    """An eps-network that denoises: D^{[-1,1]}(w) = c / (c + s^2) (blur(w) + 0.05 branch(blur(w))), a
    shrunk Gaussian blur (Wiener-like, contractive) plus a small random conv-GroupNorm-SiLU branch,
    returned as eps = out((w - D) / s) with ``out`` an identity 1x1 convolution, so that eps itself is
    rounded to the network's precision as a real eps-predictor's output is. (A random-weight network is
    no denoiser: its samples reach |V| ~ 1e3 and the final PSNR between two runs measures chaos, not
    rounding.)"""

    def __init__(self, channels: int = 3, width: int = 16, seed: int = 0, signal_var: float = 0.25):
        super().__init__()
        self.register_buffer("abar", ABAR.float())
        self.c = signal_var
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            g = torch.exp(-torch.arange(-2, 3.0) ** 2 / (2 * 1.2**2))
            self.blur = nn.Conv2d(channels, channels, 5, padding=2, groups=channels, bias=False)
            self.blur.weight.data[:] = (g[:, None] * g[None]) / (g.sum() ** 2)
            self.branch = nn.Sequential(
                nn.Conv2d(channels, width, 3, padding=1), nn.GroupNorm(4, width), nn.SiLU(), nn.Conv2d(width, channels, 3, padding=1)
            )
            self.out = nn.Conv2d(channels, channels, 1)
            self.out.weight.data[:] = torch.eye(channels)[:, :, None, None]
            self.out.bias.data.zero_()

    def forward(self, x, t):
        a = self.abar[t].reshape(-1, 1, 1, 1)
        s = torch.sqrt((1 - a) / a)
        w = x / torch.sqrt(a)
        sm = self.blur(w)
        d = (sm + 0.05 * self.branch(sm)) * (self.c / (self.c + s**2))
        return self.out((w - d) / s)


def wiener():
    return EpsDenoiser(WienerEps().eval(), ABAR).eval()


# Theory: eps rounded with unit roundoff u (bf16 2^-9 = 2.0e-3, fp16 2^-12 = 2.4e-4) gives, through
# eq. (15), an error (s / 2) |eps| u in [0, 1] units, i.e. RMS error / sigma ~ |eps|_rms u ~ u.
# Measured (15 steps, 3 images 16x16): err/sigma max 1.9e-3 (bf16), 2.3e-4 (fp16); final PSNR between
# the fast and the fp32 samples 71.5 dB (bf16), 90.6 dB (fp16), vs 160 dB for fp32 in channels_last
# (float32 reassociation only). Bounds: 4 u, and 6 dB below the measured PSNR.
BOUNDS = {"bf16": (4 * 2.0**-9, 65.0), "fp16": (4 * 2.0**-12, 84.0)}


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_reduced_precision_accuracy_along_a_sampling_run(dtype):
    sigmas = schedules.prune(schedules.ddpm(), 15)
    r = compare(wiener(), accelerate(wiener(), dtype=dtype, compile=False), sigmas, shape=(3, 3, 16, 16), seed=2)
    err_bound, psnr_bound = BOUNDS[dtype]
    assert [row["t"] for row in r["steps"]] == list(range(15, 0, -1))
    assert 0 < r["err_over_sigma_max"] < err_bound
    assert r["psnr_min"] > psnr_bound


class Overflowing(nn.Module):
    """Fine in float32, overflows in fp16 (the product exceeds 6.5e4)."""

    def forward(self, x, t):
        big = torch.full((x.shape[1], x.shape[1]), 300.0, device=x.device)
        h = torch.einsum("bchw,cd->bdhw", x, big)  # autocast runs einsum in fp16
        return torch.einsum("bchw,cd->bdhw", h, big) * 1e-6


def test_fp16_overflow_falls_back_to_float32():
    D = EpsDenoiser(Overflowing(), ABAR)
    F = accelerate(D, dtype="fp16", channels_last=False, compile=False)
    x = images()
    with pytest.warns(RuntimeWarning, match="overflowed"):
        y = F(x, 0.5)
    assert torch.isfinite(y).all()
    assert torch.equal(y, D(x, 0.5))


@pytest.mark.slow
def test_torch_compile_on_cpu():
    """torch.compile (inductor, C++ on CPU): the same function up to float32 reassociation by fusion
    (measured max difference 1e-6 on [0, 1] outputs; bound 1e-4). Takes ~1 min cold (compilation)."""
    D = eps_denoiser()
    F = accelerate(copy.deepcopy(D), dtype=None, channels_last=False, compile=True)
    x = images()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a compile failure falls back with a warning: fail instead
        y = F(x, 0.3)
        y2 = F(x, 0.7)  # same shapes: no recompilation, new sigma values
        ref, ref2 = D(x, 0.3), D(x, 0.7)
    assert F.eps_model.failed is None
    assert float((y - ref).abs().max()) < 1e-4
    assert float((y2 - ref2).abs().max()) < 1e-4


# --------------------------------------------------------------------------------------------------
# chunked batching
# --------------------------------------------------------------------------------------------------


class Recorder:
    """A per-image denoiser (D(x) = x / (1 + sigma)) that records the batch sizes and sigmas it sees."""

    def __init__(self, oom_above=None):
        self.sizes, self.oom_above = [], oom_above

    def __call__(self, x, sigma):
        if self.oom_above is not None and x.shape[0] > self.oom_above:
            raise torch.OutOfMemoryError("fake: batch too large")
        self.sizes.append(x.shape[0])
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
        return x / (1 + s)


def test_chunked_bounds_the_batch_and_splits_sigma():
    rec = Recorder()
    C = Chunked(rec, 3)
    x = images(8, 4)
    sig = torch.linspace(0.1, 0.8, 8)
    y = C(x, sig)
    assert rec.sizes == [3, 3, 2]
    assert torch.equal(y, x / (1 + sig.reshape(-1, 1, 1, 1)))  # each image got its own sigma
    assert torch.equal(C(x, 0.5), x / 1.5)


def test_chunked_is_exact_for_a_batch_independent_denoiser(gaussian_law):
    mean, cov = gaussian_law(shape=(1, 4, 4))
    D = GaussianDenoiser(mean, cov)
    sigmas = schedules.geometric(20, 0.01, 2.0)
    ref = inrd.sample(D, sigmas, shape=(7, 1, 4, 4), seed=3, init_std=0.5)
    for k in (1, 2, 3, 7, 100):
        assert torch.equal(inrd.sample(Chunked(D, k), sigmas, shape=(7, 1, 4, 4), seed=3, init_std=0.5), ref)


def test_chunked_network_matches_to_float32_rounding():
    """Convolution kernels round differently for different batch sizes (oneDNN on CPU): measured
    7e-7 max difference for FFDNet on [0, 1] images; bound 1e-5."""
    ff = inrd.denoisers.load("ffdnet", channels=3).eval()
    x = images(5, 16)
    with torch.no_grad():
        assert float((Chunked(ff, 2)(x, 0.1) - ff(x, 0.1)).abs().max()) < 1e-5


def test_chunked_adapts_to_out_of_memory():
    rec = Recorder(oom_above=3)
    C = Chunked(rec)  # adaptive: whole batch, then halves
    x = images(8, 4)
    with pytest.warns(RuntimeWarning, match="pieces of 2"):
        y = C(x, 0.25)
    assert torch.equal(y, x / 1.25)
    assert C.max_batch == 2 and rec.sizes == [2, 2, 2, 2]
    rec.sizes.clear()
    C(x, 0.25)  # remembers the size that fits
    assert rec.sizes == [2, 2, 2, 2]
    with pytest.raises(torch.OutOfMemoryError):
        Chunked(Recorder(oom_above=3), 4)(x, 0.25)  # a fixed size is not changed behind the user's back


def test_chunked_errors_and_speed_up():
    with pytest.raises(ValueError, match="max_batch"):
        Chunked(Recorder(), 0)
    with pytest.raises(ValueError, match="one value per image"):
        Chunked(Recorder(), 2)(images(3, 4), torch.tensor([0.1, 0.2]))
    D = eps_denoiser()
    same, settings = speed_up(D)
    assert same is D and settings == {"fast": None, "compile": False, "cuda_graphs": False, "chunk": None}
    chunked, settings = speed_up(D, fast="fp32", chunk=2, compile=False)
    assert isinstance(chunked, Chunked) and settings["fast"] == "fp32" and settings["chunk"] == 2
    x = images()
    with torch.no_grad():
        assert float((chunked(x, 0.4) - D(x, 0.4)).abs().max()) < 1e-5  # channels_last fp32: rounding only
    with pytest.raises(ValueError, match="--chunk"):
        speed_up(D, chunk=-1)
