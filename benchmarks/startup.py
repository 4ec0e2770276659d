"""Start-up time of inrd against torch's own, in the same run: ``python -c "import torch"`` is the floor
(inrd needs torch), and ``import inrd``, ``inrd --help`` and ``inrd sample --help`` are reported as
ratios to it. The commands run interleaved, each in a fresh process, ``--repeats`` times; medians.

    python benchmarks/startup.py [--repeats 7]

Targets: ``import inrd`` <= 1.3x, ``inrd --help`` <= 1.5x, ``inrd sample --help`` <= 1.5x.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "import inrd": [sys.executable, "-c", "import inrd"],
    "inrd --help": [sys.executable, "-m", "inrd", "--help"],
    "inrd sample --help": [sys.executable, "-m", "inrd", "sample", "--help"],
    "inrd restore --help": [sys.executable, "-m", "inrd", "restore", "--help"],
}
TARGETS = {"import inrd": 1.3, "inrd --help": 1.5, "inrd sample --help": 1.5}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for _ in range(args.repeats):
        for name, cmd in COMMANDS.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - t0)
    floor = statistics.median(times["import torch"])
    print(f"{'command':24s} {'median s':>9s} {'x torch':>8s}  target")
    for name, ts in times.items():
        m = statistics.median(ts)
        target = TARGETS.get(name)
        verdict = "" if target is None else f"<= {target}x: {'met' if m / floor <= target else 'NOT met'}"
        print(f"{name:24s} {m:9.2f} {m / floor:8.2f}  {verdict}")


if __name__ == "__main__":
    main()
