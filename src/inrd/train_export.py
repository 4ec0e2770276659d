"""The files of a training run of inrd-small: its training state (``train_state.pt``, written atomically and
read back with ``weights_only=True``) and its export, float16 weights + JSON sidecar, replaced as a pair.

The weights (``inrd_small.safetensors``) and their sidecar (``inrd_small.json``, which records the
sha256 of the weights, verified on load) are two files, so no single rename can replace both. The
order used here keeps every intermediate state loadable:

1. the new weights are written to a temporary file and hashed;
2. the new sidecar is renamed into place, recording the new ``sha256`` and, as
   ``previous_sha256``, the hash of the weights file still in place;
3. the new weights are renamed into place;
4. the sidecar is rewritten without ``previous_sha256``.

A kill between 2 and 3 leaves the old weights next to a sidecar that names them as
``previous_sha256`` (a loader that accepts either recorded hash loads them), and
``inrd train --resume`` re-exports the last checkpoint before it continues, which restores a
consistent pair. Nothing else is ever half written: each step is an atomic rename.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import torch

from .denoisers.small import DEFAULT_STEPS, unet_config
from .io import OutputError, atomic_path, ensure_writable_dir, versions, write_json
from .weights import file_sha256

__all__ = ["WEIGHTS_NAME", "STATE_NAME", "T_STEPS", "export", "export_run", "training_facts", "read_meta", "pair_is_consistent",
           "save_state", "load_state"]

WEIGHTS_NAME = "inrd_small.safetensors"
STATE_NAME = "train_state.pt"
T_STEPS = 1000


def training_facts(st: dict) -> dict:
    """What the JSON sidecar records about a run, from a training state."""
    config, history, heldout, seconds, step = st["config"], st["history"], st["heldout"], st["seconds"], st["step"]
    tail = [loss for _, loss in history[-5:]]
    return {
        "iters": step,
        **{k: config[k] for k in ("batch", "lr", "seed", "warmup", "ema_decay", "grad_clip")},
        "lr_schedule": config.get("lr_schedule", "constant"),
        "init": config.get("init"),
        "optimizer": "Adam (betas 0.9, 0.999), linear warm-up then constant or cosine-decayed lr, grad-norm clip",
        "final_train_loss": float(np.mean(tail)) if tail else None,  # mean of the last 5 logged windows
        "heldout_loss_ema": heldout[-1][1] if heldout else None,
        "loss_history": history,
        "heldout_history": heldout,
        "train_seconds": round(seconds, 1),
        "iterations_per_second": round(step / seconds, 3) if seconds > 0 else None,
        "threads": st.get("threads"),
        "device": st.get("device"),
        "versions": versions(),
    }


def _sidecar(config: dict, training: dict, tensors: dict, sha: str, source: str) -> dict:
    return {
        "format": "inrd-small/1",
        "description": "DDPM eps-network (diffusers UNet2DModel) on 32x32 grayscale crops of scikit-image textures; see MODEL_CARD.md",
        "unet": unet_config(config["size"], config["channels"], config["layers_per_block"]),
        "image": {"channels": 1, "size": config["size"], "network_range": "[-1, 1] (w = 2u - 1, paper eq. 15)"},
        "schedule": {"name": "ddpm", "T": T_STEPS, "beta_start": 1e-4, "beta_end": 0.02, "prediction": "epsilon"},
        "data": config["data"],
        "sampling": {"steps": DEFAULT_STEPS},
        "training": training,
        "weights_dtype": "float16",
        "weights_source": f"EMA of the weights (decay {config['ema_decay']})" if source == "ema" else "last optimizer iterate",
        "parameters": int(sum(v.numel() for v in tensors.values())),
        "sha256": sha,
    }


def export(out, ema_state: dict, config: dict, training: dict, source: str = "ema") -> Path:
    """Write ``inrd_small.safetensors`` (float16 weights, by default the EMA ones) and ``inrd_small.json``
    (config, data, schedule, training facts, sha256 of the weights) into ``out`` as a pair (module doc)."""
    from safetensors.torch import save

    for name, v in ema_state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise ValueError(f"refusing to export non-finite weights ({name}); the run diverged, lower --lr.")
    out = ensure_writable_dir(out)
    path = out / WEIGHTS_NAME
    sidecar = path.with_suffix(".json")
    # names of the diffusers UNet2DModel itself (no wrapper prefix), so the file also loads into a bare UNet2DModel
    tensors = {k.removeprefix("unet."): v.detach().to("cpu", torch.float16).contiguous() for k, v in ema_state.items()}
    data = save(tensors, metadata={"format": "inrd-small/1"})  # bytes: a full disk is then an OSError (OutputError)
    meta = _sidecar(config, training, tensors, hashlib.sha256(data).hexdigest(), source)
    old = file_sha256(path) if path.is_file() else None
    replaced = old is not None and old != meta["sha256"]
    with atomic_path(path) as tmp:  # 1 (the rename on leaving the block is 3)
        tmp.write_bytes(data)
        write_json(sidecar, {**meta, "previous_sha256": old} if replaced else meta)  # 2: either weights file is vouched for
    if replaced:
        write_json(sidecar, meta)  # 4
    return path


def read_meta(out) -> dict:
    return json.loads((Path(out) / WEIGHTS_NAME).with_suffix(".json").read_text())


def pair_is_consistent(out) -> bool:
    """Whether ``out`` holds weights whose sha256 is the one their sidecar records."""
    path = Path(out) / WEIGHTS_NAME
    try:
        return path.is_file() and read_meta(out).get("sha256") == file_sha256(path)
    except (OSError, ValueError):
        return False


def save_state(st: dict, path: Path) -> None:
    """Write a training state atomically; a full disk is a one-line :class:`OutputError` that says which
    checkpoint is kept (``torch.save`` on a file would fail with an unrelated zip-writer message)."""
    buf = io.BytesIO()
    torch.save(st, buf)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getbuffer())
    except OutputError as e:
        what = str(e).split("; ")[0]  # "cannot write PATH: REASON"
        kept = (f"the checkpoint of iteration {st['heldout'][-2][0]} is kept in {path.parent} (continue it with --resume "
                f"once there is room)" if len(st["heldout"]) > 1 else "nothing of this run was kept; make room and run it again")
        raise OutputError(f"{what}; {kept}.") from None


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


def export_run(out, source: str = "ema") -> Path:
    """(Re-)export the weights and JSON of the run saved in ``out`` (see :func:`export`); ``source`` is
    ``"ema"`` (the EMA of the weights, the default) or ``"model"`` (the last optimizer iterate)."""
    if source not in ("ema", "model"):
        raise ValueError(f"source must be 'ema' or 'model', got {source!r}.")
    st = load_state(out)
    return export(out, st[source], st["config"], training_facts(st), source=source)
