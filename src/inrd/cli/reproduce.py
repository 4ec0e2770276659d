"""``inrd reproduce figN``: regenerate a figure of the paper with one command."""

from __future__ import annotations

import importlib
import json

from ..experiments import FIGURES


def register(sub) -> None:
    p = sub.add_parser("reproduce", help="reproduce a figure of the paper (fig1..fig4)")
    p.add_argument("figure", choices=sorted(FIGURES))
    p.add_argument("--out", default="figures", help="output folder (default: ./figures)")
    p.add_argument("--weights", help="checkpoint of the paper's network (DiffUNet FFHQ for fig2/fig4, DRUNet for fig3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    module = importlib.import_module(FIGURES[args.figure])
    result = module.run(args.out, weights=args.weights, seed=args.seed, device=args.device, progress=args.progress)
    summary = {k: v for k, v in result.items() if k in ("figure", "denoiser", "stand_in", "png")}
    print(json.dumps(summary))
    print(f"wrote {args.out}/{args.figure}.png and {args.out}/{args.figure}.json")
    return 0
