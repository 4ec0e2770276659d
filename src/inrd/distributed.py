"""Scale-out: sample large sets of images on several processes / GPUs (``torchrun``), same images as one.

Sample ``i`` of seed ``s`` is fully determined by ``(s, i)``: :class:`inrd.PerSampleNoise` gives every
sample its own generator. The set ``0..n-1`` is cut into batches of global indices
``[k B, (k + 1) B)`` and rank ``r`` of ``W`` takes batches ``k = r, r + W, r + 2W, ...`` (round robin,
so ranks differ by at most one batch). Each batch is sampled by :func:`inrd.sample` with
``first_index = k B``: the very same call, with the very same tensors, as in a one-process run with
the same batch size, so the images are the same bit for bit on the same kind of device (a different
batch size changes only the kernels' float rounding, about 1e-6, not the noise).

Results are gathered to rank 0 and put in index order; for sets too large to hold in memory pass
``gather=False`` and write each batch from ``on_batch`` (``inrd sample-many`` does that).

Launch: ``torchrun --nproc_per_node=G -m inrd sample-many ...`` (or a script calling
:func:`sample_distributed`). The process group is initialised from torchrun's environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) with NCCL for CUDA devices and gloo on
CPU. Without torchrun everything runs in the current process (world size 1). The processes must meet
within ``$INRD_RENDEZVOUS_TIMEOUT`` seconds (default 120): a stale torchrun environment (``RANK`` and
``WORLD_SIZE`` left set in a shell) then fails with a one-line error instead of waiting forever.
"""

from __future__ import annotations

import os
import socket
import sys
from contextlib import contextmanager
from datetime import timedelta
from typing import Callable, Optional, Sequence, Union

import torch
import torch.distributed as dist

from .sampler import _module_device_dtype, sample

__all__ = ["dist_env", "init_distributed", "rendezvous_timeout", "rank_device", "batches", "rank_batches", "sample_distributed"]


def dist_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment; ``(0, 1, 0)`` without it."""
    try:
        rank = int(os.environ.get("RANK", 0))
        world = int(os.environ.get("WORLD_SIZE", 1))
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (they are set by torchrun).") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}.")
    return rank, world, local


def rank_device(device: Union[str, torch.device, None]) -> torch.device:
    """The device of this rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun; others unchanged."""
    device = torch.device(device or "cpu")
    if device.type == "cuda" and device.index is None:
        _, world, local = dist_env()
        if world > 1:
            if local >= torch.cuda.device_count():
                raise ValueError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA devices; lower --nproc_per_node.")
            device = torch.device("cuda", local)
    return device


def init_distributed(device: Union[str, torch.device, None] = None) -> tuple[int, int]:
    """Initialise the default process group when launched by torchrun with more than one process
    (NCCL on CUDA, gloo otherwise); returns ``(rank, world_size)``. Does nothing for one process or
    when a group already exists."""
    rank, world, _ = dist_env()
    if world > 1 and not dist.is_initialized():
        dev = rank_device(device)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        store = _rendezvous(rank, world)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", store=store, rank=rank, world_size=world)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return rank, world


def rendezvous_timeout() -> float:
    """Seconds the processes may take to meet: ``$INRD_RENDEZVOUS_TIMEOUT``, default 120."""
    text = os.environ.get("INRD_RENDEZVOUS_TIMEOUT", "120")
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ValueError(f"INRD_RENDEZVOUS_TIMEOUT must be a positive number of seconds, got {text!r}.")
    return seconds


@contextmanager
def _cpp_log_silenced():
    """File descriptor 2 sent to /dev/null for the duration (C++ code writes to it directly, not to sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _rendezvous(rank: int, world: int):
    """The store of the process group (torch's ``env://`` rendezvous), with a bounded wait.

    Only the meeting is bounded: the process group itself keeps torch's default timeout, since ranks
    may legitimately finish their last batches minutes apart."""
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise ValueError(
            f"WORLD_SIZE={world} but {' and '.join(missing)} not set: launch with torchrun, or unset RANK and WORLD_SIZE "
            f"(a stale torchrun environment?) to run in one process."
        )
    seconds = rendezvous_timeout()
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    try:
        socket.getaddrinfo(os.environ["MASTER_ADDR"], None)
    except (socket.gaierror, UnicodeError):
        raise ValueError(f"MASTER_ADDR {os.environ['MASTER_ADDR']!r} is not a host name or address this machine can resolve; "
                         f"launch with torchrun, or unset RANK and WORLD_SIZE to run in one process.") from None
    try:
        with _cpp_log_silenced():  # torch's C++ side logs every retry with a stack of frames; the error below says it in one line
            store, _, _ = next(dist.rendezvous("env://", rank=rank, world_size=world, timeout=timedelta(seconds=seconds)))
    except (RuntimeError, ValueError) as e:  # torch's DistError is a RuntimeError
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ValueError(
            f"rank {rank} of {world} could not meet the other processes at {where} within {seconds:g} s ({reason}); "
            f"launch with torchrun, or unset RANK and WORLD_SIZE (a stale torchrun environment?) to run in one process "
            f"(INRD_RENDEZVOUS_TIMEOUT sets the wait)."
        ) from None
    return store


class Batches(Sequence):
    """The global index ranges ``[k batch, (k + 1) batch)`` covering ``0..n-1`` (the last may be shorter), for
    ``k`` in ``ks``; a lazy sequence (a billion samples make no list of ranges), sliced like a list."""

    def __init__(self, n: int, batch: int, ks: Optional[range] = None):
        self.n, self.batch = n, batch
        self.ks = range(-(-n // batch)) if ks is None else ks

    def __len__(self) -> int:
        return len(self.ks)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Batches(self.n, self.batch, self.ks[i])
        k = self.ks[i]
        return range(k * self.batch, min((k + 1) * self.batch, self.n))

    def __eq__(self, other) -> bool:
        return list(self) == list(other)


def batches(n: int, batch: int) -> Batches:
    """Global index ranges ``[k batch, (k + 1) batch)`` covering ``0..n-1`` (the last may be shorter)."""
    for name, v in (("the number of samples", n), ("the batch size", batch)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    return Batches(int(n), int(batch))


def rank_batches(n: int, batch: int, rank: int, world: int) -> Batches:
    """The batches of rank ``rank`` out of ``world``: every ``world``-th batch starting at ``rank``."""
    return batches(n, batch)[rank::world]


def _init_for(init, idx: range, n: int):
    """The start of batch ``idx``: a constant, a (1, C, H, W) image for all, or a (n, C, H, W) tensor per sample."""
    if not torch.is_tensor(init):
        return init
    if init.ndim == 3:
        init = init[None]
    if init.ndim != 4 or init.shape[0] not in (1, n):
        raise ValueError(f"init must be a number, a (1, C, H, W) image or one (C, H, W) image per sample ({n}), got {tuple(init.shape)}.")
    return init.expand(len(idx), *init.shape[1:]) if init.shape[0] == 1 else init[idx.start : idx.stop]


@torch.no_grad()
def sample_distributed(
    denoiser: Callable,
    sigmas,
    rho=None,
    *,
    n: int,
    shape: Sequence[int],
    batch: int = 16,
    seed: int = 0,
    init: Union[float, torch.Tensor] = 0.5,
    on_batch: Optional[Callable[[range, torch.Tensor], None]] = None,
    gather: bool = True,
    skip: Optional[Callable[[range], bool]] = None,
    progress: bool = False,
    **sample_kw,
) -> Optional[torch.Tensor]:
    """Samples ``0..n-1`` of ``seed``, shared among the torchrun ranks; see the module docstring.

    Args:
        denoiser: ``D(x, sigma)``, already on this rank's device (see :func:`rank_device`).
        sigmas, rho: schedule and relaxation, or a :class:`~inrd.relaxations.Scheme`, as for :func:`inrd.sample`.
        n: number of samples; shape: ``(C, H, W)`` of one sample; batch: images per sampler call.
        seed: run seed; sample ``i`` uses the generator of ``(seed, i)`` whatever the world size.
        init: a constant, one (1, C, H, W) start image for all samples, or (n, C, H, W) starts.
        on_batch: called on the rank that sampled it as ``on_batch(indices, images)`` with the global
            indices (a ``range``) and the (len, C, H, W) result, e.g. to write files as they come.
        gather: return all samples on rank 0, in index order, as an (n, C, H, W) CPU tensor (other
            ranks return None). Holds n images in memory on rank 0; use False for large sets.
        skip: ``skip(indices) -> bool``: leave out a batch already done (its images are then missing
            from the gathered result, which requires ``gather=False``).
        sample_kw: passed to :func:`inrd.sample` (``init_std``, ``device``, ``dtype``, ``callback``, ...).
    """
    if "first_index" in sample_kw or "noise" in sample_kw:
        raise ValueError("sample_distributed sets first_index and the noise itself (per-sample generators).")
    if skip is not None and gather:
        raise ValueError("skip leaves samples out: use gather=False with it.")
    if len(shape) != 3:
        raise ValueError(f"shape is the (C, H, W) of one sample, got {tuple(shape)}.")
    rank, world = init_distributed(sample_kw.get("device"))
    mine = rank_batches(n, batch, rank, world)
    done: list[torch.Tensor] = []
    from tqdm.auto import tqdm

    for idx in tqdm(mine, disable=not (progress and rank == 0), desc=f"rank {rank}/{world}", unit="batch"):
        if skip is not None and skip(idx):
            continue
        x = sample(
            denoiser, sigmas, rho, shape=(len(idx), *shape), init=_init_for(init, idx, n), seed=seed,
            first_index=idx.start, **sample_kw,
        )
        if on_batch is not None:
            on_batch(idx, x)
        if gather:
            done.append(x.cpu())
    if not gather:
        if world > 1:
            dist.barrier()
        return None
    local = torch.cat(done) if done else torch.empty(0, *shape, dtype=_result_dtype(denoiser, init, sample_kw.get("dtype")))
    if world == 1:
        return local
    return _gather_in_order(local, n, batch, rank, world)


def _result_dtype(denoiser, init, dtype) -> torch.dtype:
    """The dtype :func:`inrd.sample` gives its result (for a rank left without a batch)."""
    if dtype is not None:
        return dtype
    if torch.is_tensor(init) and init.is_floating_point():
        return init.dtype
    return _module_device_dtype(denoiser)[1] or torch.float32


def _gather_in_order(local: torch.Tensor, n: int, batch: int, rank: int, world: int) -> Optional[torch.Tensor]:
    """Gather every rank's samples to rank 0 (padded to a common length) and order them by index."""
    counts = [sum(len(b) for b in rank_batches(n, batch, r, world)) for r in range(world)]
    width = max(counts)
    comm = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    padded = torch.zeros((width, *local.shape[1:]), dtype=local.dtype, device=comm)
    padded[: local.shape[0]] = local.to(comm)
    parts = [torch.empty_like(padded) for _ in range(world)] if rank == 0 else None
    dist.gather(padded, parts, dst=0)
    if rank != 0:
        return None
    out = torch.empty((n, *local.shape[1:]), dtype=local.dtype)
    for r, part in enumerate(parts):
        index = torch.tensor([i for b in rank_batches(n, batch, r, world) for i in b], dtype=torch.long)
        out[index] = part[: counts[r]].cpu()
    return out
