"""How much memory a run may take, and the one refusal every command uses when it would need more.

A run that would exhaust memory must fail in one line before any work, not minutes later with an
allocation traceback. Each command estimates its own peak (a lower bound: what it must hold at once) and
calls :func:`require`; what is available is :func:`available_memory`, the smallest of what the machine,
the process's control group and its address-space limit allow. This module imports nothing from inrd.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

__all__ = ["available_memory", "require", "gib"]

_UNLIMITED = 1 << 60  # cgroup files write "max" (v2) or a huge number (v1) for "no limit"


def gib(nbytes: float) -> str:
    """``nbytes`` as GiB with one decimal (the unit of every refusal)."""
    return f"{nbytes / 2**30:.1f} GiB"


def _read_int(path: Path) -> Optional[int]:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return None if value >= _UNLIMITED else value


def _meminfo() -> Optional[int]:
    """Linux MemAvailable (what a new allocation can get without swapping), else the free physical pages."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _reclaimable(folder: Path) -> int:
    """Page cache a cgroup v2 can drop under pressure (``inactive_file`` of ``memory.stat``)."""
    try:
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "inactive_file":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _cgroup(root: Path = Path("/sys/fs/cgroup"), proc: Path = Path("/proc/self/cgroup")) -> Optional[int]:
    """Bytes left under the tightest memory limit of this process's control group and its ancestors
    (cgroup v2 ``memory.max - memory.current``, v1 ``memory.limit_in_bytes - memory.usage_in_bytes``)."""
    best: Optional[int] = None
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers, path = parts[1], parts[2].lstrip("/")
        if controllers == "":  # v2: walk from the process's group up to the root
            folder = root / path
            while True:
                limit, used = _read_int(folder / "memory.max"), _read_int(folder / "memory.current")
                if limit is not None and used is not None:
                    left = max(0, limit - used + _reclaimable(folder))
                    best = left if best is None else min(best, left)
                if folder == root or root not in folder.parents:
                    break
                folder = folder.parent
        elif "memory" in controllers.split(","):
            for folder in (root / "memory" / path, root / "memory"):
                limit, used = _read_int(folder / "memory.limit_in_bytes"), _read_int(folder / "memory.usage_in_bytes")
                if limit is not None and used is not None:
                    left = max(0, limit - used)
                    best = left if best is None else min(best, left)
                    break
    return best


def _address_space() -> Optional[int]:
    """Bytes of address space left under ``RLIMIT_AS`` (``ulimit -v``), None when unlimited."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    size = 0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    size = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return max(0, soft - size)


def available_memory(device=None) -> Optional[int]:
    """Bytes a new allocation can get on ``device`` (default: the CPU), or None when unknown.

    On the CPU: the smallest of the machine's MemAvailable, what the cgroup memory limit leaves and what
    the address-space rlimit leaves. On a CUDA device: its free memory (``torch.cuda.mem_get_info``)."""
    kind = getattr(device, "type", None) or str(device or "cpu").split(":")[0]
    if kind == "cuda":
        import torch

        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError, ValueError):
            return None
    if kind != "cpu":
        return None
    known = [v for v in (_meminfo(), _cgroup(), _address_space()) if v is not None]
    return min(known) if known else None


#: share of the available memory a run may plan to use: the estimates are lower bounds (measured 5-15 %
#: below the peaks they model), and a run that passes by a hair is killed by the kernel, not refused
USABLE = 0.85


def require(nbytes: float, what: str, fix: str, device=None) -> None:
    """Refuse, in one line, work that needs at least ``nbytes`` when more than :data:`USABLE` of what is
    available on ``device`` would be needed. ``what`` names the work ("batch 64 of 1x8192x8192 images"),
    ``fix`` the options that lower it."""
    have = available_memory(device)
    if have is not None and nbytes > USABLE * have:
        where = "" if str(device or "cpu").startswith("cpu") else f" on {device}"
        raise ValueError(f"{what} needs at least {gib(nbytes)}, {gib(have)} are available{where} (at most "
                         f"{USABLE:.0%} of it is planned for, the estimate being a lower bound); {fix}.")
