"""``python -m httpx_resilience``: the command line.

Each command is a subparser whose ``run`` default takes the parsed arguments and returns the
exit status; a new command is one more entry in :func:`build_parser`. Each command lives in a
module (or a package) of its own with two entry points: ``add_arguments(parser)`` and
``command(args) -> int``. The library never imports this package: only ``__main__`` does.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from .._version import __version__
from . import check, demo

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

    demo_parser = commands.add_parser(
        "demo",
        help="the same load against a flaky local upstream, through plain httpx and "
        "ResilientClient",
        description=_description(demo.__doc__),
    )
    demo.add_arguments(demo_parser)
    demo_parser.set_defaults(run=demo.command)

    check_parser = commands.add_parser(
        "check",
        help="validate a profiles file and print every profile's effective settings",
        description=_description(check.__doc__),
    )
    check.add_arguments(check_parser)
    check_parser.set_defaults(run=check.command)
    return parser


def _description(doc: str | None) -> str | None:
    """A command's ``--help`` description: the second paragraph of its module's docstring,
    without the reStructuredText double backticks, which a terminal would show as they are."""
    if not doc:
        return None
    return re.sub(r"``(.+?)``", r"\1", doc.split("\n\n")[1])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named in ``argv`` (default: the process's arguments); return its exit
    status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return status
