"""Noise sources for INRD: the Z_t of ``V_{t-1} = D^{rho_t}_{sigma_t}(V_t + gamma_t Z_t)``.

Drawing the noise of a whole batch with one generator makes a sample depend on the batch size. Here
every sample has its own generator, seeded from ``(seed, index)``: sample ``i`` of seed ``s`` is the same
image whatever the batch, the chunking, the number of processes or the device of the network.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Callable, Optional, Union

import numpy as np
import torch

__all__ = ["NoiseSource", "PerSampleNoise", "sample_seed"]

#: ``noise(t, like) -> Z_t``: standard Gaussian noise shaped like ``like`` for step t (T+1 = start)
NoiseSource = Callable[[int, torch.Tensor], torch.Tensor]


def sample_seed(seed: int, index: int) -> int:
    """64-bit seed of sample ``index`` under run seed ``seed`` (numpy SeedSequence: independent streams)."""
    if int(seed) < 0 or int(index) < 0:
        raise ValueError(f"seed and sample index must be integers >= 0, got seed={seed}, index={index}.")
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0])


#: rows of at least this many values are filled in parallel threads (``normal_`` releases the GIL);
#: below it a thread hand-off costs more than the draw (a 3x32x32 row takes ~20 us)
_PARALLEL_ROW = 1 << 16
_POOL: tuple[int, Optional[concurrent.futures.ThreadPoolExecutor]] = (0, None)


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    # one pool per process: a forked child inherits the pool object but not its threads (work sent to
    # it would never run), so a new process makes its own
    global _POOL
    pid, pool = _POOL
    if pool is None or pid != os.getpid():
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="inrd-noise")
        _POOL = (os.getpid(), pool)
    return pool


class PerSampleNoise:
    """Gaussian noise with one generator per sample (``first`` is the global index of the batch's first
    sample), so sample i of seed s does not depend on the batch size or position.

    Noise is drawn in float32 on ``device`` (CPU by default, which makes it device-independent) and then
    cast/moved to the iterate's dtype and device. Large rows are drawn in parallel threads, each generator
    by one thread, so the values do not depend on the number of threads; for a CUDA iterate they are drawn
    into pinned memory and copied asynchronously.
    """

    def __init__(self, seed: int, batch: int, first: int = 0, device: Union[str, torch.device] = "cpu"):
        self.indices = list(range(first, first + batch))
        self.generators = [torch.Generator(device).manual_seed(sample_seed(seed, i)) for i in self.indices]
        self.device = device

    def __call__(self, t: int, like: torch.Tensor) -> torch.Tensor:
        if like.shape[0] != len(self.generators):
            raise ValueError(f"noise source made for {len(self.generators)} samples, iterate has {like.shape[0]}.")
        # one preallocated tensor filled row by row: row.normal_(generator=g) is torch.randn(row.shape,
        # generator=g) bit for bit, without a per-sample allocation or a stack copy
        pin = like.device.type == "cuda" and torch.device(self.device).type == "cpu"
        z = torch.empty((len(self.generators), *like.shape[1:]), device=self.device, dtype=torch.float32, pin_memory=pin)
        fill = list(zip(z, self.generators))
        if len(fill) > 1 and z[0].numel() >= _PARALLEL_ROW:
            list(_pool().map(lambda rg: rg[0].normal_(generator=rg[1]), fill))
        else:
            for row, g in fill:
                row.normal_(generator=g)
        return z.to(device=like.device, dtype=like.dtype, non_blocking=True)
