"""Train inrd-small: an eps-predicting diffusion network with the DDPM objective (Ho et al. 2020).

The objective is the one every DDPM-family denoiser used in the paper was trained with: for clean
images ``w`` in [-1, 1], timesteps ``k`` uniform in ``0..T-1`` (the paper's ``t = k + 1``) and
``e ~ N(0, Id)``,

    x_k = sqrt(abar_k) w + sqrt(1 - abar_k) e,       loss = || eps(x_k, k) - e ||^2,

with the linear betas ``linspace(1e-4, 0.02, 1000)``. By the paper's eq. (15) minimising it is
learning the MMSE denoiser at every DDPM noise level ``sigma_t`` at once. The data are random crops
of the training region of :mod:`inrd.textures`.

Reproducibility: the network initialisation uses ``seed``; crops, timesteps and noise each have their
own ``torch.Generator`` seeded from ``seed``, so a run is a deterministic function of its options
(on CPU with a fixed thread count). The training state (weights, EMA weights, Adam state, step, the
three generator states, loss history) is written atomically every ``checkpoint_every`` iterations;
``resume=True`` continues from it, bit for bit as if the run had not stopped. The learning rate is
constant after a linear warm-up (``iters`` can then be raised when resuming) or cosine-decayed to 0 at
``iters`` (then fixed for the run). ``init_weights`` starts network and EMA from an exported checkpoint
with a fresh Adam (fine-tuning; the checkpoint's sha256 is part of the run). The exported weights and
their JSON sidecar are replaced as a pair (:mod:`inrd.train_export`); a non-finite loss stops the run
with a ``ValueError`` before anything non-finite is exported.

The run folder is claimed with :func:`inrd.runs.start_run`: its ``run.json`` records the options that
define the run, so a folder of another run (an ``inrd sample`` folder, a training run with other
options) is refused, and a second run on the same folder at the same time is refused at once.
"""

from __future__ import annotations

import functools
import math
import numbers
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import runs
from .choices import LrSchedule, choose
from .denoisers.small import make_unet, read_checkpoint, unet_config
from .io import OutputError, check_output, write_json
from .schedules import ddpm_alphas_cumprod
from .textures import description, random_crops, region
from .train_export import (
    STATE_NAME,
    T_STEPS,
    WEIGHTS_NAME,
    export,
    export_run,
    load_state,
    pair_is_consistent,
    read_meta,
    save_state,
    training_facts,
)
from .validate import check_device, check_index

__all__ = ["TrainOptions", "train", "export", "export_run", "load_state", "read_meta", "STATE_NAME", "WEIGHTS_NAME"]

# The options that define a run; resuming with a different value would silently change the run.
_RUN_KEYS = ("size", "batch", "lr", "seed", "channels", "layers_per_block", "warmup", "ema_decay", "grad_clip", "data",
             "lr_schedule", "decay_iters", "init")
_RUN_DEFAULTS = {"lr_schedule": "constant", "decay_iters": None, "init": None}  # states saved before these options


def _count(name: str, value, low: int = 1) -> int:
    """``value`` as an integer >= ``low`` (an integral float is accepted), else a one-line error naming ``--name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or int(value) != value or value < low:
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"--{name.replace('_', '-')} must be {what}, got {value!r}.")
    return int(value)


@dataclass(frozen=True)
class TrainOptions:
    """The options of one training run, checked on construction: a bad value is a one-line ``ValueError``
    naming its ``inrd train`` flag, before any data is read or any network built."""

    iters: int = 4000
    batch: int = 32
    lr: float = 5e-4
    size: int = 32
    seed: int = 0
    channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    warmup: int = 200  #: iterations of the linear learning-rate warm-up (0: none)
    ema_decay: float = 0.999
    grad_clip: float = 1.0  #: largest gradient norm (0: no clipping)
    lr_schedule: LrSchedule = "constant"
    init_weights: Optional[Path] = None  #: inrd-small weights that start network and EMA (fine-tuning)
    threads: Optional[int] = None  #: torch CPU threads for the run (None: torch's choice)
    device: str = "cpu"
    checkpoint_every: int = 250
    log_every: int = 100

    def __post_init__(self):
        put = functools.partial(object.__setattr__, self)
        for name in ("iters", "batch", "size", "layers_per_block", "checkpoint_every", "log_every"):
            put(name, _count(name, getattr(self, name)))
        put("seed", check_index(self.seed, "--seed"))
        put("warmup", _count("warmup", self.warmup, low=0))
        if self.threads is not None:
            put("threads", _count("threads", self.threads))
        if not (isinstance(self.lr, numbers.Real) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a finite number > 0, got {self.lr!r}.")
        if not (isinstance(self.ema_decay, numbers.Real) and 0 <= self.ema_decay < 1):
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}.")
        if not (isinstance(self.grad_clip, numbers.Real) and math.isfinite(self.grad_clip) and self.grad_clip >= 0):
            raise ValueError(f"grad_clip must be a finite number >= 0 (0: no clipping), got {self.grad_clip!r}.")
        put("lr_schedule", choose(self.lr_schedule, LrSchedule, "--lr-schedule"))
        put("channels", tuple(int(c) for c in self.channels))
        unet_config(self.size, self.channels, self.layers_per_block)  # validates size / channels
        if self.channels[-1] % 32:  # self-attention at the lowest level: heads = channels / head dim 32
            raise ValueError(f"the last --channels entry must be a multiple of 32 (attention head size), got {self.channels[-1]}; e.g. 16,32.")
        check_device(self.device)
        if self.init_weights is not None:
            put("init_weights", Path(self.init_weights))

    @property
    def unet(self) -> dict:
        return unet_config(self.size, self.channels, self.layers_per_block)


def _config(opts: TrainOptions, init: Optional[dict]) -> dict:
    """What defines the run (saved with its state and, as far as it determines the outputs, in ``run.json``)."""
    return {
        "size": opts.size,
        "batch": opts.batch,
        "lr": float(opts.lr),
        "seed": opts.seed,
        "channels": list(opts.channels),
        "layers_per_block": opts.layers_per_block,
        "warmup": opts.warmup,
        "ema_decay": float(opts.ema_decay),
        "grad_clip": float(opts.grad_clip),
        "lr_schedule": opts.lr_schedule,
        # a cosine decay ends at the last iteration, so that count is part of the run
        "decay_iters": opts.iters if opts.lr_schedule == "cosine" else None,
        "init": init,
        "data": description(),
    }


def _manifest(config: dict) -> dict:
    return {"command": "inrd train", **{k: config.get(k, _RUN_DEFAULTS.get(k)) for k in _RUN_KEYS}}


def _generators(seed: int) -> dict[str, torch.Generator]:
    # one independent stream per source of randomness (numpy SeedSequence spawns them from the seed)
    states = np.random.SeedSequence(int(seed)).generate_state(3, np.uint64)
    return {name: torch.Generator().manual_seed(int(s)) for name, s in zip(("crop", "t", "noise"), states)}


def _heldout_batch(size: int, n: int = 192) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed validation batch (held-out crops, timesteps, noise), the same for every run."""
    g = torch.Generator().manual_seed(12345)
    x0 = random_crops(torch.cat([region("ref"), region("floor")], 2), n, size, g) * 2 - 1
    k = torch.randint(0, T_STEPS, (n,), generator=g)
    e = torch.randn(x0.shape, generator=g)
    return x0, k, e


def _diffuse(x0, k, e, abar):
    a = abar[k].to(x0.dtype).reshape(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * e


@torch.no_grad()
def _heldout_loss(net, abar, size, device) -> float:
    x0, k, e = _heldout_batch(size)
    xt = _diffuse(x0, k, e, abar)
    losses = [F.mse_loss(net(xt[i : i + 64].to(device), k[i : i + 64].to(device)), e[i : i + 64].to(device), reduction="sum") for i in range(0, len(k), 64)]
    return float(sum(losses)) / e.numel()


def _restoring_threads(fn):
    """``threads`` sets torch's CPU thread count for the call only; restore the caller's afterwards."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        n = torch.get_num_threads()
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(n)

    return wrapper


@dataclass
class _Trainer:
    """The state of a run as it goes (network, EMA, Adam, the three generators, step, losses, time), and one
    optimizer iteration of the DDPM objective."""

    config: dict
    device: torch.device
    net: torch.nn.Module
    ema: dict
    opt: torch.optim.Optimizer
    gens: dict
    step: int = 0
    history: list = field(default_factory=list)  # [iteration, mean training loss since the previous entry]
    seconds: float = 0.0  # training time, checkpoints excluded
    heldout: list = field(default_factory=list)  # [iteration, held-out loss of the EMA weights] at each checkpoint
    window: list = field(default_factory=list)  # losses since the last history entry

    @classmethod
    def fresh(cls, config: dict, device: torch.device, init_state: Optional[dict]) -> "_Trainer":
        """Network (seeded initialisation, or ``init_state``), its EMA, a fresh Adam and the generators."""
        unet = unet_config(config["size"], config["channels"], config["layers_per_block"])
        with torch.random.fork_rng(devices=[]):  # the initialisation must not depend on (or touch) global RNG
            torch.manual_seed(config["seed"])
            net = make_unet(unet).to(device)
        if init_state is not None:
            net.unet.load_state_dict(init_state, strict=True)
        ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
        opt = torch.optim.Adam(net.parameters(), lr=config["lr"])
        return cls(config, device, net, ema, opt, _generators(config["seed"]))

    def restore(self, st: dict) -> None:
        """Continue from a saved training state (:func:`load_state`)."""
        self.net.load_state_dict(st["model"])
        self.ema = {k: v.to(self.device) for k, v in st["ema"].items()}
        self.opt.load_state_dict(st["optimizer"])
        for name, g in self.gens.items():
            g.set_state(st["rng"][name])
        self.step, self.history, self.seconds, self.heldout = st["step"], st["history"], st["seconds"], st["heldout"]
        self.window = st["window"]

    def payload(self) -> dict:
        """Everything needed to resume, as saved in ``train_state.pt``."""
        return {
            "format": "inrd-train-state/1",
            "config": self.config,
            "step": self.step,
            "model": self.net.state_dict(),
            "ema": self.ema,
            "optimizer": self.opt.state_dict(),
            "rng": {name: g.get_state() for name, g in self.gens.items()},
            "history": self.history,
            "seconds": self.seconds,
            "heldout": self.heldout,
            "window": self.window,
            "threads": torch.get_num_threads(),
            "device": str(self.device),
        }

    def iteration(self, images: torch.Tensor, abar: torch.Tensor, log_every: int, last: int) -> None:
        """One Adam step on a fresh batch of crops, the EMA update and the loss log; a non-finite loss is a
        one-line ``ValueError`` before the step is taken (nothing non-finite reaches the EMA or a file)."""
        config, dev = self.config, self.device
        x0 = random_crops(images, config["batch"], config["size"], self.gens["crop"]) * 2 - 1  # [-1, 1]
        k = torch.randint(0, T_STEPS, (config["batch"],), generator=self.gens["t"])
        e = torch.randn(x0.shape, generator=self.gens["noise"])
        loss = F.mse_loss(self.net(_diffuse(x0, k, e, abar).to(dev), k.to(dev)), e.to(dev))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if config["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), config["grad_clip"])
        if not math.isfinite(loss.item()):  # non-finite weights give a non-finite loss at the next step
            kept = f"the checkpoint of iteration {self.heldout[-1][0]} is kept" if self.heldout else "nothing was exported"
            raise ValueError(f"training diverged at iteration {self.step + 1} (loss {loss.item()}); {kept}; lower --lr.")
        for group in self.opt.param_groups:
            group["lr"] = _lr(config, self.step)
        self.opt.step()
        # EMA of the weights with the usual warm-up of the decay, so early EMA weights are not all init
        d = min(config["ema_decay"], (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for name, p in self.net.state_dict().items():
                if p.is_floating_point():
                    self.ema[name].mul_(d).add_(p, alpha=1 - d)
                else:
                    self.ema[name].copy_(p)
        self.step += 1
        self.window.append(loss.item())
        if self.step % log_every == 0 or self.step == last:
            self.history.append([self.step, float(np.mean(self.window))])
            self.window = []


def _init(opts: TrainOptions) -> tuple[Optional[dict], Optional[dict]]:
    """The weights a fine-tune starts from and what the run records of them (sha256, iterations), or (None, None)."""
    if opts.init_weights is None:
        return None, None
    state, meta = read_checkpoint(opts.init_weights)
    if meta["unet"] != opts.unet:
        raise ValueError(f"--init-weights {opts.init_weights} is a different network ({meta['unet']['block_out_channels']}); "
                         f"use matching --channels/--size.")
    trained = meta.get("training", {})
    return state, {"sha256": meta["sha256"], "iters": trained.get("iters", trained.get("steps"))}  # "steps" in older sidecars


def _check_resumable(out: Path, config: dict, resume: bool, iters: int) -> None:
    """Refuse, before any work, a resume without a saved state, a resume with other options or past ``iters``,
    and a fresh start over a saved state."""
    state_path = out / STATE_NAME
    if not resume:
        if state_path.exists():
            raise ValueError(f"{state_path} exists: pass --resume to continue that run, or choose another --out.")
        return
    if not state_path.is_file():
        raise ValueError(f"nothing to resume: {state_path} does not exist; run without --resume to start.")
    st = load_state(out)
    for key in _RUN_KEYS:
        saved = st["config"].get(key, _RUN_DEFAULTS.get(key))
        if saved != config[key]:
            raise ValueError(f"cannot resume: {key} was {saved!r} in the saved run, now {config[key]!r}; use the same options.")
    if st["step"] > iters:
        raise ValueError(f"the saved run is already at iteration {st['step']} > --iters {iters}; give --iters >= {st['step']}.")
    if not (out / runs.MANIFEST).exists():  # a run saved before run folders had a manifest: its state says what it is
        write_json(out / runs.MANIFEST, {"params": _manifest(config)})


def _checkpoint(tr: _Trainer, out: Path, abar: torch.Tensor, ema_net: torch.nn.Module, export_weights: bool) -> None:
    """Measure the EMA weights' held-out loss, save the state and (optionally) export the EMA weights."""
    ema_net.load_state_dict(tr.ema)
    tr.heldout.append([tr.step, _heldout_loss(ema_net, abar, tr.config["size"], tr.device)])
    st = tr.payload()
    save_state(st, out / STATE_NAME)
    if export_weights:
        try:
            export(out, tr.ema, tr.config, training_facts(st))
        except OutputError as e:  # the state is saved: --resume re-exports it (the pair is checked first)
            raise OutputError(f"{str(e).rstrip('.')}; the training state of iteration {tr.step} is saved: "
                              f"continue with --resume once there is room.") from None


@_restoring_threads
def train(out, *, resume: bool = False, progress: bool = True, export_weights: bool = True, **options) -> dict:
    """Train (or resume training) to ``iters`` optimizer iterations; return a summary dict.

    ``options`` are the fields of :class:`TrainOptions` (``iters``, ``batch``, ``lr``, ``size``, ``seed``,
    ``channels``, ``warmup``, ``lr_schedule``, ``init_weights``, ``threads``, ``device``, ...).
    Writes into ``out``: ``run.json`` (the run's options, :func:`inrd.runs.start_run`), ``train_state.pt``
    (everything needed to resume) every ``checkpoint_every`` iterations and at the end, and, when
    ``export_weights``, the EMA weights as ``inrd_small.safetensors`` + ``inrd_small.json`` (loadable with
    ``inrd.denoisers.load("inrd-small", weights=...)``).

    ``lr_schedule``: ``"constant"`` after the linear warm-up, or ``"cosine"``: ``lr * (1 + cos(pi s / iters)) / 2``
    at iteration ``s``, reaching 0 at ``iters``. ``init_weights``: an inrd-small ``.safetensors`` file (with its
    sidecar) whose weights start both the network and its EMA (fine-tuning); Adam starts fresh. Its
    sha256 is part of the run, so a fine-tune is reproduced from the same file.
    Raises ``ValueError`` (one line) on a bad option or output folder before any work, and when the loss or
    the weights become non-finite (nothing is exported then); a full disk is an :class:`~inrd.io.OutputError`.
    """
    opts = TrainOptions(**options)
    out = check_output(out)
    dev = check_device(opts.device)
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    init_state, init = _init(opts)
    config = _config(opts, init)
    _check_resumable(out, config, resume, opts.iters)
    fresh = not (out / STATE_NAME).exists()  # also a run killed before its first checkpoint: it starts again
    with runs.start_run(out, _manifest(config), resume=resume or fresh, resume_flag="--resume") as out:
        tr = _Trainer.fresh(config, dev, init_state)
        if resume:
            tr.restore(load_state(out))
            if export_weights and not pair_is_consistent(out):
                export(out, tr.ema, config, training_facts(tr.payload()))  # repair an export interrupted between its two renames
        _loop(tr, out, opts, progress, export_weights)
        return {"out": str(out), **training_facts(tr.payload())}


def _loop(tr: _Trainer, out: Path, opts: TrainOptions, progress: bool, export_weights: bool) -> None:
    """Iterate to ``opts.iters``, checkpointing every ``opts.checkpoint_every`` iterations and at the end."""
    images = region("train")
    abar = ddpm_alphas_cumprod(T_STEPS).to(torch.float32)
    ema_net = make_unet(opts.unet).to(tr.device).eval()
    tr.net.train()
    # the bar is closed (its line ended) before an error propagates, so that the error is a line of its own
    with tqdm(total=opts.iters, initial=tr.step, desc="train", unit="iter", disable=not progress, mininterval=5.0) as bar:
        t_last = time.perf_counter()
        while tr.step < opts.iters:
            tr.iteration(images, abar, opts.log_every, opts.iters)
            bar.update(1)
            if not tr.window:  # a history entry was just logged
                bar.set_postfix(loss=f"{tr.history[-1][1]:.4f}")
            now = time.perf_counter()
            tr.seconds += now - t_last
            t_last = now
            if tr.step % opts.checkpoint_every == 0 or tr.step == opts.iters:
                _checkpoint(tr, out, abar, ema_net, export_weights)
                if progress:
                    bar.write(f"iteration {tr.step}: train loss {tr.history[-1][1]:.4f}, held-out loss (EMA) {tr.heldout[-1][1]:.4f}, "
                              f"{tr.step / max(tr.seconds, 1e-9):.2f} it/s")
                t_last = time.perf_counter()  # checkpoint time is not training time
    if not tr.heldout or tr.heldout[-1][0] != tr.step:
        _checkpoint(tr, out, abar, ema_net, export_weights)


def _lr(config: dict, step: int) -> float:
    """Learning rate of optimizer iteration ``step`` (0-based): linear warm-up, then constant or cosine to 0."""
    lr = config["lr"] * min(1.0, (step + 1) / max(1, config["warmup"]))
    if config.get("lr_schedule", "constant") == "cosine":
        lr *= 0.5 * (1 + math.cos(math.pi * min(step, config["decay_iters"]) / config["decay_iters"]))
    return lr
