"""Run folders: one folder holds the outputs of one run.

A run that writes many files into one folder claims it with :func:`start_run`: a manifest
(``run.json``, the parameters that determine the outputs) says whose files the folder holds, and a
lock keeps a second run from writing into it at the same time, so that two runs never mix their files.
Single files are written atomically by :mod:`inrd.io`.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Optional

from .io import ensure_writable_dir, strict_json, versions, write_json

__all__ = ["start_run", "MANIFEST"]

MANIFEST = "run.json"


def _normalised(params: Mapping) -> dict:
    """``params`` as they read back from JSON (tensors to lists, paths to strings), for comparison."""
    return json.loads(json.dumps(strict_json(dict(params)), allow_nan=False))


def _flat(d: Mapping, prefix: str = "") -> dict:
    """Nested dicts as one level with dotted keys (``config.seed``), so differences name the leaf."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _differences(old: Mapping, new: Mapping, limit: int = 3) -> str:
    old, new = _flat(old), _flat(new)
    # shallow keys first, and among them single values before lists: "steps: 6 there, 5 now" says more than a sigma table
    order = lambda k: (k.count("."), isinstance(old.get(k, new.get(k)), list), k)  # noqa: E731
    keys = [k for k in sorted(set(old) | set(new), key=order) if old.get(k) != new.get(k)]
    shown = [f"{k}: {_short(old.get(k))} there, {_short(new.get(k))} now" for k in keys[:limit]]
    return "; ".join(shown) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _short(v) -> str:
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _lock(folder: Path):
    """An exclusive, non-blocking lock on ``folder`` held until released (or the process dies);
    returns a release function, or raises ``ValueError`` when another process holds it."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): an O_EXCL lock file, which a kill leaves behind
        lock = folder / ".inrd-run.lock"
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            raise ValueError(f"another run is writing into {folder} ({lock} exists; delete it if no run is going on).") from None
        return lambda: lock.unlink(missing_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ValueError(f"another run is writing into {folder} now; wait for it to end or choose another --out.") from None
    except OSError:  # a file system without locks (some network mounts): the manifest check still applies
        os.close(fd)
        return lambda: None
    return lambda: os.close(fd)  # closing the descriptor releases the lock


def _remove_stale_temporaries(folder: Path) -> None:
    """Temporary files of :func:`inrd.paths.atomic_path` left by a killed run (``.NAME.XXXXXXXX.EXT``): this
    run holds the folder's lock, so no other process is writing them."""
    for p in folder.iterdir():
        if p.name.startswith(".") and p.name.count(".") >= 3 and p.is_file() and p.name != ".inrd-run.lock":
            p.unlink(missing_ok=True)


@contextmanager
def start_run(out_dir, params: Mapping, *, resume: bool = False, resume_flag: Optional[str] = None) -> Iterator[Path]:
    """Claim the folder ``out_dir`` for one run whose outputs are determined by ``params``; yields it.

    ``with runs.start_run(args.out, params, resume=args.skip_existing) as out: ...``

    * The folder is created if needed and locked for the duration of the ``with`` block (``flock``,
      released by the kernel even when the process is killed): a second run on the same folder at the
      same time fails at once instead of interleaving its files.
    * A new folder (or an empty one) gets the manifest ``run.json`` (``{"params": params}``, written
      atomically). A folder holding a manifest belongs to that run: with ``resume=True`` and the same
      ``params`` (as they read back from JSON) the run continues there, otherwise it is refused with a
      one-line ``ValueError`` naming the first differences (``resume_flag`` names the option that resumes,
      for commands that have one). A folder with files but no manifest is refused too: its files would be
      mixed with the new ones.
    * On an exception inside the block a manifest written by this call is removed, and the folder too
      when this call created it and nothing else was written (no empty folders from failed runs).

    ``params`` should hold exactly what determines the outputs (denoiser, weights, sigmas, rho, seed,
    shape, dtype, ...), not timings or counts that a resumed run may change.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {out} exists and is not a folder; choose another --out.")
    created = not out.exists()
    ensure_writable_dir(out)
    release = _lock(out)
    wrote_manifest = False
    try:
        wanted = _normalised(params)
        manifest = out / MANIFEST
        if manifest.is_file():
            try:
                held = json.loads(manifest.read_text()).get("params")
            except (OSError, ValueError, AttributeError):
                raise ValueError(f"{manifest} is unreadable; delete the folder {out} or choose another --out.") from None
            if held != wanted:
                raise ValueError(
                    f"{out} holds another run's files ({_differences(held if isinstance(held, dict) else {}, wanted)}); "
                    f"choose another --out or delete it."
                )
            _remove_stale_temporaries(out)
            if not resume:
                how = f", or resume it with {resume_flag}" if resume_flag else ""
                raise ValueError(f"{out} already holds the outputs of this run; choose another --out or delete it{how}.")
        else:
            if any(not p.name.startswith(".") for p in out.iterdir()):
                raise ValueError(f"{out} is not empty and holds no {MANIFEST} of a run; choose a new or empty --out.")
            write_json(manifest, {"params": wanted, "versions": versions()})
            wrote_manifest = True
        yield out
    except BaseException:
        if wrote_manifest and all(p.name == MANIFEST for p in out.iterdir()):  # nothing else written: no run
            (out / MANIFEST).unlink(missing_ok=True)
        if created and not any(out.iterdir()):
            release()
            release = lambda: None  # noqa: E731
            out.rmdir()
        raise
    finally:
        release()
