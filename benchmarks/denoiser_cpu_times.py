"""Time of one denoiser call on the CPU at 256x256 (batch 1, RGB), for the README's denoiser table.

    python benchmarks/denoiser_cpu_times.py                 # torch threads = 2, 5 timed calls each
    python benchmarks/denoiser_cpu_times.py --threads 1 --repeats 9 --size 128

Denoisers: ``ffdnet`` (the pretrained IPOL weights), ``tv`` (its default settings: at most 300 dual
FISTA iterations, stopping at a certified RMSE of 1e-3), ``bm3d`` (CBM3D from the ``bm3d`` package),
``drunet`` (random weights: the time does not depend on their values). The input is a noisy crop of
scikit-image's astronaut at ``--sigma`` (default 25/255). One untimed warm-up call, then
``--repeats`` calls; reported: median wall time and median process CPU time (all threads; BM3D's
library may use its own threads) per call, plus, for TV, the iterations it ran.

The machine may be shared: wall times then exceed CPU time / threads; rerun on a quiet machine for
the table, and compare denoisers only within one run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch


def noisy_astronaut(size: int, sigma: float) -> torch.Tensor:
    import skimage.data

    a = skimage.data.astronaut()
    h, w = a.shape[:2]
    a = a[(h - size) // 2 : (h - size) // 2 + size, (w - size) // 2 : (w - size) // 2 + size].astype(np.float32) / 255
    x = torch.from_numpy(a).permute(2, 0, 1)[None].contiguous()
    return x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))


def time_calls(D, x, sigma, repeats):
    with torch.no_grad():
        D(x, sigma)  # warm-up
        wall, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            D(x, sigma)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default %(default)s)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sigma", type=float, default=25 / 255)
    p.add_argument("--only", default="ffdnet,tv,bm3d,drunet", help="comma-separated subset")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    from inrd import denoisers

    builders = {
        "ffdnet": lambda: denoisers.load("ffdnet", channels=3),
        "tv": lambda: denoisers.load("tv"),
        "bm3d": lambda: denoisers.load("bm3d", channels=3),
        "drunet": lambda: denoisers.load("drunet", channels=3, random_init=True),
    }
    x = noisy_astronaut(args.size, args.sigma)
    print(f"# one call, batch 1, RGB {args.size}x{args.size}, sigma {args.sigma:.4f}; torch {torch.__version__}, "
          f"{args.threads} torch threads, {platform.processor() or platform.machine()}, median of {args.repeats}")
    print(f"{'denoiser':10s} {'wall s/call':>12s} {'cpu s/call':>12s}  note")
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        D = builders[name]()
        wall, cpu = time_calls(D, x, args.sigma, args.repeats)
        note = ""
        if name == "tv":
            info = D.solve(x, args.sigma)[1]
            note = f"{int(info.iterations[0])} iterations, certified RMSE <= {info.rmse_bound.item():.1e}"
        elif name == "drunet":
            note = "random weights"
        print(f"{name:10s} {wall:12.3f} {cpu:12.3f}  {note}")


if __name__ == "__main__":
    main()
