"""Reading checkpoints without executing code from them (``torch.load(weights_only=True)`` or safetensors)."""

from __future__ import annotations

import re

from .registry import PathLike, _first_line, resolve

__all__ = ["load_state_dict"]


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

    path = resolve(name_or_path)
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

