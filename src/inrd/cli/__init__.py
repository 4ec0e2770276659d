"""The ``inrd`` command. Each subcommand is a module of this package defining
``register(subparsers)``, which adds its parser and sets ``func`` to a function ``run(args) -> int``.
Modules only parse and print: the work lives in the library.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from .. import __version__


class CliError(Exception):
    """An error to print as one line, without a traceback."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2), pointing to ``--help``
    instead of printing the whole usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_progress_flag(p: argparse.ArgumentParser) -> None:
    """The progress flag of every command: ``--progress`` / ``--no-progress``, shown by default."""
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar (default: shown)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="inrd", description="Diffusion sampling as iterative noising / relaxed denoising, and PnP restoration."
    )
    parser.add_argument("--version", action="version", version=f"inrd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def _printable_streams() -> None:
    """Paths that are not valid UTF-8 (surrogate-escaped by Python) are printed escaped, not a crash at the end."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):  # a replaced stream (pytest's capture): it copes itself
            pass


def main(argv=None) -> int:
    _printable_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (CliError, ValueError, TypeError, OSError) as e:
        text = " ".join(str(e).split()) if not isinstance(e, OSError) or not e.strerror else f"{e.strerror}: {e.filename or ''}".strip(": ")
        print(f"inrd {args.command}: error: {text}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"inrd {args.command}: error: out of memory; lower the batch or image size.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
