"""Opt-in fast path for neural denoisers, and chunked batching.

:func:`accelerate` returns a denoiser ``D(x, sigma)`` that runs the *network* in reduced precision
(fp16 / bf16 autocast), in channels_last layout, compiled with ``torch.compile`` and, on CUDA, replayed
from CUDA graphs. Everything around the network stays in the caller's dtype (float32):

* for an :class:`~inrd.denoisers.EpsDenoiser` only ``eps(x_t, t)`` is accelerated. The conversion of
  paper eq. (15), ``D^{[-1,1]}(w) = w - s * eps(sqrt(a) w, t(s))`` with ``s = 2 sigma`` up to 157, is
  computed in float32 on the float32 copy of eps. The network's rounding then enters D only as
  ``s * d_eps``, an error proportional to the noise level (RMS error / sigma ~ the unit roundoff, 2^-9
  for bf16); rounding the image-scale quantities ``w``, ``s * eps`` and ``D`` themselves would add about
  ``2^-9 |w|`` whatever sigma: 0.3 at the top of the DDPM range (|w| ~ 157), and at the bottom
  (sigma_1 = 0.005) an error of 20 % of the noise being removed, a hundred times the former;
* for any other ``nn.Module`` denoiser (FFDNet, DRUNet) the whole call runs under autocast, where
  convolutions and matrix products compute in low precision while additions with the float32 input
  (the residual ``x + f(x)``) promote back to float32; the output is returned in the input's dtype;
* a denoiser that is not an ``nn.Module`` (BM3D) is returned unchanged, with a warning.

Reduced precision changes the samples (a sampler amplifies nothing, but it does not average errors
out either): :func:`inrd.experiments.fast_compare.compare` measures, with the same noise, the relative
error of every step and the PSNR between the final images of the fp32 and the fast run
(``benchmarks/compare_samplers.py --accuracy`` prints it for the networks of this package).

:class:`Chunked` splits a batch into pieces of at most ``max_batch`` images per denoiser call (or finds
the largest piece that fits in memory), so the batch a sampler carries is not bounded by the
network's activation memory.
"""

from __future__ import annotations

import copy
import warnings
from typing import Callable, Optional, Union

import torch
from torch import nn

from .choices import FastMode
from .denoisers.base import carry_attributes
from .denoisers.eps import EpsDenoiser
from .validate import sigma_vector

__all__ = ["accelerate", "speed_up", "Chunked", "LowPrecision", "CudaGraphed", "FastDtype", "LOW_PRECISION"]

#: the fast path's network precision: "auto" (fp16 on CUDA, bf16 elsewhere), bf16, fp16, or fp32 (full)
FastDtype = FastMode

LOW_PRECISION = {
    "auto": "auto",
    None: None,
    "none": None,
    "fp32": None,
    "float32": None,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


def _low_dtype(dtype):
    """torch dtype of the network's autocast, None (full precision) or "auto" (decided per device)."""
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.bfloat16, torch.float16, torch.float32):
            raise ValueError(f"fast-path dtype must be bf16, fp16 or None, got {dtype}.")
        return None if dtype == torch.float32 else dtype
    key = dtype.lower() if isinstance(dtype, str) else dtype
    if key not in LOW_PRECISION:
        raise ValueError(f"fast-path dtype must be 'auto', 'bf16', 'fp16' or None (full precision), got {dtype!r}.")
    return LOW_PRECISION[key]


def _resolve(dtype, device: torch.device) -> Optional[torch.dtype]:
    """``"auto"``: fp16 on CUDA (tensor cores; 11-bit mantissa, 8x finer than bf16), bf16 elsewhere (CPUs
    compute bf16 natively, fp16 mostly by conversion)."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    return dtype


class LowPrecision(nn.Module):
    """Run ``net(x, *args)`` under autocast to ``dtype`` (None: no autocast; "auto": see :func:`accelerate`)
    with ``x`` in channels_last layout; the output comes back as a contiguous tensor in ``x``'s dtype.

    ``net`` is shared, not copied: with ``channels_last`` its 4-D weights are converted in place (values
    unchanged; convolutions on the original module may then pick other kernels and round differently in
    the last bit)."""

    def __init__(self, net: nn.Module, dtype: Optional[torch.dtype], channels_last: bool = True, cache: bool = True):
        super().__init__()
        self.net = net
        self.dtype = dtype
        self.channels_last = channels_last
        self.cache = cache  # autocast's weight-cast cache; must be off while a CUDA graph is captured
        if channels_last:
            net.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor, *args) -> torch.Tensor:
        out_dtype = x.dtype
        low = _resolve(self.dtype, x.device)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if low is None:
            out = self.net(x, *args)
        else:
            with torch.autocast(x.device.type, dtype=low, cache_enabled=self.cache):
                out = self.net(x, *args)
        return out.to(dtype=out_dtype, memory_format=torch.contiguous_format)


class CudaGraphed(nn.Module):
    """Replay ``net(x, t)`` from a CUDA graph captured once per input signature (shapes, dtypes, device).

    Static shapes are what a sampler gives: the same batch at every step. Inputs are copied into the
    graph's static tensors, the graph is replayed, and a copy of its static output is returned (the
    next replay overwrites it). On a CPU tensor the network is simply called; a network that cannot be
    captured (it synchronises with the host) runs without graphs, after one warning."""

    def __init__(self, net: nn.Module, warmup: int = 2):
        super().__init__()
        self.net = net
        self.warmup = warmup
        self._graphs: dict = {}
        self.failed: Optional[str] = None

    def forward(self, x: torch.Tensor, *args) -> torch.Tensor:
        if x.device.type != "cuda" or self.failed is not None:
            return self.net(x, *args)
        inputs = (x, *args)
        key = tuple((tuple(a.shape), a.dtype, a.device) if torch.is_tensor(a) else a for a in inputs)
        if key not in self._graphs:
            static = [a.clone() if torch.is_tensor(a) else a for a in inputs]
            side = torch.cuda.Stream(device=x.device)
            side.wait_stream(torch.cuda.current_stream(x.device))
            with torch.cuda.stream(side):
                for _ in range(self.warmup):  # cuDNN / cuBLAS choose their algorithms outside the capture
                    self.net(*static)
            torch.cuda.current_stream(x.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    out = self.net(*static)
            except RuntimeError as e:  # the network synchronises with the host (e.g. an input check): no graph
                self.failed = str(e).splitlines()[0] if str(e) else type(e).__name__
                warnings.warn(f"CUDA graph capture failed ({self.failed[:200]}); running the network without graphs.", RuntimeWarning, stacklevel=2)
                return self.net(x, *args)
            self._graphs[key] = (graph, static, out)
        graph, static, out = self._graphs[key]
        for s, a in zip(static, inputs):
            if torch.is_tensor(a):
                s.copy_(a)
        graph.replay()
        return out.clone()


class _Compiled(nn.Module):
    """``torch.compile(net)``, falling back to eager ``net`` (with one warning) when compilation fails,
    e.g. without a C++ compiler on CPU. With ``cuda_graphs`` the compiled code is replayed from CUDA
    graphs (inductor's ``reduce-overhead`` mode); each call starts a new graph step."""

    def __init__(self, net: nn.Module, mode: Optional[str] = None, cuda_graphs: bool = False):
        super().__init__()
        self.net = net
        self.cuda_graphs = cuda_graphs
        if cuda_graphs and mode is None:
            mode = "reduce-overhead"
        self.compiled = torch.compile(net, mode=mode, dynamic=False)
        self.failed: Optional[str] = None

    def forward(self, x: torch.Tensor, *args) -> torch.Tensor:
        if self.failed is None:
            try:
                if self.cuda_graphs and x.device.type == "cuda":
                    torch.compiler.cudagraph_mark_step_begin()
                    return self.compiled(x, *args).clone()
                return self.compiled(x, *args)
            except Exception as e:  # noqa: BLE001 - any compiler failure: run eager (a genuine error re-raises there)
                self.failed = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                warnings.warn(f"torch.compile failed ({self.failed[:300]}); running the network uncompiled.", RuntimeWarning, stacklevel=2)
        return self.net(x, *args)


class _FiniteGuard(nn.Module):
    """fp16 has a range of 6.5e4: if the fast network returns a non-finite value (an overflow), the call
    is recomputed in full precision, with one warning. bf16 has float32's range and needs no guard."""

    def __init__(self, fast: nn.Module, exact: nn.Module, dtype):
        super().__init__()
        self.fast, self.exact, self.dtype = fast, exact, dtype
        self.fallbacks = 0

    def forward(self, x: torch.Tensor, *args) -> torch.Tensor:
        out = self.fast(x, *args)
        if _resolve(self.dtype, x.device) == torch.float16 and not bool(torch.isfinite(out).all()):
            self.fallbacks += 1
            if self.fallbacks == 1:
                warnings.warn("the fp16 network overflowed; this call (and any later one that does) is recomputed in float32.", RuntimeWarning, stacklevel=2)
            out = self.exact(x, *args)
        return out


def _fast_network(net: nn.Module, dtype, channels_last: bool, compile: bool, cuda_graphs: bool, mode) -> nn.Module:
    wrapped = LowPrecision(net, dtype, channels_last, cache=not (cuda_graphs and not compile))
    if compile:
        fast = _Compiled(wrapped, mode=mode, cuda_graphs=cuda_graphs)
    elif cuda_graphs:
        fast = CudaGraphed(wrapped)
    else:
        fast = wrapped
    if dtype in ("auto", torch.float16):
        fast = _FiniteGuard(fast, LowPrecision(net, None, channels_last), dtype)
    return fast


class Accelerated(nn.Module):
    """A non-eps ``nn.Module`` denoiser ``D(x, sigma)`` run through :class:`LowPrecision` (and compiled).
    sigma goes to the network as a checked (B,) tensor in x's dtype (:func:`inrd.validate.sigma_vector`),
    so a compiled network is not specialised on its value."""

    def __init__(self, denoiser: nn.Module, network: nn.Module):
        super().__init__()
        self.denoiser = denoiser
        self.network = network
        carry_attributes(denoiser, self)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return self.network(x, sigma_vector(sigma, x))


def accelerate(
    denoiser: Callable,
    dtype: Union[FastDtype, torch.dtype, None] = "auto",
    channels_last: bool = True,
    compile: bool = True,
    cuda_graphs: bool = False,
    compile_mode: Optional[str] = None,
) -> Callable:
    """The fast path: a ``D(x, sigma)`` computing the same function with a faster network.

    Args:
        denoiser: an :class:`~inrd.denoisers.EpsDenoiser` (its eps-network is accelerated, eq. 15 stays in
            float32), another ``nn.Module`` denoiser (run under autocast as a whole) or any callable
            (returned unchanged, with a warning).
        dtype: ``"auto"`` (default: fp16 on CUDA, bf16 on CPU), ``"bf16"`` (float32's range, 8 bits of
            mantissa), ``"fp16"`` (11 bits: about 8 times more accurate, see benchmarks/README.md; range
            6.5e4, so a call whose output overflows is recomputed in float32) or ``None`` (full
            precision: only layout, compile, graphs).
        channels_last: NHWC layout for the network (tensor-core friendly); converts the network's
            weights in place (shared with ``denoiser``; values unchanged).
        compile: ``torch.compile`` the network (first call compiles: seconds to minutes; each new
            input shape compiles again). Falls back to eager with a warning if compilation fails.
        cuda_graphs: on CUDA, replay the network from CUDA graphs (static shapes: keep the batch fixed,
            e.g. with :class:`Chunked`); with ``compile`` this is inductor's ``reduce-overhead`` mode.
            No effect on CPU tensors.
        compile_mode: ``torch.compile`` mode (None: the default, or ``reduce-overhead`` with graphs).

    With ``dtype=None, channels_last=False, compile=False, cuda_graphs=False`` the result computes
    exactly (bit for bit) what ``denoiser`` computes. The returned object shares the network with
    ``denoiser`` and keeps its ``sigma_range`` and ``sampling_defaults``.
    """
    low = _low_dtype(dtype)
    if not isinstance(denoiser, nn.Module):
        warnings.warn(
            f"the fast path accelerates torch networks; {type(denoiser).__name__} is not one and runs unchanged.",
            RuntimeWarning,
            stacklevel=2,
        )
        return denoiser
    if isinstance(denoiser, EpsDenoiser):
        if not isinstance(denoiser.eps_model, nn.Module):
            warnings.warn("the eps-model is not a torch network; the denoiser runs unchanged.", RuntimeWarning, stacklevel=2)
            return denoiser
        fast = copy.copy(denoiser)  # same class, settings and buffers ...
        # ... but its own tables, so the original keeps its network (and its buffers if the copy is moved)
        fast._modules, fast._buffers, fast._parameters = dict(denoiser._modules), dict(denoiser._buffers), dict(denoiser._parameters)
        fast.eps_model = _fast_network(denoiser.eps_model, low, channels_last, compile, cuda_graphs, compile_mode)
        return fast
    network = _fast_network(denoiser, low, channels_last, compile, cuda_graphs, compile_mode)
    return Accelerated(denoiser, network)


class Chunked(nn.Module):
    """``D(x, sigma)`` evaluated on pieces of at most ``max_batch`` images (sigma split alongside).

    ``max_batch=None`` adapts: it first tries the whole batch and, on an out-of-memory error, halves
    the piece size (down to 1) and keeps the size that worked for later calls. The result is written
    into one preallocated output, so peak memory is one piece's activations plus the output. For a
    network in eval mode, whose images do not interact, the result equals the unchunked call (up to
    the kernels' batch-size-dependent rounding; bit for bit on CPU in our tests).
    """

    def __init__(self, denoiser: Callable, max_batch: Optional[int] = None):
        super().__init__()
        if max_batch is not None and (int(max_batch) != max_batch or max_batch < 1):
            raise ValueError(f"max_batch must be a positive integer or None (adaptive), got {max_batch!r}.")
        self.denoiser = denoiser
        self.max_batch = None if max_batch is None else int(max_batch)
        self.adaptive = max_batch is None
        carry_attributes(denoiser, self)

    def _pieces(self, x: torch.Tensor, sigma, size: int) -> torch.Tensor:
        B = x.shape[0]
        split = torch.is_tensor(sigma) and sigma.numel() > 1
        out = None
        for i in range(0, B, size):
            y = self.denoiser(x[i : i + size], sigma.reshape(-1)[i : i + size] if split else sigma)
            if out is None:
                if size >= B:
                    return y
                out = torch.empty((B, *y.shape[1:]), dtype=y.dtype, device=y.device)
            out[i : i + size] = y
            del y
        return out

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        sigma_vector(sigma, x)  # one clear error for a wrong sigma, before any piece runs
        B = x.shape[0]
        size = min(B, self.max_batch or B)
        shrunk = False
        while True:
            try:
                out = self._pieces(x, sigma, size)
                break
            except torch.OutOfMemoryError:
                if not self.adaptive or size == 1:
                    raise
                if x.device.type == "cuda":
                    torch.cuda.empty_cache()
                size, shrunk = (size + 1) // 2, True
        if shrunk:
            self.max_batch = size
            warnings.warn(f"out of memory: denoising in pieces of {size} images from now on.", RuntimeWarning, stacklevel=2)
        return out


def speed_up(
    denoiser: Callable,
    fast: Optional[FastDtype] = None,
    chunk: Optional[int] = None,
    compile: bool = True,
    cuda_graphs: bool = False,
) -> tuple[Callable, dict]:
    """What the CLI's ``--fast [auto|bf16|fp16|fp32]`` and ``--chunk K`` do: :func:`accelerate` (when ``fast``
    is given; ``"fp32"`` keeps full precision and only compiles / changes the layout), then
    :class:`Chunked` (when ``chunk`` is given: at most ``chunk`` images per call, 0 = adaptive). Returns ``(denoiser, settings)`` with the settings to
    record in a sidecar."""
    settings = {"fast": fast, "compile": bool(compile and fast is not None), "cuda_graphs": bool(cuda_graphs and fast is not None), "chunk": chunk}
    if fast is not None:
        denoiser = accelerate(denoiser, dtype=fast, compile=compile, cuda_graphs=cuda_graphs)
    if chunk is not None:
        if int(chunk) != chunk or chunk < 0:
            raise ValueError(f"--chunk must be a number of images >= 1 (or 0: adapt to the memory), got {chunk}.")
        denoiser = Chunked(denoiser, int(chunk) or None)
    return denoiser, settings
