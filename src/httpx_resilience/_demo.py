"""``python -m httpx_resilience demo``: the same load through plain httpx and ResilientClient.

Two identical local upstreams (one per client, so their loads never mix) misbehave the way the
chosen scenario says; the same number of virtual users drive each client at the same pace; each
upstream counts the requests it receives. At the end each client gets its figures (calls made,
success rate, upstream requests per call, p50/p99 latency, failures by kind) and a takeaway
computed from them.

Everything that decides an upstream's answers comes from a ``random.Random`` seeded with
``--seed``, so two runs with the same options see the same sequence of faults (timings, and so
the exact figures, still vary a little from run to run).

The figures of a client are a :class:`ClientFigures`; the state a client's pipeline carries over
time (its retry budget, its circuit breaker) is a :class:`Gauge`, sampled a few times a second
and reported as the moments it changed. A new gauge is one more factory in
:func:`client_gauges`; the tables show every gauge without change.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TextIO, TypeVar

import anyio
import httpx

from ._loopback import LoopbackServer, ReceivedRequest, Reply
from ._text import plain_table
from .context import ExecutionReport
from .errors import BrokenCircuitError, BulkheadRejected, IsolatedCircuitError, RateLimitRejected
from .http.client import ResilientClient
from .policies.circuit_breaker import CircuitBreaker
from .policies.retry import Retry

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

__all__ = [
    "SCENARIOS",
    "ClientFigures",
    "DemoOptions",
    "DemoSummary",
    "Gauge",
    "add_arguments",
    "client_gauges",
    "command",
    "run_demo",
    "takeaway",
]

N = TypeVar("N", int, float)

DEFAULT_SEED = 7
PLAIN_NAME = "httpx.AsyncClient"
RESILIENT_NAME = "ResilientClient"

# A body long enough that a reset after its first part is a reset in the middle of it.
_BODY = b'{"status": "ok", "padding": "' + b"x" * 2000 + b'"}'
_RESET_AFTER = 512
_REFRESH_SECONDS = 0.25
_PLAIN_PROGRESS_SECONDS = 1.0


# -- options -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoOptions:
    """What to run.

    Attributes:
        scenario: A key of :data:`SCENARIOS`.
        duration: Seconds of load (and the length of the scenario's timeline).
        users: Concurrent virtual users per client.
        seed: Seed of the upstreams' randomness.
        requests: Calls per client; when set, each client stops after that many instead of
            after ``duration``.
        interval: Seconds between the starts of one user's calls (a user whose call took
            longer starts the next one at once).
        plain: Plain-text output even when rich is installed.
    """

    scenario: str = "flaky"
    duration: float = 8.0
    users: int = 20
    seed: int = DEFAULT_SEED
    requests: int | None = None
    interval: float = 0.1
    plain: bool = False

    @property
    def offered_rate(self) -> float:
        """Calls per second each client is asked to make when every call is fast."""
        return self.users / self.interval

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DemoOptions:
        """The options of a parsed ``demo`` command line."""
        return cls(
            scenario=args.scenario,
            duration=args.duration,
            users=args.users,
            seed=args.seed,
            requests=args.requests,
            plain=args.plain,
        )


# -- scenarios -----------------------------------------------------------------------------------

#: How an upstream answers a request that arrives ``elapsed`` seconds after the load began.
Fate = Callable[[float], Reply]


@dataclass(frozen=True)
class Scenario:
    """One way for the upstreams to misbehave.

    Attributes:
        name: The ``--scenario`` value.
        describe: What the upstream does, for the header of the output.
        make_fate: A new upstream's answering function, drawing from the given random source.
        note: What the standard pipeline can and cannot do about it, ending the takeaway.
    """

    name: str
    describe: Callable[[DemoOptions], str]
    make_fate: Callable[[random.Random, DemoOptions], Fate]
    note: str


def _jitter(rng: random.Random) -> float:
    return rng.uniform(0.001, 0.006)


def _ok(rng: random.Random) -> Reply:
    return Reply(200, body=_BODY, delay=_jitter(rng))


_FLAKY_UNAVAILABLE = 0.03
_FLAKY_RESETS = 0.01


def _flaky_fate(rng: random.Random, options: DemoOptions) -> Fate:
    def fate(elapsed: float) -> Reply:
        # A few percent of tries fail, as a dependency having a bad day does: enough to hurt
        # every caller of plain httpx, below the 10% at which the standard breaker opens.
        roll = rng.random()
        if roll < _FLAKY_RESETS:
            return Reply(200, body=_BODY, delay=_jitter(rng), reset_after=_RESET_AFTER)
        if roll < _FLAKY_RESETS + _FLAKY_UNAVAILABLE:
            # One 503 in five asks for a pause, as an overloaded server behind a proxy does.
            headers = [("retry-after", "1")] if rng.random() < 0.2 else []
            return Reply(503, headers=headers, body=b"unavailable", delay=_jitter(rng))
        return _ok(rng)

    return fate


def _outage_window(options: DemoOptions) -> tuple[float, float]:
    return 0.3 * options.duration, 0.7 * options.duration


def _outage_fate(rng: random.Random, options: DemoOptions) -> Fate:
    begins, ends = _outage_window(options)

    def fate(elapsed: float) -> Reply:
        if begins <= elapsed < ends:
            return Reply(503, body=b"unavailable", delay=_jitter(rng))
        return _ok(rng)

    return fate


_SLOW_SHARE = 0.10
_SLOW_DELAY = 1.5


def _slow_fate(rng: random.Random, options: DemoOptions) -> Fate:
    def fate(elapsed: float) -> Reply:
        if rng.random() < _SLOW_SHARE:
            return Reply(200, body=_BODY, delay=_SLOW_DELAY)
        return _ok(rng)

    return fate


def _rate_limit(options: DemoOptions) -> int:
    # Below the offered load, so that a client sending as asked is over the limit.
    return max(1, round(0.6 * options.offered_rate))


def _rate_limited_fate(rng: random.Random, options: DemoOptions) -> Fate:
    limit = _rate_limit(options)
    window, used = -1, 0

    def fate(elapsed: float) -> Reply:
        # Fixed one-second windows, the commonest API limit; calls run on the server's single
        # thread, so this state needs no lock.
        nonlocal window, used
        if int(elapsed) != window:
            window, used = int(elapsed), 0
        used += 1
        if used > limit:
            return Reply(429, headers=[("retry-after", "1")], body=b"slow down")
        return _ok(rng)

    return fate


def _describe_outage(options: DemoOptions) -> str:
    begins, ends = _outage_window(options)
    return (
        f"healthy, then every request answered 503 from {begins:.1f} s to {ends:.1f} s, "
        "then healthy again"
    )


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "flaky",
            lambda options: (
                f"~{_FLAKY_UNAVAILABLE:.0%} of requests answered 503 (one in five with "
                f"Retry-After: 1), ~{_FLAKY_RESETS:.0%} reset mid-body, 1-6 ms latency"
            ),
            _flaky_fate,
            "",
        ),
        Scenario(
            "outage",
            _describe_outage,
            _outage_fate,
            "In a total outage no retry can succeed until it ends (the calls saved straddled its "
            "edges); what counts is how little extra load the client puts on the dead upstream, "
            "where three attempts per call would triple it.",
        ),
        Scenario(
            "slow",
            lambda options: (
                f"~{_SLOW_SHARE:.0%} of requests take {_SLOW_DELAY:g} s, the rest 1-6 ms"
            ),
            _slow_fate,
            "Retries act on failures, and a slow answer is not one: the standard pipeline's "
            "10 s attempt timeout never fires, so the slow tail stays as slow as with plain "
            "httpx. Hedging (a parallel attempt after a delay) is the policy for this; it is "
            "not in the standard pipeline yet.",
        ),
        Scenario(
            "rate-limited",
            lambda options: (
                f"allows {_rate_limit(options)} requests/s (fixed one-second windows), "
                "answers 429 with Retry-After: 1 beyond"
            ),
            _rate_limited_fate,
            "Honouring Retry-After slows the caller down to what the server accepts: calls "
            "succeed later instead of failing now.",
        ),
    )
}


# -- figures -------------------------------------------------------------------------------------


@dataclass
class Gauge:
    """A state of one client, sampled while the load runs and kept as the moments it changed.

    The retry budget (``"ok"`` / ``"exhausted"``) is one, a circuit breaker's state another.
    Each gauge becomes a row of the tables, labelled ``name``.

    Attributes:
        name: The row label.
        read: Returns the current state as a short label.
        changes: ``(seconds since the load began, label)`` for the first sample and each change.
    """

    name: str
    read: Callable[[], str]
    changes: list[tuple[float, str]] = field(default_factory=list)

    def sample(self, elapsed: float) -> None:
        """Read the state and keep it if it differs from the last one kept."""
        label = self.read()
        if not self.changes or self.changes[-1][1] != label:
            self.changes.append((elapsed, label))


Timeline = tuple[tuple[float, str], ...]


@dataclass(frozen=True)
class ClientFigures:
    """One client's figures, running or final.

    Attributes:
        name: Which client.
        logical_requests: Calls that finished (each ``client.get`` is one, whatever it took).
        successes: Calls answered 2xx.
        upstream_requests: Requests the client's upstream received.
        p50: Median latency of the calls, in seconds (``None`` before the first call ends).
        p99: 99th percentile latency of the calls, in seconds.
        failures: Failed calls by kind (``"HTTP 503"``, an exception class name), most first.
        retries_stopped: Failed calls whose retrying was cut short, by the report's
            ``retry_stopped`` reason (``"budget"``...).
        gauges: Each gauge's timeline, by gauge name.
    """

    name: str
    logical_requests: int
    successes: int
    upstream_requests: int
    p50: float | None
    p99: float | None
    failures: tuple[tuple[str, int], ...]
    retries_stopped: tuple[tuple[str, int], ...] = ()
    gauges: dict[str, Timeline] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        """Successes per call (0 before the first call)."""
        return self.successes / self.logical_requests if self.logical_requests else 0.0

    @property
    def upstream_per_request(self) -> float:
        """Upstream requests per call (0 before the first call)."""
        if not self.logical_requests:
            return 0.0
        return self.upstream_requests / self.logical_requests


@dataclass(frozen=True)
class DemoSummary:
    """The result of a demo run.

    Attributes:
        options: What was run.
        elapsed: Seconds from the first call to the end of the last one.
        clients: Plain httpx first, then ResilientClient.
        takeaway: The plain-English conclusion.
    """

    options: DemoOptions
    elapsed: float
    clients: tuple[ClientFigures, ...]
    takeaway: str

    def client(self, name: str) -> ClientFigures:
        """The figures of the client called ``name``."""
        for figures in self.clients:
            if figures.name == name:
                return figures
        raise KeyError(name)


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted values (``None`` when there are none)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class Lane:
    """One client under load: its upstream, its gauges and the running counts."""

    def __init__(
        self,
        name: str,
        client: httpx.AsyncClient,
        upstream: LoopbackServer,
        gauges: Sequence[Gauge] = (),
    ) -> None:
        self.name = name
        self.client = client
        self.upstream = upstream
        self.gauges = list(gauges)
        self.started = 0
        self.successes = 0
        self.failures: Counter[str] = Counter()
        self.retries_stopped: Counter[str] = Counter()
        self.latencies: list[float] = []

    def record(self, latency: float, failure: str | None, report: ExecutionReport | None) -> None:
        """Count one finished call."""
        self.latencies.append(latency)
        if failure is None:
            self.successes += 1
            return
        self.failures[failure] += 1
        if report is not None and report.retry_stopped is not None:
            self.retries_stopped[report.retry_stopped] += 1

    def sample(self, elapsed: float) -> None:
        """Sample every gauge."""
        for gauge in self.gauges:
            gauge.sample(elapsed)

    def figures(self) -> ClientFigures:
        """The figures so far."""
        ordered = sorted(self.latencies)
        return ClientFigures(
            name=self.name,
            logical_requests=len(ordered),
            successes=self.successes,
            upstream_requests=len(self.upstream.requests),
            p50=percentile(ordered, 0.50),
            p99=percentile(ordered, 0.99),
            failures=tuple(self.failures.most_common()),
            retries_stopped=tuple(self.retries_stopped.most_common()),
            gauges={gauge.name: tuple(gauge.changes) for gauge in self.gauges},
        )


def circuit_breaker_gauge(client: ResilientClient) -> Gauge | None:
    """A gauge of the client's circuit breaker, if its pipeline has one."""
    breakers = [policy for policy in client.pipeline.policies if isinstance(policy, CircuitBreaker)]
    if not breakers:
        return None
    breaker = breakers[0]

    def read() -> str:
        # Each client calls one upstream, so a breaker partitioned by origin has one partition;
        # an unpartitioned breaker has none and reports its single state.
        states = {str(state) for state in breaker.partitions().values()}
        return "/".join(sorted(states)) if states else str(breaker.state)

    return Gauge("circuit breaker", read)


def client_gauges(client: ResilientClient) -> list[Gauge]:
    """The gauges of a client's pipeline (the policies that carry state between calls)."""
    gauges = (retry_budget_gauge(client), circuit_breaker_gauge(client))
    return [gauge for gauge in gauges if gauge is not None]


def retry_budget_gauge(client: ResilientClient) -> Gauge | None:
    """A gauge of the client's retry budget, if its pipeline has one."""
    budgets = [
        policy.budget
        for policy in client.pipeline.policies
        if isinstance(policy, Retry) and policy.budget is not None
    ]
    if not budgets:
        return None
    budget = budgets[0]

    def read() -> str:
        # The retry policy reads the system clock, which is time.monotonic.
        return "exhausted" if budget.balance(time.monotonic()) < 1.0 else "ok"

    return Gauge("retry budget", read)


# -- takeaway ------------------------------------------------------------------------------------


def _pct(rate: float) -> str:
    return f"{rate:.1%}"


def format_latency(seconds: float | None) -> str:
    """``"4.2 ms"``, ``"310 ms"``, ``"1.52 s"``, or ``"-"`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1.0:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def format_counts(counts: Sequence[tuple[str, int]]) -> str:
    """``"HTTP 503 x41, ReadError x7"``, or ``"none"``."""
    return ", ".join(f"{kind} x{count}" for kind, count in counts) or "none"


def _headline(plain: ClientFigures, resilient: ClientFigures) -> str:
    gain = resilient.success_rate - plain.success_rate
    cost = (
        f"{resilient.upstream_per_request:.2f} upstream requests per call "
        f"(plain httpx: {plain.upstream_per_request:.2f})"
    )
    if gain > 0.005:
        return (
            f"{RESILIENT_NAME} turned {_pct(plain.success_rate)} success into "
            f"{_pct(resilient.success_rate)} for {cost}."
        )
    if gain < -0.005:
        return (
            f"{RESILIENT_NAME} did worse here: {_pct(resilient.success_rate)} success against "
            f"{_pct(plain.success_rate)} for plain httpx, with {cost}."
        )
    return f"Both clients succeeded on about {_pct(plain.success_rate)} of calls, {cost}."


def _clearly_above(first: float, second: float) -> bool:
    return first > 1.25 * second and first - second > 0.05


def _latency_sentence(plain: ClientFigures, resilient: ClientFigures) -> str:
    if plain.p99 is None or resilient.p99 is None or plain.p50 is None or resilient.p50 is None:
        return ""
    change = f"p50 {format_latency(plain.p50)} -> {format_latency(resilient.p50)}, p99 " + (
        f"{format_latency(plain.p99)} -> {format_latency(resilient.p99)}"
    )
    if _clearly_above(resilient.p99, plain.p99):
        sentence = f"Its tail latency went up ({change})"
        if resilient.upstream_per_request > 1.01:
            sentence += (
                ": a retried call waits between its tries, for its backoff or for as long as "
                "the server's Retry-After asks"
            )
        return sentence + "."
    if _clearly_above(plain.p99, resilient.p99):
        return f"Its tail latency went down ({change})."
    return f"Tail latency was about the same ({change})."


def _pace_sentence(plain: ClientFigures, resilient: ClientFigures) -> str:
    # The users wait for each call before making the next, so time a client spends waiting
    # between tries is time its users do not spend making calls: say so, since it also shifts
    # which part of the run the calls fall in.
    if resilient.logical_requests >= 0.9 * plain.logical_requests:
        return ""
    return (
        f"Its users made {resilient.logical_requests} calls against plain httpx's "
        f"{plain.logical_requests}: each user waits for a call to end before making the next, "
        "so time spent waiting between tries is time not spent making new calls."
    )


#: Failures raised by the client's own policies before the upstream was called, and why.
_REJECTIONS = {
    BrokenCircuitError.__name__: "its circuit breaker was open",
    IsolatedCircuitError.__name__: "its circuit breaker was held open",
    BulkheadRejected.__name__: "its bulkhead was full",
    RateLimitRejected.__name__: "its rate limiter had no token",
}


def _rejection_sentence(resilient: ClientFigures) -> str:
    rejected = [(kind, count) for kind, count in resilient.failures if kind in _REJECTIONS]
    if not rejected:
        return ""
    total = sum(count for _, count in rejected)
    reasons = " or ".join(_REJECTIONS[kind] for kind, _ in rejected)
    share = total / resilient.logical_requests
    sentence = f"{total} of its calls ({share:.0%}) never reached the upstream because {reasons}"
    if any(kind == BrokenCircuitError.__name__ for kind, _ in rejected):
        sentence += (
            ": a breaker opens when the share of failed tries passes its threshold, then "
            "rejects calls at once, to give the upstream a rest, until a probe succeeds"
        )
    return sentence + "."


def _leftover_sentence(resilient: ClientFigures) -> str:
    if not resilient.failures:
        return f"No call through {RESILIENT_NAME} failed."
    sentence = f"What still failed through {RESILIENT_NAME}: {format_counts(resilient.failures)}"
    stopped = dict(resilient.retries_stopped)
    if stopped.get("budget"):
        sentence += (
            f"; for {stopped['budget']} of them the retry budget said no more retries, by design: "
            "it caps retries at a share of the traffic, so that an upstream failing this often "
            "is not piled on"
        )
    return sentence + "."


def takeaway(scenario: Scenario, plain: ClientFigures, resilient: ClientFigures) -> str:
    """One paragraph, in plain English, of what the figures say."""
    if not plain.logical_requests or not resilient.logical_requests:
        return "No call finished, so there is nothing to compare."
    sentences = [
        _headline(plain, resilient),
        _latency_sentence(plain, resilient),
        _pace_sentence(plain, resilient),
        _leftover_sentence(resilient),
        _rejection_sentence(resilient),
        scenario.note,
    ]
    return " ".join(sentence for sentence in sentences if sentence)


# -- output --------------------------------------------------------------------------------------

#: The rows of the tables, each a label and how to show one client's figure; the gauges'
#: rows follow.
FIGURE_ROWS: tuple[tuple[str, Callable[[ClientFigures], str]], ...] = (
    ("calls", lambda f: str(f.logical_requests)),
    ("success rate", lambda f: _pct(f.success_rate)),
    ("upstream requests per call", lambda f: f"{f.upstream_per_request:.2f}"),
    ("p50 latency", lambda f: format_latency(f.p50)),
    ("p99 latency", lambda f: format_latency(f.p99)),
    ("failures", lambda f: format_counts(f.failures)),
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
        f"{options.users} virtual users per client, each making a GET every "
        f"{options.interval * 1000:.0f} ms, for {length}.\n"
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
                f"{figures.logical_requests:6d} calls  {_pct(figures.success_rate):>6} ok  "
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


def make_display(options: DemoOptions, out: TextIO | None = None) -> Display:
    """A rich display when rich is installed and plain output was not asked for."""
    if not options.plain:
        try:
            return RichDisplay(out)
        except ImportError:
            pass
    return PlainDisplay(out)


# -- load ----------------------------------------------------------------------------------------


class LoadClock:
    """Seconds since the load began, shared by the users and the upstreams' threads."""

    def __init__(self) -> None:
        self.began = time.monotonic()

    def start(self) -> None:
        """Start counting now."""
        self.began = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since :meth:`start`."""
        return time.monotonic() - self.began


def _handler(fate: Fate, clock: LoadClock) -> Callable[[ReceivedRequest], Reply]:
    def handle(request: ReceivedRequest) -> Reply:
        return fate(clock.elapsed())

    return handle


async def _call(lane: Lane, url: str) -> None:
    began = time.perf_counter()
    try:
        response = await lane.client.get(url)
    except httpx.HTTPError as exc:
        lane.record(time.perf_counter() - began, type(exc).__name__, None)
        return
    latency = time.perf_counter() - began
    report = response.extensions.get("resilience")
    failure = None if response.is_success else f"HTTP {response.status_code}"
    lane.record(latency, failure, report if isinstance(report, ExecutionReport) else None)


async def _virtual_user(lane: Lane, offset: float, options: DemoOptions, clock: LoadClock) -> None:
    url = f"{lane.upstream.url}/item"
    next_start = offset
    while True:
        await anyio.sleep(max(0.0, next_start - clock.elapsed()))
        if options.requests is not None:
            if lane.started >= options.requests:
                return
        elif clock.elapsed() >= options.duration:
            return
        lane.started += 1
        await _call(lane, url)
        # Keep the pace, but a user whose call overran its slot goes on at once rather than
        # making up for the calls it missed.
        next_start = max(next_start + options.interval, clock.elapsed())


async def _refresh(lanes: Sequence[Lane], display: Display, clock: LoadClock) -> None:
    while True:
        elapsed = clock.elapsed()
        for lane in lanes:
            lane.sample(elapsed)
        display.update(elapsed, [lane.figures() for lane in lanes])
        await anyio.sleep(_REFRESH_SECONDS)


async def _drive(lanes: Sequence[Lane], options: DemoOptions, display: Display) -> float:
    clock = LoadClock()
    for lane in lanes:
        fate = SCENARIOS[options.scenario].make_fate(random.Random(options.seed), options)
        lane.upstream.set_handler(_handler(fate, clock))
    clock.start()
    async with anyio.create_task_group() as refresher:
        refresher.start_soon(_refresh, lanes, display, clock)
        async with anyio.create_task_group() as users:
            for lane in lanes:
                for index in range(options.users):
                    # Spread the users over one interval so the load is even from the start.
                    offset = index * options.interval / options.users
                    users.start_soon(_virtual_user, lane, offset, options, clock)
        elapsed = clock.elapsed()
        refresher.cancel_scope.cancel()
    for lane in lanes:
        lane.sample(elapsed)
    return elapsed


async def _run(options: DemoOptions, display: Display) -> DemoSummary:
    scenario = SCENARIOS[options.scenario]
    with LoopbackServer() as plain_upstream, LoopbackServer() as resilient_upstream:
        async with httpx.AsyncClient() as plain, ResilientClient() as resilient:
            lanes = [
                Lane(PLAIN_NAME, plain, plain_upstream),
                Lane(RESILIENT_NAME, resilient, resilient_upstream, client_gauges(resilient)),
            ]
            elapsed = await _drive(lanes, options, display)
    plain_figures, resilient_figures = (lane.figures() for lane in lanes)
    return DemoSummary(
        options=options,
        elapsed=elapsed,
        clients=(plain_figures, resilient_figures),
        takeaway=takeaway(scenario, plain_figures, resilient_figures),
    )


def run_demo(options: DemoOptions, *, out: TextIO | None = None) -> DemoSummary:
    """Run the demo on a fresh asyncio event loop, show it, and return its figures.

    Args:
        options: What to run.
        out: Where to write (default: standard output).
    """
    if options.scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {options.scenario!r}; choose from {sorted(SCENARIOS)}")
    display = make_display(options, out)
    summary: DemoSummary | None = None
    display.begin(options)
    try:
        summary = anyio.run(_run, options, display, backend="asyncio")
    finally:
        display.end(summary)
    return summary


# -- command line --------------------------------------------------------------------------------


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


def command(args: argparse.Namespace) -> int:
    """Run the ``demo`` command; return the exit status."""
    run_demo(DemoOptions.from_args(args))
    return 0
