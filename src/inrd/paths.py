"""Output paths: checked before any work, written atomically, and write failures told in one line.

Every command that writes calls :func:`check_output` on its output path while it parses its options,
before any model is loaded or any image computed: a path that cannot be a folder (a file on the way, a
symbolic-link loop, a dangling link, a name longer than the file system takes) or that is not writable
is refused then, in one line. Every file is then written through :func:`atomic_path` (a temporary name in
the destination folder, moved into place with ``os.replace``), so an interrupted run never leaves a
half-written file, and a failure at write time (disk full, read-only file system, quota) is one line
(:class:`OutputError`) that says what was kept. This module imports nothing from inrd.
"""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Optional

__all__ = ["OutputError", "check_output", "ensure_writable_dir", "atomic_path"]

#: what the write errors mean for the user, by errno
_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.ENAMETOOLONG: "the file name is too long for the file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "an input/output error of the device",
    errno.ENOENT: "its folder was removed while the run was writing",
    errno.ENOTDIR: "a part of the path is not a folder",
}


class OutputError(ValueError):
    """An output could not be written; the message says why and what was kept."""


def _name(path) -> str:
    return os.fsdecode(path) if str(path) else "''"


def _limits(folder: Path) -> tuple[int, int]:
    """(longest file name, longest path) the file system of ``folder`` takes."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # not POSIX: the common limits
        return 255, 4096


def check_output(path, kind: Literal["folder", "file"] = "folder", option: str = "--out") -> Path:
    """Check, without writing anything, that ``path`` can be created (or exists) as a ``kind`` and that the
    run can write there; returns it as a ``Path``. One-line ``ValueError`` naming ``option`` otherwise.

    Refused: an empty path; an existing path of the other kind; an existing file on the way (``afile/sub``);
    a symbolic-link loop or a dangling link (the final rename would fail after all the work); a name or path
    longer than the file system takes; a nearest existing folder that is not writable (permissions, a
    read-only file system). What this cannot see (a disk that fills up during the run) is an
    :class:`OutputError` at write time."""
    if path is None or str(path) == "":
        raise ValueError(f"{option} is empty; give a {kind} name.")
    p = Path(path)
    shown = _name(p)
    try:
        os.stat(p)
        exists = True
    except FileNotFoundError:
        exists = False
        if p.is_symlink():
            raise ValueError(f"{option} {shown} is a symbolic link to {os.readlink(p)!s}, which does not exist; "
                             f"create its target or choose another {option}.") from None
    except NotADirectoryError:
        blocking = _blocking_file(p) or "a part of it"
        raise ValueError(f"cannot write to {shown}: {blocking} is not a writable folder (it is a file); choose another {option}.") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError(f"{option} {shown} is (or passes through) a symbolic-link loop; choose another {option}.") from None
        if e.errno == errno.ENAMETOOLONG:
            _check_lengths(p, Path("/"), option)
            raise ValueError(f"{option} {shown[:60]}... is longer than the file system takes; choose a shorter {option}.") from None
        raise ValueError(f"{option} {shown}: {e.strerror}; choose another {option}.") from None
    if exists:
        if kind == "folder" and not p.is_dir():
            raise ValueError(f"{option} {shown} exists and is not a folder; choose another {option}.")
        if kind == "file" and p.is_dir():
            raise ValueError(f"{option} {shown} is a folder; give a file name.")
    folder = p if (exists and kind == "folder") else p.parent
    existing = next((a for a in (folder.absolute(), *folder.absolute().parents) if a.exists()), Path("/"))
    if not existing.is_dir():
        raise ValueError(f"cannot write to {shown}: {_name(existing)} is not a writable folder (it is a file); choose another {option}.")
    _check_lengths(p, existing, option)
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "the file system is read-only" if _read_only(existing) else "permission denied"
        raise ValueError(f"cannot write to {_name(existing)} ({reason}); choose a writable {option}.")
    return p


def _check_lengths(p: Path, existing: Path, option: str) -> None:
    """Refuse a name or a path longer than the file system of ``existing`` takes."""
    name_max, path_max = _limits(existing)
    too_long = next((part for part in p.absolute().parts if len(os.fsencode(part)) > name_max), None)
    if too_long is not None:
        raise ValueError(f"{option}: the name {too_long[:40]}... has {len(os.fsencode(too_long))} bytes, more than the "
                         f"{name_max} the file system takes; choose a shorter {option}.")
    if len(os.fsencode(str(p.absolute()))) + 64 > path_max:  # room for the files written inside
        raise ValueError(f"{option} {_name(p)[:60]}... is longer than the {path_max} bytes a path may have; choose a shorter {option}.")


def _blocking_file(p: Path) -> Optional[str]:
    """The first existing non-folder on the way to ``p``."""
    for a in reversed(p.absolute().parents):
        if a.exists() and not a.is_dir():
            return _name(a)
    return None


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def ensure_writable_dir(path, create: bool = True) -> Path:
    """Check the folder ``path`` (:func:`check_output`) and create it if needed.

    With ``create=False`` a missing folder is not made (the first :func:`atomic_path` write makes it,
    so a run that fails before writing leaves no empty folder)."""
    p = check_output(path, "folder")
    if not create or p.is_dir():
        return p
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create {_name(p)}: {_REASONS.get(e.errno, e.strerror)}; choose a writable --out.") from None
    return p


def _write_failure(path: Path, e: OSError) -> OutputError:
    reason = _REASONS.get(e.errno, e.strerror or type(e).__name__)
    folder = path.parent if str(path.parent) else Path(".")
    return OutputError(f"cannot write {_name(path)}: {reason}; it was not written (no partial file is left), "
                       f"and the files written before it are kept in {_name(folder)}.")


@contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success move it onto ``path``, else delete it.

    Creates the parent folder if needed; an unwritable destination, or a write that fails (disk full,
    read-only file system), is a one-line :class:`OutputError` (a ``ValueError``)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"output folder {_name(parent)} exists and is not a folder; choose another --out.")
    blocking = None if parent.exists() else _blocking_file(parent)
    if blocking is not None:
        raise ValueError(f"cannot write to {_name(parent)}: {blocking} is a file, not a folder; choose another --out.")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name[:200]}.", suffix=path.suffix or ".tmp")
    except OSError as e:
        raise _write_failure(path, e) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give outputs the usual permissions
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        if e.errno is None:  # not a file-system failure (e.g. PIL refusing an image mode): as it is
            raise
        raise _write_failure(path, e) from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
