"""``inrd analyze``: compare noise schedules and relaxations in closed form on Gaussian data.

Prints the exact W2 distance between the law of INRD's output (exact MMSE denoiser) and the data law
for every schedule, relaxation and number of steps, then the best n-level subgrid of the DDPM grid
against uniform pruning. The work lives in :mod:`inrd.gaussian.analysis`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..gaussian import analysis


def _ints(text: str) -> list[int]:
    if text.strip().lower() in ("", "none"):
        return []
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, e.g. 10,20,50; got {text!r}.") from None


def _names(text: str) -> list[str]:
    """Comma-separated names (schedule spellings are normalised by the analysis itself)."""
    return [t.strip().lower() for t in text.split(",") if t.strip()]


def register(sub) -> None:
    p = sub.add_parser(
        "analyze",
        help="closed-form W2 of schedules/relaxations on Gaussian data, and the best subgrid of DDPM",
        description="Exact W2 distance between the law of INRD's output (exact MMSE denoiser of a Gaussian law) and "
        "the data law, for every schedule, relaxation and number of steps; then the best n-level subgrid of the "
        "DDPM grid against uniform pruning. Relative W2 = W2 / sqrt(trace C): 0 = exact, 1 = outputs the mean.",
    )
    p.add_argument("--spectrum", default="power-law", type=str.lower, choices=["power-law", "patches"],
                   help="data covariance: stationary 1/f^alpha field, or the covariance of photograph patches")
    p.add_argument("--alpha", type=float, default=2.0, help="power-law exponent of the spectrum (default 2)")
    p.add_argument("--size", type=int, default=64, help="power-law field size, pixels per side (default 64)")
    p.add_argument("--std", type=float, default=0.25, help="power-law per-pixel std in [0, 1] units (default 0.25)")
    p.add_argument("--patch", type=int, default=8, help="patch side for --spectrum patches (default 8)")
    p.add_argument("--stride", type=int, default=4, help="patch stride (default 4)")
    p.add_argument("--images", default="camera,astronaut,coffee,chelsea", help="scikit-image photographs for patches")
    p.add_argument("--steps", default=",".join(map(str, analysis.STEPS)), help="numbers of steps (default %(default)s)")
    p.add_argument("--schedules", default=",".join(analysis.SCHEDULES), help="schedules (default %(default)s)")
    p.add_argument("--rho", "--relaxations", dest="rho", default=",".join(analysis.RHOS),
                   help="relaxations rho, comma-separated (default %(default)s)")
    p.add_argument("--search-steps", default=",".join(map(str, analysis.SEARCH_STEPS)),
                   help="n for the best-subgrid search, 'none' to skip (default %(default)s)")
    p.add_argument("--search-rho", "--search-relaxations", dest="search_rho", default=None,
                   help="relaxations rho for the search (default: --rho)")
    p.add_argument("--search-schedule", default="ddpm", help="fine grid whose subgrids are searched (default ddpm: 1000 levels)")
    p.add_argument("--out", help="write the plot to this .png file")
    p.add_argument("--json", help="write every number to this .json file ('-' prints it instead of the table)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.out is not None and Path(args.out).suffix.lower() != ".png":
        raise ValueError(f"--out {args.out!r} must name a .png file.")
    if args.json not in (None, "-") and Path(args.json).suffix.lower() != ".json":
        raise ValueError(f"--json {args.json!r} must name a .json file (or '-' for standard output).")
    from .. import io

    for option, path in (("--out", args.out), ("--json", None if args.json == "-" else args.json)):
        if path is not None:
            io.check_output(path, "file", option)
    steps = _ints(args.steps)
    if not steps:
        raise ValueError("--steps needs at least one number of steps, e.g. 10,20,50.")
    spectrum = analysis.make_spectrum(
        args.spectrum, size=args.size, alpha=args.alpha, std=args.std, patch=args.patch, stride=args.stride,
        images=_names(args.images),
    )
    rhos = _names(args.rho)
    result = analysis.compute(
        spectrum, steps=steps, schedules=_names(args.schedules), rhos=rhos,
        search_steps=_ints(args.search_steps),
        search_rhos=rhos if args.search_rho is None else _names(args.search_rho),
        search_schedule=args.search_schedule.strip(),
    )
    if args.out:
        analysis.plot(result, args.out)
    if args.json == "-":
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(analysis.format_report(result))
    if args.json:
        io.write_json(args.json, {**result, "versions": io.versions()})
        print(f"wrote {args.json}")
    if args.out:
        print(f"wrote {args.out}")
    return 0
