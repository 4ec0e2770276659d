"""Seconds and peak memory of ``inrd restore --task deblur`` at its defaults beside deepinv's DPIR as its
users run it, each a fresh process (imports, model load, reading and writing the image included).

For each side N (default 256, 512, 1024) an N x N colour observation is written once: astronaut resized
to N, Gaussian blur of std 1.6, nu = 0.01 (seed 0). Then, each in its own process, timed from start to
exit with its peak resident memory (``os.wait4``):

* ``python -c "import torch"``: the start-up and memory every torch program pays;
* ``inrd restore`` at its defaults (HQS, 8 levels, the ``valid`` boundary: the data step by conjugate
  gradients) and with ``--boundary periodic`` (the FFT data step, the model deepinv's ``BlurFFT`` is);
* deepinv: ``deepinv.optim.DPIR(sigma=0.01, denoiser=FFDNet)`` on ``deepinv.physics.BlurFFT``, the
  image read and written with torchvision (the same pretrained FFDNet, loaded by inrd).

Prints one row per size: seconds and MiB of each, and each ``inrd restore`` over deepinv's DPIR.
Results: docs/restoration.md.

    python benchmarks/restore_speed.py                  # 256 512 1024, about 5 minutes on 2 cores
    python benchmarks/restore_speed.py --sizes 256 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DPIR_SCRIPT = """
import sys, torch, deepinv as dinv, torchvision.io as tio
from inrd.denoisers import load
from inrd.restoration import gaussian_kernel
y = tio.decode_image(sys.argv[1]).float()[None] / 255
physics = dinv.physics.BlurFFT(img_size=tuple(y.shape[1:]), filter=gaussian_kernel(1.6)[None, None].float())
with torch.no_grad():
    x = dinv.optim.DPIR(sigma=0.01, denoiser=load("ffdnet", channels=3))(y, physics)
tio.write_png((x[0].clamp(0, 1) * 255).round().to(torch.uint8), sys.argv[2])
"""


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident MiB) of ``cmd`` run to completion; a failure stops the benchmark."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed: {proc.stderr.read().decode().strip().splitlines()[-1:]}")
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def observation(folder: Path, n: int) -> Path:
    import torch

    from inrd import io
    from inrd.restoration import PeriodicBlur, gaussian_kernel, observe

    path = folder / f"observed_{n}.png"
    x = io.load_image("astronaut", size=n)
    io.save_image(path, observe(x, PeriodicBlur(gaussian_kernel(1.6)), 0.01, seed=0)[0].clamp(0, 1).to(torch.float32))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--repeat", type=int, default=1, help="runs of each command (the median is printed)")
    args = ap.parse_args()
    inrd = [sys.executable, "-m", "inrd"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = []
        for n in args.sizes:
            y = observation(tmp, n)
            restore = [*inrd, "restore", "--task", "deblur", "--observed", str(y), "--kernel", "gaussian:1.6", "--noise-level", "0.01"]
            cmds = {
                "import torch": [sys.executable, "-c", "import torch"],
                "inrd restore": [*restore, "--out", str(tmp / f"valid_{n}")],
                "inrd restore --boundary periodic": [*restore, "--boundary", "periodic", "--out", str(tmp / f"periodic_{n}")],
                "deepinv DPIR": [sys.executable, "-c", DPIR_SCRIPT, str(y), str(tmp / f"dpir_{n}.png")],
            }
            runs = {}
            for name, cmd in cmds.items():
                results = []
                for r in range(args.repeat):
                    if name.startswith("inrd restore"):
                        cmd = cmd[:-1] + [f"{cmd[-1]}_{r}"]  # one run per folder
                    results.append(timed(cmd))
                runs[name] = (statistics.median(s for s, _ in results), max(m for _, m in results))
            rows.append((n, runs))
            dpir = runs["deepinv DPIR"][0]
            cells = "; ".join(f"{k} {s:.1f} s {m:.0f} MiB" for k, (s, m) in runs.items())
            print(f"{n} px: {cells}; inrd restore / DPIR {runs['inrd restore'][0] / dpir:.2f}x, "
                  f"periodic / DPIR {runs['inrd restore --boundary periodic'][0] / dpir:.2f}x", flush=True)


if __name__ == "__main__":
    main()
