"""``inrd reproduce figN``: regenerate a figure of the paper with one command."""

from __future__ import annotations

import importlib
import inspect
import json

from ..experiments import FIGURES


def register(sub) -> None:
    p = sub.add_parser("reproduce", help="reproduce a figure of the paper (fig1..fig4) or an experiment (analysis, pnp-table, quality)")
    p.add_argument("figure", choices=sorted(FIGURES))
    p.add_argument("--out", default="figures", help="output folder (default: ./figures)")
    p.add_argument("--weights", help="checkpoint of the paper's network (DiffUNet FFHQ for fig2/fig4, DRUNet for fig3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--progress", action="store_true")
    # figure-specific options: passed only when given, and only to a figure whose run() names them
    p.add_argument("--images", nargs="+", help="fig4, pnp-table: image files (e.g. FFHQ validation faces) or scikit-image names")
    p.add_argument("--drunet-weights", help="fig4: DRUNet checkpoint (else the cache, else FFDNet stands in)")
    p.add_argument("--size", type=int, help="fig2, fig3, fig4, pnp-table: image side in pixels")
    p.add_argument("--iters", type=int, help="fig4, pnp-table: PnP iterations")
    p.add_argument("--pad", type=int, help="fig4, pnp-table: circular padding of the denoiser input (0 = the raw scheme)")
    p.set_defaults(func=run)


_SPECIFIC = ("weights", "images", "drunet_weights", "size", "iters", "pad")


def run(args) -> int:
    module = importlib.import_module(FIGURES[args.figure])
    named = inspect.signature(module.run).parameters
    extra = {k: getattr(args, k) for k in _SPECIFIC if getattr(args, k) is not None}
    for k in extra:
        if k not in named:
            raise ValueError(f"{args.figure} does not take --{k.replace('_', '-')}; see `inrd reproduce --help` for which figure does.")
    result = module.run(args.out, seed=args.seed, device=args.device, progress=args.progress, **extra)
    summary = {k: v for k, v in result.items() if k in ("figure", "denoiser", "stand_in", "png")}
    print(json.dumps(summary))
    png = result.get("png")
    print(f"wrote {png} and its .json" if png else f"wrote {args.out}")
    return 0
