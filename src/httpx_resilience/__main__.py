"""``python -m httpx_resilience``: the command line.

Each command is a subparser whose ``run`` default takes the parsed arguments and returns the
exit status; a new command is one more entry in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import _check, _demo
from ._version import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    parser = argparse.ArgumentParser(
        prog="python -m httpx_resilience",
        description="httpx-resilience command line.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True

    demo = commands.add_parser(
        "demo",
        help="the same load against a flaky local upstream, through plain httpx and "
        "ResilientClient",
        description=_demo.__doc__.split("\n\n")[1] if _demo.__doc__ else None,
    )
    _demo.add_arguments(demo)
    demo.set_defaults(run=_demo.command)

    check = commands.add_parser(
        "check",
        help="validate a profiles file and print every profile's effective settings",
        description=_check.__doc__.split("\n\n")[1] if _check.__doc__ else None,
    )
    _check.add_arguments(check)
    check.set_defaults(run=_check.command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named in ``argv`` (default: the process's arguments); return its exit
    status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
