"""``inrd schedules``: plot the noise schedules (paper Fig. 1) and print T, sigma_1, sigma_T."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("schedules", help="plot noise schedules (log sigma against t) and print their ranges")
    p.add_argument("--out", default="schedules.png", help="PNG file to write (default: schedules.png)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import io
    from ..schedule_plot import plot_schedules, schedule_table

    if Path(args.out).suffix.lower() != ".png":
        raise ValueError(f"--out {args.out!r} must name a .png file.")
    io.check_output(args.out, "file")
    table = schedule_table()
    plot_schedules(table, args.out)
    print(f"{'schedule':40s} {'T':>5s} {'sigma_1':>10s} {'sigma_T':>10s}")
    for name, s in table.items():
        print(f"{name:40s} {s.numel() - 1:5d} {s[1].item():10.6g} {s[-1].item():10.6g}")
    print(f"wrote {args.out}")
    return 0
