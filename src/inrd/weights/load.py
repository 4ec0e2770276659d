"""Reading checkpoints without executing code from them (``torch.load(weights_only=True)`` or safetensors), and
the integrity rule of weights that carry a JSON sidecar (as ``inrd train`` writes them)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

from .registry import PathLike, _first_line, _regular_file, file_sha256, locate

__all__ = ["load_state_dict", "read_sidecar", "verify_sidecar"]


def load_state_dict(name_or_path: PathLike, map_location="cpu") -> dict:
    """Read a state dict (name -> tensor) from a registry name or a path, never executing code from it.

    ``.safetensors`` files are read with safetensors, anything else with
    ``torch.load(weights_only=True)``. A file that is truncated, corrupt, or holds something other
    than tensors raises one ``ValueError`` naming the file. A top-level ``{"state_dict": {...}}``
    wrapper is unwrapped.
    """
    import pickle
    import zipfile

    import torch

    path = locate(name_or_path)
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a folder; give the weights file inside it.")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device=str(map_location))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise ValueError(
                f"cannot read checkpoint {path} as safetensors ({_first_line(e)}): the file is truncated or corrupt; "
                f"fetch or copy it again."
            ) from None
    else:
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
            if found:  # a well-formed pickle that references Python objects
                raise ValueError(
                    f"checkpoint {path} holds Python objects other than tensors ({found.group(1)}); refusing to unpickle "
                    f"it (torch.load weights_only=True). Re-save it as a plain state dict or as .safetensors."
                ) from None
            detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(e))
            why = detail.group(1).strip() if detail else _first_line(e)
            raise ValueError(f"cannot read checkpoint {path} ({why}): the file is truncated or corrupt; fetch or copy it again.") from None
        except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, AttributeError, KeyError, IndexError) as e:
            raise ValueError(f"cannot read checkpoint {path} ({_first_line(e)}): the file is truncated or corrupt; fetch or copy it again.") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint {path} is not a state dict (a mapping of names to tensors); got {type(state).__name__}.")
    return state


def read_sidecar(path: PathLike) -> Optional[dict]:
    """The JSON sidecar of a weights file (same name, ``.json``, as ``inrd train`` writes it), or None when there
    is none; one-line ``ValueError`` when it is not valid JSON or not an object."""
    sidecar = Path(path).with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        meta = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{sidecar} is not valid JSON ({getattr(e, 'msg', type(e).__name__)}); restore it from `inrd train`.") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{sidecar} holds a JSON {type(meta).__name__}, not the object `inrd train` writes; restore it.")
    return meta


def verify_sidecar(path: PathLike, meta: dict) -> str:
    """Hash ``path`` and compare with the sha256 its sidecar ``meta`` records; returns the digest.

    The sidecar vouches for ``"sha256"`` and, after an ``inrd train`` export killed between its two renames,
    for ``"previous_sha256"`` (the intact weights it replaces). One-line ``ValueError`` when it records no
    hash or the file matches neither (truncated, modified): the rule of every load of inrd-small weights
    and of ``inrd weights verify``."""
    path = Path(path)
    expected = str(meta.get("sha256") or "").lower()
    if not expected:
        raise ValueError(f"{path.with_suffix('.json')} records no 'sha256' of {path.name}; refusing unverified weights.")
    _regular_file(path)
    actual = file_sha256(path)
    if actual not in (expected, str(meta.get("previous_sha256") or "").lower()):
        raise ValueError(
            f"sha256 mismatch for {path}: expected {expected[:16]}..., got {actual[:16]}... ({path.stat().st_size} bytes); "
            f"the file is truncated, corrupted or was modified (reinstall inrd, or retrain with `inrd train`)."
        )
    return actual
