"""A simulated queueing upstream on a FakeClock, and open-loop callers to overload it.

The upstream has ``servers`` workers taking ``service`` seconds per request, first come first
served, with an unbounded queue: a request's answer time is booked when it arrives (the earliest
free worker, then ``service`` seconds), so the work is done even for callers who gave up, as a
real server does. Callers arrive on a fixed schedule whether or not earlier calls have ended
(open loop), each with a deadline (a :class:`~httpx_resilience.Timeout` outside the policy under
test, which also bounds its queue waits).

Time is driven by hand (``FakeClock(autojump=False)``) in ticks of ``tick`` seconds: after each
tick the tasks run until nothing changes, so a run is deterministic and takes no real time.
Used by the adaptive limiter's tests and by ``benchmarks/adaptive_limit.py`` (the figures in
docs/adaptive-limit.md).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel

from httpx_resilience import (
    AdaptiveLimiter,
    ConcurrencyLimitRejected,
    Pipeline,
    TimeoutRejected,
)
from httpx_resilience.testing import FakeClock


class Upstream:
    """``servers`` workers of ``service`` seconds each behind one FIFO queue."""

    def __init__(self, clock: FakeClock, servers: int, service: float) -> None:
        self.clock = clock
        self.service = service
        self.free = [clock.monotonic()] * servers  # when each worker is next free (a heap)
        self.requests = 0

    def set_servers(self, servers: int) -> None:
        """Change capacity now: workers removed finish what they have booked."""
        now = self.clock.monotonic()
        free = sorted(self.free)
        self.free = free[:servers] + [now] * max(0, servers - len(free))
        heapq.heapify(self.free)

    async def call(self) -> float:
        """One request: wait for its answer (booked now, done whether or not we wait)."""
        now = self.clock.monotonic()
        start = max(now, heapq.heappop(self.free))
        end = start + self.service
        heapq.heappush(self.free, end)
        self.requests += 1
        await self.clock.sleep(end - now)
        return end


@dataclass
class Run:
    """What happened in one simulated run."""

    capacity: float  # requests per second the upstream can serve at the start
    duration: float
    answers: list[tuple[float, float]] = field(default_factory=list)  # (arrival, latency)
    failures: list[tuple[float, float, str]] = field(default_factory=list)  # + kind
    limits: list[tuple[float, int]] = field(default_factory=list)  # (time, limit)
    upstream_requests: int = 0

    def goodput(self, start: float = 0.0, end: float | None = None, capacity: float = 0) -> float:
        """Answers to calls that arrived in [start, end), as a share of ``capacity`` (default:
        the initial capacity) over that time."""
        end = self.duration if end is None else end
        count = sum(1 for arrival, _ in self.answers if start <= arrival < end)
        return count / ((capacity or self.capacity) * (end - start))

    def p99(self, start: float = 0.0, end: float | None = None) -> float:
        """The 99th percentile latency of the answers to calls that arrived in [start, end)."""
        end = self.duration if end is None else end
        latencies = sorted(latency for arrival, latency in self.answers if start <= arrival < end)
        return latencies[max(0, math.ceil(0.99 * len(latencies)) - 1)] if latencies else math.nan

    def p50_fail(self) -> float:
        """The median time callers took to fail."""
        times = sorted(latency for _, latency, _ in self.failures)
        return times[len(times) // 2] if times else math.nan

    def limit_range(self, start: float, end: float | None = None) -> tuple[int, int]:
        """The lowest and highest limit sampled in [start, end)."""
        end = self.duration if end is None else end
        values = [limit for t, limit in self.limits if start <= t < end]
        return min(values), max(values)

    def time_to_reach(self, after: float, at_most: int) -> float:
        """Seconds after ``after`` until the limit was first sampled at ``at_most`` or less."""
        for t, limit in self.limits:
            if t >= after and limit <= at_most:
                return t - after
        return math.inf


async def simulate(
    limiter: AdaptiveLimiter,
    clock: FakeClock,
    *,
    servers: int,
    service: float,
    load: float,
    duration: float,
    deadline: float = 1.0,
    changes: Sequence[tuple[float, int]] = (),
    tick: float = 0.001,
) -> Run:
    """Offer ``load`` x the upstream's capacity (evenly spaced arrivals) for ``duration``
    seconds through ``Timeout(deadline)`` and ``limiter``; ``changes``: ``(time, servers)``."""
    upstream = Upstream(clock, servers, service)
    capacity = servers / service
    run = Run(capacity, duration)
    pipeline = Pipeline.builder(clock=clock).timeout(deadline).add(limiter).build()
    origin = clock.monotonic()
    interval = 1 / (load * capacity)
    pending_changes = sorted(changes)
    key = None if limiter.describe()["options"]["key"] is None else ""

    async def caller(arrival: float) -> None:
        try:
            await pipeline.execute(upstream.call)
        except ConcurrencyLimitRejected:
            run.failures.append((arrival, clock.monotonic() - origin - arrival, "rejected"))
        except TimeoutRejected:
            run.failures.append((arrival, clock.monotonic() - origin - arrival, "timeout"))
        else:
            run.answers.append((arrival, clock.monotonic() - origin - arrival))

    def state() -> tuple[int, int, int, int]:
        return (clock.sleepers, upstream.requests, len(run.answers), len(run.failures))

    async def settle() -> None:
        unchanged, last = 0, state()
        while unchanged < 3:
            await anyio.lowlevel.checkpoint()
            now = state()
            unchanged = unchanged + 1 if now == last else 0
            last = now

    next_arrival = 0.0
    next_sample = 0.0
    steps = round(duration / tick)
    async with anyio.create_task_group() as tg:
        for step in range(steps + 1):
            now = step * tick
            busy = False
            while pending_changes and pending_changes[0][0] <= now + 1e-9:
                upstream.set_servers(pending_changes.pop(0)[1])
            while next_arrival <= now + 1e-9 and next_arrival < duration:
                tg.start_soon(caller, next_arrival)
                next_arrival += interval
                busy = True
            if busy:
                await settle()
            if now >= next_sample - 1e-9:
                run.limits.append((now, limiter.limit(key)))
                next_sample += 0.1
            before = clock.sleepers
            clock.advance(tick)
            if clock.sleepers != before:
                await settle()
        # Let the last calls end (or time out).
        for _ in range(round((deadline + service) / tick) + 1):
            clock.advance(tick)
            await settle()
    run.upstream_requests = upstream.requests
    return run
