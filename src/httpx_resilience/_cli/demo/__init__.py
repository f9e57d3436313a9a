"""``python -m httpx_resilience demo``: the same load through plain httpx and ResilientClient.

Two identical local upstreams (one per client, so their loads never mix) misbehave the way the
chosen scenario says; the same number of virtual users drive each client at the same pace; each
upstream counts the requests it receives. At the end each client gets its figures (calls made,
success rate, upstream requests per call, p50/p99 latency, failures by kind) and a takeaway
computed from them.

Everything that decides an upstream's answers comes from a ``random.Random`` seeded with
``--seed``, so two runs with the same options see the same sequence of faults (timings, and so
the exact figures, still vary a little from run to run).

This module is the command (its arguments, :func:`command`); the package's other modules
follow a run: ``options`` (what to run), ``scenarios`` (how the upstreams misbehave),
``figures`` (what each client's lane counts, its gauges), ``takeaway`` (what the figures say),
``display`` (the tables, plain or live) and ``load`` (the upstreams, the virtual users,
:func:`run_demo`). Each imports only the ones before it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from .display import PlainDisplay, format_timeline, make_display
from .figures import ClientFigures, DemoSummary, Gauge, client_gauges, percentile
from .load import run_demo
from .options import DEFAULT_SEED, PLAIN_NAME, RESILIENT_NAME, DemoOptions
from .scenarios import SCENARIOS
from .takeaway import takeaway

__all__ = [
    "DEFAULT_SEED",
    "PLAIN_NAME",
    "RESILIENT_NAME",
    "SCENARIOS",
    "ClientFigures",
    "DemoOptions",
    "DemoSummary",
    "Gauge",
    "PlainDisplay",
    "add_arguments",
    "client_gauges",
    "command",
    "format_timeline",
    "make_display",
    "percentile",
    "run_demo",
    "takeaway",
]

N = TypeVar("N", int, float)


def _positive(kind: Callable[[str], N]) -> Callable[[str], N]:
    # argparse names the type in its error message, so the wrapper keeps the type's name.
    def parse(text: str) -> N:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` command's options to ``parser``."""
    parser.add_argument(
        "--scenario",
        choices=sorted(SCENARIOS),
        default="flaky",
        help="how the upstreams misbehave (default: flaky)",
    )
    parser.add_argument(
        "--duration",
        type=_positive(float),
        default=DemoOptions.duration,
        help="seconds of load (default: %(default)g)",
    )
    parser.add_argument(
        "--users",
        type=_positive(int),
        default=DemoOptions.users,
        help="concurrent virtual users per client (default: %(default)d)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DemoOptions.seed,
        help="seed of the upstreams' faults (default: %(default)d)",
    )
    parser.add_argument(
        "--requests",
        type=_positive(int),
        default=None,
        help="calls per client, instead of running for --duration (the scenario's timeline "
        "still follows --duration)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="plain-text output even when rich is installed",
    )
    parser.add_argument(
        "--httpx2",
        action="store_true",
        help="run both clients on httpx2 (the httpx2 extra) instead of httpx",
    )


def command(args: argparse.Namespace) -> int:
    """Run the ``demo`` command; return the exit status."""
    run_demo(DemoOptions.from_args(args))
    return 0
