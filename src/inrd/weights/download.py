"""Explicit downloads into the cache (``inrd weights fetch NAME``): the only network code in inrd.

The file streams into a temporary file in the cache folder; its byte count is checked against
``Content-Length``, its sha256 against the registry (or the hash recorded at first use), and only
then is it renamed onto its final name (``os.replace``, atomic on one file system).
``torch.hub.download_url_to_file`` does the same rename but has no timeout (a stalled connection
hangs forever) and no byte count check, and reports errors as several exception types; hence this
small loop.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Optional

from .registry import _CHUNK, _VERIFIED, _check, _entry, _fetch_hint, _first_line, _record, expected_sha256, location

__all__ = ["fetch"]


def fetch(
    name: str,
    url: Optional[str] = None,
    progress: bool = False,
    timeout: float = 60.0,
    opener: Optional[Callable] = None,
) -> Path:
    """Download checkpoint ``name`` into the cache (only when explicitly called) and return its path.

    The file is streamed into a temporary file in the cache folder, its byte count is checked against
    ``Content-Length`` and its sha256 against the known one, then it is renamed onto the final name.
    On any failure (network error, early close, wrong hash, Ctrl-C) the temporary file is deleted and
    nothing is left in the cache. A file already present and valid is not downloaded again; a present
    but invalid one is replaced. ``url`` overrides the registry URL (a mirror: it must serve the same
    bytes). When no hash is known, the downloaded file's hash is recorded as ``<file>.sha256`` and
    later downloads must match it (delete that record to accept a new upstream version).
    ``opener(request, timeout)`` replaces ``urllib.request.urlopen`` (tests, custom transports).
    """
    c = _entry(name)
    if c.kind != "download":
        where = location(c.name)
        raise ValueError(
            f"checkpoint {c.name!r} is bundled, not downloaded ({'at ' + str(where) if where else _fetch_hint(c, None)}); nothing to fetch."
        )
    url = url or c.url
    target = location(c.name)
    if _valid(c, target):
        return target
    expected = expected_sha256(c.name, target)  # registry hash, or the hash recorded at first use
    fd, tmp = _temporary(c, target.parent)
    try:
        digest, received, length = _stream(c, url, fd, timeout, opener, progress)
        _check_download(c, url, target, received, length, digest, expected)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if expected is None:
        _record(target, digest)
    st = target.stat()
    _VERIFIED[(str(target), st.st_size, st.st_mtime_ns)] = digest
    return target


def _valid(c, target: Path) -> bool:
    """Whether the cache already holds a valid copy (a bad one is downloaded again over)."""
    if not target.is_file():
        return False
    try:
        _check(c, target)
        return True
    except ValueError:
        return False


def _temporary(c, folder: Path) -> tuple[int, str]:
    """An open temporary file in the cache folder (descriptor, path)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(dir=folder, prefix=f".{c.filename}.", suffix=".part")
    except OSError as e:
        raise ValueError(f"cannot write into the cache folder {folder}: {e.strerror}; set INRD_CACHE to a writable folder.") from None


def _stream(c, url: str, fd: int, timeout: float, opener: Optional[Callable], progress: bool) -> tuple[str, int, Optional[int]]:
    """Copy the response of ``url`` into the file ``fd`` (closed on return); ``(sha256, bytes received,
    Content-Length or None)``. Every failure is one ``ValueError`` saying what to do."""
    import urllib.error
    import urllib.request

    h = hashlib.sha256()
    received = 0
    out = os.fdopen(fd, "wb")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "inrd"})
        with (opener or urllib.request.urlopen)(request, timeout=timeout) as resp, out:
            length = resp.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            bar = _progress(progress, length or c.size, c.filename)
            for block in iter(lambda: resp.read(_CHUNK), b""):
                out.write(block)
                h.update(block)
                received += len(block)
                bar.update(len(block))
            bar.close()
    except urllib.error.HTTPError as e:
        raise ValueError(f"download of {c.name!r} failed: HTTP {e.code} {e.reason} from {url}; check the URL or pass --url.") from None
    except urllib.error.URLError as e:
        raise ValueError(
            f"download of {c.name!r} failed: cannot reach {url} ({e.reason}); on an offline machine download it "
            f"elsewhere and copy it to {location(c.name)}."
        ) from None
    except Exception as e:  # socket errors, timeouts, http.client.IncompleteRead, a malformed URL...
        raise ValueError(
            f"download of {c.name!r} from {url} failed after {received} bytes ({_first_line(e)}); nothing was "
            f"saved: run the fetch again."
        ) from None
    finally:
        out.close()
    return h.hexdigest(), received, length


def _check_download(c, url: str, target: Path, received: int, length: Optional[int], digest: str, expected: Optional[str]) -> None:
    """Refuse a download cut short, of the wrong size or with the wrong sha256 (nothing is kept then)."""
    if length is not None and received != length:
        raise ValueError(f"download of {c.name!r} was interrupted: received {received} of {length} bytes; run the fetch again.")
    if c.size is not None and received != c.size:
        raise ValueError(
            f"download of {c.name!r} from {url} has {received} bytes, expected {c.size}: not the expected file; "
            f"nothing was saved."
        )
    if expected is not None and digest != expected:
        raise ValueError(
            f"download of {c.name!r} from {url} has sha256 {digest}, expected {expected}: corrupted or not the "
            f"expected file; nothing was saved."
        )


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(enabled: bool, total: Optional[int], desc: str):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)

