"""One client's figures: what a :class:`Lane` counts while the load runs, and its gauges.

The figures of a client are a :class:`ClientFigures`; the state a client's pipeline carries over
time (its retry budget, its circuit breaker) is a :class:`Gauge`, sampled a few times a second
and reported as the moments it changed. A new gauge is one more factory in
:func:`client_gauges`; the tables show every gauge without change.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from ..._loopback import LoopbackServer
from ...context import ExecutionReport
from ...http.client import ResilientClient
from ...policies.circuit_breaker import CircuitBreaker
from ...policies.retry import Retry
from .options import DemoOptions

__all__ = [
    "ClientFigures",
    "DemoSummary",
    "Gauge",
    "Lane",
    "Timeline",
    "circuit_breaker_gauge",
    "client_gauges",
    "percentile",
    "retry_budget_gauge",
]


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
        started: Calls started, finished or not (the upstream's requests belong to them).
        successes: Calls answered 2xx.
        upstream_requests: Requests the client's upstream received.
        p50: Median latency of the calls, in seconds (``None`` before the first call ends).
        p99: 99th percentile latency of the calls, in seconds.
        failures: Failed calls by kind (``"HTTP 503"``, an exception class name), most first.
        retries_stopped: Failed calls whose retrying was cut short, by the report's
            ``retry_stopped`` reason (``"budget"``...).
        gauges: Each gauge's timeline, by gauge name.
        upstream_429: Upstream requests answered 429 (Too Many Requests).
        recovers_at: When the upstream was healthy again after an outage (seconds into the
            load), in a scenario that has one; else ``None``.
        first_success_after: Seconds from ``recovers_at`` to the first call that succeeded
            after it (``None``: none yet, or no outage).
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
    upstream_429: int = 0
    started: int = 0
    recovers_at: float | None = None
    first_success_after: float | None = None

    @property
    def upstream_429_share(self) -> float:
        """Upstream requests answered 429, as a share of all of them (0 before the first)."""
        return self.upstream_429 / self.upstream_requests if self.upstream_requests else 0.0

    @property
    def success_rate(self) -> float:
        """Successes per call (0 before the first call)."""
        return self.successes / self.logical_requests if self.logical_requests else 0.0

    @property
    def upstream_per_request(self) -> float:
        """Upstream requests per call started (0 before the first call)."""
        # Open loop, many calls are under way at any moment, and their requests already
        # reached the upstream: divide by the calls started (all of them finish in the end).
        calls = max(self.started, self.logical_requests)
        return self.upstream_requests / calls if calls else 0.0


@dataclass(frozen=True)
class DemoSummary:
    """The result of a demo run.

    Attributes:
        options: What was run.
        elapsed: Seconds from the first call to the end of the last one.
        clients: Plain httpx first, then ResilientClient.
        takeaway: The plain-English conclusion.
        late: Seconds the latest call started after its time in the schedule (a busy machine
            makes the load lighter than asked, for both clients alike).
    """

    options: DemoOptions
    elapsed: float
    clients: tuple[ClientFigures, ...]
    takeaway: str
    late: float = 0.0

    @property
    def lateness_note(self) -> str:
        """A sentence when calls started noticeably late, else ``""``."""
        if self.late < _NOTICEABLY_LATE:
            return ""
        return (
            f"Note: calls started up to {self.late:.1f} s after their time (this process could "
            "not keep the schedule on a busy machine), so both clients had a lighter load than "
            "asked, spread over a longer time."
        )

    def client(self, name: str) -> ClientFigures:
        """The figures of the client called ``name``."""
        for figures in self.clients:
            if figures.name == name:
                return figures
        raise KeyError(name)


_NOTICEABLY_LATE = 0.1


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
        recovers_at: float | None = None,
    ) -> None:
        self.name = name
        self.client = client
        self.upstream = upstream
        self.gauges = list(gauges)
        self.recovers_at = recovers_at
        self.first_success_after: float | None = None
        # Written by the upstream's thread only (one request at a time), read by the loop's.
        self.upstream_429 = 0
        self.started = 0
        self.successes = 0
        self.failures: Counter[str] = Counter()
        self.retries_stopped: Counter[str] = Counter()
        self.latencies: list[float] = []

    def record(
        self,
        latency: float,
        failure: str | None,
        report: ExecutionReport | None,
        finished_at: float = 0.0,
    ) -> None:
        """Count one finished call, which ended ``finished_at`` seconds into the load."""
        self.latencies.append(latency)
        if failure is None:
            self.successes += 1
            if (
                self.recovers_at is not None
                and self.first_success_after is None
                and finished_at >= self.recovers_at
            ):
                self.first_success_after = finished_at - self.recovers_at
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
            upstream_429=self.upstream_429,
            started=self.started,
            recovers_at=self.recovers_at,
            first_success_after=self.first_success_after,
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
