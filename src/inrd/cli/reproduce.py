"""``inrd reproduce NAME``: regenerate a figure of the paper (or one of our experiments) with one command.

Every experiment module has ``run(out_dir, ...)`` whose keyword arguments are exactly the options it
uses, with its own defaults. This command passes only the options the user gave, and only to an
experiment whose ``run`` names them; any other given option is a one-line error (never silently
ignored, e.g. ``--device cuda`` for an experiment that runs on the CPU only).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json

from ..experiments import FIGURES

# dest -> help; every option defaults to None = "not given": the experiment's own default applies
_OPTIONS = {
    "weights": "checkpoint of the paper's network (DiffUNet FFHQ for fig2/fig4, DRUNet for fig3, inrd-small for quality)",
    "seed": "random seed (default: the experiment's, 0)",
    "device": "torch device, e.g. cpu or cuda (experiments that run on the CPU only refuse it)",
    "images": "fig4, pnp-table: image files (e.g. FFHQ validation faces) or scikit-image names",
    "drunet_weights": "fig4: DRUNet checkpoint (else the cache, else FFDNet stands in)",
    "size": "image side in pixels (fig2, fig3, fig4, pnp-table)",
    "iters": "fig4, pnp-table: PnP iterations",
    "pad": "fig4, pnp-table: circular padding of the denoiser input (0 = the raw scheme)",
    "progress": "show (or, with --no-progress, hide) progress bars",
}


def register(sub) -> None:
    experiments = ", ".join(k for k in FIGURES if not k.startswith("fig"))
    p = sub.add_parser("reproduce", help=f"reproduce a figure of the paper (fig1..fig4) or an experiment ({experiments})")
    p.add_argument("figure", type=str.lower, choices=sorted(FIGURES))
    p.add_argument("--out", default="figures", help="output folder (default: ./figures)")
    p.add_argument("--weights", help=_OPTIONS["weights"])
    p.add_argument("--seed", type=int, help=_OPTIONS["seed"])
    p.add_argument("--device", help=_OPTIONS["device"])
    p.add_argument("--images", nargs="+", help=_OPTIONS["images"])
    p.add_argument("--drunet-weights", help=_OPTIONS["drunet_weights"])
    p.add_argument("--size", type=int, help=_OPTIONS["size"])
    p.add_argument("--iters", type=int, help=_OPTIONS["iters"])
    p.add_argument("--pad", type=int, help=_OPTIONS["pad"])
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help=_OPTIONS["progress"])
    p.set_defaults(func=run)


def accepted_options(run_function) -> set[str]:
    """Options a ``run`` function names explicitly (a ``**kwargs`` catch-all accepts nothing)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {name for name, p in inspect.signature(run_function).parameters.items() if p.kind in kinds}


def given_options(args, figure: str, accepted: set[str]) -> dict:
    """The options the user gave, checked against what ``figure`` takes (one-line ValueError otherwise)."""
    given = {k: getattr(args, k) for k in _OPTIONS if getattr(args, k, None) is not None}
    refused = [k for k in given if k not in accepted]
    if refused:
        flags = ", ".join("--" + k.replace("_", "-") for k in refused)
        takes = ", ".join("--" + k.replace("_", "-") for k in _OPTIONS if k in accepted) or "only --out"
        raise ValueError(f"{figure} does not take {flags}; it takes {takes}.")
    return given


def run(args) -> int:
    module = importlib.import_module(FIGURES[args.figure])
    options = given_options(args, args.figure, accepted_options(module.run))
    result = module.run(args.out, **options)
    summary = {k: v for k, v in result.items() if k in ("figure", "denoiser", "stand_in", "summary")}
    if summary:
        print(json.dumps(summary))
    png = result.get("png")
    print(f"wrote {png} and its .json" if png else f"wrote {args.out}")
    return 0
