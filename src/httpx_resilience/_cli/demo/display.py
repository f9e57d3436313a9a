"""Where the demo shows its progress and its summary: the tables, and a :class:`Display` in
plain text or, when rich is installed, as a live table."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TextIO

from ..text import plain_table
from .figures import ClientFigures, DemoSummary, Timeline
from .options import PLAIN_NAME, DemoOptions
from .scenarios import SCENARIOS
from .takeaway import format_counts, format_latency, format_rate

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

__all__ = [
    "FIGURE_ROWS",
    "SCENARIO_ROWS",
    "Display",
    "PlainDisplay",
    "RichDisplay",
    "format_timeline",
    "header",
    "make_display",
    "table_rows",
]

_PLAIN_PROGRESS_SECONDS = 1.0


#: The rows of the tables, each a label and how to show one client's figure; the gauges'
#: rows follow.
FIGURE_ROWS: tuple[tuple[str, Callable[[ClientFigures], str]], ...] = (
    ("calls", lambda f: str(f.logical_requests)),
    ("successes", lambda f: str(f.successes)),
    ("success rate", lambda f: format_rate(f.success_rate)),
    ("upstream requests per call", lambda f: f"{f.upstream_per_request:.2f}"),
    ("p50 latency", lambda f: format_latency(f.p50)),
    ("p99 latency", lambda f: format_latency(f.p99)),
    ("failures", lambda f: format_counts(f.failures)),
)


def _after_outage(figures: ClientFigures) -> str:
    if figures.first_success_after is None:
        return "none yet"
    return f"{format_latency(figures.first_success_after)} after it ended"


#: Rows shown only when a scenario makes them mean something: each a label, whether the
#: clients' figures call for it, and how to show one client's figure.
SCENARIO_ROWS: tuple[
    tuple[str, Callable[[ClientFigures], bool], Callable[[ClientFigures], str]], ...
] = (
    (
        "upstream requests answered 429",
        lambda f: f.upstream_429 > 0,
        lambda f: format_rate(f.upstream_429_share),
    ),
    ("first success after the outage", lambda f: f.recovers_at is not None, _after_outage),
)

_TIMELINE_STEPS = 4


def format_timeline(changes: Timeline, end: float) -> str:
    """A gauge's timeline up to ``end`` seconds: ``"ok"``; ``"ok, exhausted at 3.1 s, ok at
    5.9 s"``; or, when it changed more often than that, the share of time in each state:
    ``"ok 62%, exhausted 38% (first at 4.3 s)"``."""
    if not changes:
        return "-"
    if len(changes) <= _TIMELINE_STEPS:
        return ", ".join([changes[0][1]] + [f"{label} at {at:.1f} s" for at, label in changes[1:]])
    spent: dict[str, float] = {}
    first: dict[str, float] = {}
    for (at, label), (until, _) in zip(changes, [*changes[1:], (end, "")], strict=True):
        spent[label] = spent.get(label, 0.0) + until - at
        first.setdefault(label, at)
    total = sum(spent.values()) or 1.0
    return ", ".join(
        f"{label} {spent[label] / total:.0%}" + (f" (first at {at:.1f} s)" if at > 0 else "")
        for label, at in first.items()
    )


def _gauge_names(clients: Sequence[ClientFigures]) -> list[str]:
    names: list[str] = []
    for figures in clients:
        names.extend(name for name in figures.gauges if name not in names)
    return names


def _gauge_cell(figures: ClientFigures, name: str, end: float | None) -> str:
    changes = figures.gauges.get(name, ())
    if end is None:
        return changes[-1][1] if changes else "-"
    return format_timeline(changes, end)


def table_rows(clients: Sequence[ClientFigures], *, end: float | None = None) -> list[list[str]]:
    """The table: a heading row naming the clients, then one row per figure and per gauge,
    clients side by side. Running figures (``end`` not given) show each gauge's current
    state; final ones its timeline up to ``end`` seconds."""
    rows = [["", *(figures.name for figures in clients)]]
    rows.extend([label, *(show(figures) for figures in clients)] for label, show in FIGURE_ROWS)
    rows.extend(
        [label, *(show(figures) for figures in clients)]
        for label, applies, show in SCENARIO_ROWS
        if any(applies(figures) for figures in clients)
    )
    rows.extend(
        [name, *(_gauge_cell(figures, name, end) for figures in clients)]
        for name in _gauge_names(clients)
    )
    return rows


def header(options: DemoOptions) -> str:
    """What is about to run, in two lines."""
    scenario = SCENARIOS[options.scenario]
    length = (
        f"{options.requests} calls per client"
        if options.requests is not None
        else f"{options.duration:g} s"
    )
    return (
        f"httpx-resilience demo: scenario {scenario.name!r}, seed {options.seed}, "
        f"{options.users} virtual users per client, each starting a GET every "
        f"{options.interval * 1000:.0f} ms whether or not its last one has finished (the same "
        f"schedule for both clients), for {length}.\n"
        f"Upstreams (one per client, on 127.0.0.1): {scenario.describe(options)}."
    )


class Display(Protocol):
    """Where the demo shows its progress and its summary."""

    def begin(self, options: DemoOptions) -> None:
        """Show what is about to run."""

    def update(self, elapsed: float, clients: Sequence[ClientFigures]) -> None:
        """Show the running figures (called a few times a second)."""

    def end(self, summary: DemoSummary | None) -> None:
        """Show the summary (``None`` when the run was interrupted) and release the output."""


class PlainDisplay:
    """Progress lines once a second, then a plain-text table."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out
        self._next_progress = _PLAIN_PROGRESS_SECONDS

    def _print(self, text: str = "") -> None:
        # sys.stdout is looked up at each print so that a redirection made later still applies.
        print(text, file=self._out if self._out is not None else sys.stdout, flush=True)

    def begin(self, options: DemoOptions) -> None:
        """Print the header."""
        self._print(header(options))
        self._print()

    def update(self, elapsed: float, clients: Sequence[ClientFigures]) -> None:
        """Print one line per client each second."""
        if elapsed < self._next_progress:
            return
        self._next_progress += _PLAIN_PROGRESS_SECONDS
        for figures in clients:
            states = "".join(
                f"  {name} {changes[-1][1]}" for name, changes in figures.gauges.items() if changes
            )
            self._print(
                f"[{elapsed:5.1f} s] {figures.name:<{len(PLAIN_NAME)}}  "
                f"{figures.logical_requests:6d} calls  {format_rate(figures.success_rate):>6} ok  "
                f"{figures.upstream_per_request:.2f} upstream/call  "
                f"p99 {format_latency(figures.p99)}{states}"
            )

    def end(self, summary: DemoSummary | None) -> None:
        """Print the summary table and the takeaway."""
        if summary is None:
            return
        self._print()
        self._print(f"Summary after {summary.elapsed:.1f} s:")
        self._print(plain_table(table_rows(summary.clients, end=summary.elapsed)))
        self._print()
        self._print(summary.takeaway)
        if summary.lateness_note:
            self._print(summary.lateness_note)


class RichDisplay:
    """A live table refreshed a few times a second, then a summary table."""

    def __init__(self, out: TextIO | None = None) -> None:
        from rich.console import Console

        self._console: Console = Console(file=out) if out is not None else Console()
        self._live: Live | None = None

    def _table(
        self, title: str, clients: Sequence[ClientFigures], *, end: float | None = None
    ) -> RenderableType:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        rows = table_rows(clients, end=end)
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
        table.add_column(rows[0][0], no_wrap=True, style="bold")
        for heading in rows[0][1:]:
            table.add_column(heading, ratio=1)
        for row in rows[1:]:
            # Text, not str: the cells are data, never rich markup.
            table.add_row(*(Text(cell) for cell in row))
        return table

    def begin(self, options: DemoOptions) -> None:
        """Print the header and start the live table."""
        from rich.live import Live

        self._console.print(header(options), highlight=False, markup=False)
        # Refreshed by update() only: the figures change on the event loop's thread, and an
        # automatic refresh would read them from another.
        self._live = Live(console=self._console, auto_refresh=False, transient=True)
        self._live.start()

    def update(self, elapsed: float, clients: Sequence[ClientFigures]) -> None:
        """Redraw the live table."""
        if self._live is not None:
            title = f"{elapsed:.1f} s"
            self._live.update(self._table(title, clients), refresh=True)

    def end(self, summary: DemoSummary | None) -> None:
        """Replace the live table by the summary table and the takeaway."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        if summary is None:
            return
        title = f"Summary after {summary.elapsed:.1f} s"
        self._console.print(self._table(title, summary.clients, end=summary.elapsed))
        self._console.print(summary.takeaway, highlight=False, markup=False)
        if summary.lateness_note:
            self._console.print(summary.lateness_note, highlight=False, markup=False)


def make_display(options: DemoOptions, out: TextIO | None = None) -> Display:
    """A rich display when rich is installed and plain output was not asked for."""
    if not options.plain:
        try:
            return RichDisplay(out)
        except ImportError:
            pass
    return PlainDisplay(out)
