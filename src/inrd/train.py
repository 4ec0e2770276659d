"""Train inrd-small: an eps-predicting diffusion network with the DDPM objective (Ho et al. 2020).

The objective is the one every DDPM-family denoiser used in the paper was trained with: for clean
images ``w`` in [-1, 1], timesteps ``k`` uniform in ``0..T-1`` (the paper's ``t = k + 1``) and
``e ~ N(0, Id)``,

    x_k = sqrt(abar_k) w + sqrt(1 - abar_k) e,       loss = || eps(x_k, k) - e ||^2,

with the linear betas ``linspace(1e-4, 0.02, 1000)``. By the paper's eq. (15) minimising it is
learning the MMSE denoiser at every DDPM noise level ``sigma_t`` at once.

Data (shipped with scikit-image, so training is offline): the grayscale textures brick, grass and
gravel, each averaged 2 x 2 down to 256 x 256, so a 32 x 32 crop holds a few bricks / stones /
blades. The rightmost 64 columns of every texture are held out: their top half (``"ref"``) is the
reference set of the quality experiment, their bottom half (``"floor"``) an independent real set for
the metric's noise floor. Training crops come from the left 192 columns only (``"train"``).

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
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .denoisers.small import make_unet, read_checkpoint, unet_config
from .io import atomic_path, ensure_writable_dir
from .schedules import ddpm_alphas_cumprod
from .train_export import T_STEPS, WEIGHTS_NAME, export, pair_is_consistent, read_meta, training_facts

__all__ = [
    "TEXTURES",
    "texture_images",
    "region",
    "random_crops",
    "train",
    "export",
    "export_run",
    "load_state",
    "read_meta",
    "STATE_NAME",
    "WEIGHTS_NAME",
]

TEXTURES = ("brick", "grass", "gravel")
DOWNSAMPLE = 2  # 512 x 512 -> 256 x 256 by 2 x 2 averaging
HOLDOUT_COLUMNS = 64  # rightmost columns of each downsampled texture, never seen in training
STATE_NAME = "train_state.pt"

# The options that define a run; resuming with a different value would silently change the run.
_RUN_KEYS = ("size", "batch", "lr", "seed", "channels", "layers_per_block", "warmup", "ema_decay", "grad_clip", "data",
             "lr_schedule", "decay_iters", "init")
_RUN_DEFAULTS = {"lr_schedule": "constant", "decay_iters": None, "init": None}  # states saved before these options


def texture_images() -> torch.Tensor:
    """The three textures as a (3, 256, 256) float32 tensor in [0, 1] (2 x 2 block means)."""
    import skimage.data

    ims = [torch.from_numpy(np.asarray(getattr(skimage.data, n)(), dtype=np.float32) / 255.0) for n in TEXTURES]
    x = torch.stack(ims)[:, None]
    return F.avg_pool2d(x, DOWNSAMPLE)[:, 0].contiguous()


def region(part: str) -> torch.Tensor:
    """Pixels of one split, (3, H, W): ``"train"`` (256 x 192), ``"ref"`` / ``"floor"`` (128 x 64 each,
    top / bottom half of the held-out columns)."""
    x = texture_images()
    W = x.shape[-1]
    cut = W - HOLDOUT_COLUMNS
    if part == "train":
        return x[:, :, :cut].contiguous()
    half = x.shape[1] // 2
    if part == "ref":
        return x[:, :half, cut:].contiguous()
    if part == "floor":
        return x[:, half:, cut:].contiguous()
    raise ValueError(f"unknown data split {part!r}; use 'train', 'ref' or 'floor'.")


def random_crops(images: torch.Tensor, n: int, size: int, generator: torch.Generator, return_index: bool = False):
    """``n`` crops (n, 1, size, size) at uniform random (image, row, column) positions of ``images`` (K, H, W);
    with ``return_index`` also the (n,) image index of each crop (which texture it is)."""
    K, H, W = images.shape
    if size > H or size > W:
        raise ValueError(f"crop size {size} exceeds the data region {H} x {W}; use a smaller --size.")
    k = torch.randint(0, K, (n,), generator=generator)
    i = torch.randint(0, H - size + 1, (n,), generator=generator)
    j = torch.randint(0, W - size + 1, (n,), generator=generator)
    ar = torch.arange(size)
    rows = (i[:, None] + ar)[:, :, None]
    cols = (j[:, None] + ar)[:, None, :]
    crops = images[k[:, None, None], rows, cols][:, None]
    return (crops, k) if return_index else crops


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


def export_run(out, source: str = "ema") -> Path:
    """(Re-)export the weights and JSON of the run saved in ``out`` (see :func:`export`); ``source`` is
    ``"ema"`` (the EMA of the weights, the default) or ``"model"`` (the last optimizer iterate)."""
    if source not in ("ema", "model"):
        raise ValueError(f"source must be 'ema' or 'model', got {source!r}.")
    st = load_state(out)
    return export(out, st[source], st["config"], training_facts(st), source=source)


def _config(size, batch, lr, seed, channels, layers_per_block, warmup, ema_decay, grad_clip, lr_schedule, iters, init) -> dict:
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}.")
    for name, v in (("batch", batch), ("size", size)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}.")
    if not 0 <= ema_decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}.")
    unet_config(size, channels, layers_per_block)  # validates size / channels
    if int(channels[-1]) % 32:  # self-attention at the lowest level: heads = channels / head dim 32
        raise ValueError(f"the last --channels entry must be a multiple of 32 (attention head size), got {channels[-1]}; e.g. 16,32.")
    return {
        "size": int(size),
        "batch": int(batch),
        "lr": float(lr),
        "seed": int(seed),
        "channels": [int(c) for c in channels],
        "layers_per_block": int(layers_per_block),
        "warmup": int(warmup),
        "ema_decay": float(ema_decay),
        "grad_clip": float(grad_clip),
        "lr_schedule": lr_schedule,
        # a cosine decay ends at the last iteration, so that count is part of the run
        "decay_iters": int(iters) if lr_schedule == "cosine" else None,
        "init": init,
        "data": {
            "source": "scikit-image data",
            "images": list(TEXTURES),
            "downsample": DOWNSAMPLE,
            "train": "columns 0..191 of each 256x256 texture",
            "heldout": "columns 192..255 (ref: rows 0..127, floor: rows 128..255)",
        },
    }


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


@_restoring_threads
def train(
    out,
    iters: int = 4000,
    batch: int = 32,
    lr: float = 5e-4,
    size: int = 32,
    seed: int = 0,
    resume: bool = False,
    threads: int | None = None,
    device: str = "cpu",
    channels=(32, 64, 64),
    layers_per_block: int = 1,
    warmup: int = 200,
    ema_decay: float = 0.999,
    grad_clip: float = 1.0,
    lr_schedule: str = "constant",
    init_weights=None,
    checkpoint_every: int = 250,
    log_every: int = 100,
    progress: bool = True,
    export_weights: bool = True,
) -> dict:
    """Train (or resume training) to ``iters`` optimizer iterations; return a summary dict.

    Writes into ``out``: ``train_state.pt`` (everything needed to resume) every ``checkpoint_every``
    iterations and at the end, and, when ``export_weights``, the EMA weights as ``inrd_small.safetensors``
    + ``inrd_small.json`` (loadable with ``inrd.denoisers.load("inrd-small", weights=...)``).

    ``lr_schedule``: ``"constant"`` after the linear warm-up, or ``"cosine"``: ``lr * (1 + cos(pi s / iters)) / 2``
    at iteration ``s``, reaching 0 at ``iters``. ``init_weights``: an inrd-small ``.safetensors`` file (with its
    sidecar) whose weights start both the network and its EMA (fine-tuning); Adam starts fresh. Its
    sha256 is part of the run, so a fine-tune is reproduced from the same file.
    Raises ``ValueError`` (one line) when the loss or the weights become non-finite; nothing is exported then.
    """
    if int(iters) != iters or iters < 1:
        raise ValueError(f"iters must be a positive integer, got {iters!r}.")
    if threads is not None:
        if int(threads) != threads or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}.")
        torch.set_num_threads(int(threads))
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use 'cpu' or 'cuda'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no GPU is available; use --device cpu.")
    init_state, init = None, None
    if init_weights is not None:
        init_state, meta = read_checkpoint(init_weights)
        if meta["unet"] != unet_config(size, channels, layers_per_block):
            raise ValueError(f"--init-weights {init_weights} is a different network ({meta['unet']['block_out_channels']}); use matching --channels/--size.")
        trained = meta.get("training", {})
        init = {"sha256": meta["sha256"], "iters": trained.get("iters", trained.get("steps"))}  # "steps" in older sidecars
    config = _config(size, batch, lr, seed, channels, layers_per_block, warmup, ema_decay, grad_clip, lr_schedule, iters, init)
    created = not Path(out).exists()
    out = ensure_writable_dir(out)
    state_path = out / STATE_NAME

    with torch.random.fork_rng(devices=[]):  # the initialisation must not depend on (or touch) global RNG
        torch.manual_seed(config["seed"])
        net = make_unet(unet_config(size, channels, layers_per_block)).to(dev)
    if init_state is not None:
        net.unet.load_state_dict(init_state, strict=True)
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
    opt = torch.optim.Adam(net.parameters(), lr=config["lr"])
    gens = _generators(config["seed"])
    step, history, seconds, heldout, window = 0, [], 0.0, [], []

    if resume:
        if not state_path.is_file():
            raise ValueError(f"nothing to resume: {state_path} does not exist; run without --resume to start.")
        st = load_state(out)
        for key in _RUN_KEYS:
            if st["config"].get(key, _RUN_DEFAULTS.get(key)) != config[key]:
                raise ValueError(
                    f"cannot resume: {key} was {st['config'].get(key, _RUN_DEFAULTS.get(key))!r} in the saved run, "
                    f"now {config[key]!r}; use the same options."
                )
        net.load_state_dict(st["model"])
        ema = {k: v.to(dev) for k, v in st["ema"].items()}
        opt.load_state_dict(st["optimizer"])
        for name, g in gens.items():
            g.set_state(st["rng"][name])
        step, history, seconds, heldout = st["step"], st["history"], st["seconds"], st["heldout"]
        window = st["window"]
        if step > iters:
            raise ValueError(f"the saved run is already at iteration {step} > --iters {iters}; give --iters >= {step}.")
    elif state_path.exists():
        raise ValueError(f"{state_path} exists: pass --resume to continue that run, or choose another --out.")

    images = region("train")
    abar = ddpm_alphas_cumprod(T_STEPS).to(torch.float32)
    ema_net = make_unet(unet_config(size, channels, layers_per_block)).to(dev).eval()

    def payload() -> dict:
        return {
            "format": "inrd-train-state/1",
            "config": config,
            "step": step,
            "model": net.state_dict(),
            "ema": ema,
            "optimizer": opt.state_dict(),
            "rng": {name: g.get_state() for name, g in gens.items()},
            "history": history,
            "seconds": seconds,
            "heldout": heldout,
            "window": window,  # losses since the last history entry
            "threads": torch.get_num_threads(),
            "device": str(dev),
        }

    def checkpoint():
        ema_net.load_state_dict(ema)
        heldout.append([step, _heldout_loss(ema_net, abar, size, dev)])
        st = payload()
        with atomic_path(state_path) as tmp:
            torch.save(st, tmp)
        if export_weights:
            export(out, ema, config, training_facts(st))

    if resume and export_weights and not pair_is_consistent(out):
        export(out, ema, config, training_facts(payload()))  # repair an export interrupted between its two renames
    net.train()
    bar = tqdm(total=iters, initial=step, desc="train", unit="iter", disable=not progress, mininterval=5.0)
    t_last = time.perf_counter()
    while step < iters:
        x0 = random_crops(images, config["batch"], size, gens["crop"]) * 2 - 1  # [-1, 1]
        k = torch.randint(0, T_STEPS, (config["batch"],), generator=gens["t"])
        e = torch.randn(x0.shape, generator=gens["noise"])
        xt = _diffuse(x0, k, e, abar)
        loss = F.mse_loss(net(xt.to(dev), k.to(dev)), e.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), config["grad_clip"])
        if not math.isfinite(loss.item()):  # non-finite weights give a non-finite loss at the next step
            kept = f"the checkpoint of iteration {heldout[-1][0]} is kept" if heldout else "nothing was exported"
            if created and not any(out.iterdir()):
                out.rmdir()  # a failed run leaves no empty folder behind
            raise ValueError(f"training diverged at iteration {step + 1} (loss {loss.item()}); {kept}; lower --lr.")
        for group in opt.param_groups:
            group["lr"] = _lr(config, step)
        opt.step()
        # EMA of the weights with the usual warm-up of the decay, so early EMA weights are not all init
        d = min(config["ema_decay"], (1 + step) / (10 + step))
        with torch.no_grad():
            for name, p in net.state_dict().items():
                if p.is_floating_point():
                    ema[name].mul_(d).add_(p, alpha=1 - d)
                else:
                    ema[name].copy_(p)
        step += 1
        window.append(loss.item())
        bar.update(1)
        if step % log_every == 0 or step == iters:
            history.append([step, float(np.mean(window))])
            bar.set_postfix(loss=f"{history[-1][1]:.4f}")
            window = []
        now = time.perf_counter()
        seconds += now - t_last
        t_last = now
        if step % checkpoint_every == 0 or step == iters:
            checkpoint()
            if progress:
                bar.write(
                    f"iteration {step}: train loss {history[-1][1]:.4f}, held-out loss (EMA) {heldout[-1][1]:.4f}, "
                    f"{step / max(seconds, 1e-9):.2f} it/s"
                )
            t_last = time.perf_counter()  # checkpoint time is not training time
    bar.close()
    if not heldout or heldout[-1][0] != step:
        checkpoint()
    return {"out": str(out), **training_facts(payload())}


def _lr(config: dict, step: int) -> float:
    """Learning rate of optimizer iteration ``step`` (0-based): linear warm-up, then constant or cosine to 0."""
    lr = config["lr"] * min(1.0, (step + 1) / max(1, config["warmup"]))
    if config.get("lr_schedule", "constant") == "cosine":
        lr *= 0.5 * (1 + math.cos(math.pi * min(step, config["decay_iters"]) / config["decay_iters"]))
    return lr


def load_state(out) -> dict:
    """The saved training state of a run folder (weights_only load); a damaged file is a one-line error."""
    path = Path(out) / STATE_NAME
    try:
        st = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"no training state {path}; run `inrd train` without --resume first.") from None
    except Exception as e:  # truncated / not a torch file: pickle, zip and unpickler errors all mean "damaged"
        raise ValueError(f"cannot read the training state {path} ({type(e).__name__}); it is damaged: delete it and retrain.") from None
    if "decay_steps" in st["config"]:  # the name of decay_iters in states written before it was renamed
        st["config"]["decay_iters"] = st["config"].pop("decay_steps")
    return st
