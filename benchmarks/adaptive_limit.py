"""Candidates for the adaptive concurrency limit, against a simulated queueing upstream.

The figures of docs/adaptive-limit.md come from here: for each candidate algorithm, open-loop
callers (1 s deadline) offer 0.5x, 3x and 10x the capacity of an upstream of K workers taking S
seconds each (FIFO, unbounded queue, doing the work even for callers who left); halfway through
the run the upstream loses half its workers. The simulation runs on a FakeClock
(tests/policies/_upstream_sim.py), so every figure is exact and the same on every run.

Printed per candidate and load: the limit it settled on before the halving (min-max over the
last 2 s) against K, goodput within the deadline as a share of capacity, p99 latency of answers
against S, the median time to fail, upstream requests per call, then after the halving the
seconds until a 0.5 s window of arrivals gets 0.8 of the new capacity with a p99 of at most
4 x S, and the p99 from 1 s after the halving on.

The candidates besides the library's (``vegas``, :class:`~httpx_resilience.AdaptiveLimiter`
itself) are sketches of Netflix concurrency-limits' Gradient2 and AIMD made for this
comparison only; they reuse the limiter's permits and queue, so only the algorithm differs.

    python benchmarks/adaptive_limit.py [--servers 4] [--service 0.05] [--duration 10]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.policies._upstream_sim import Run, simulate

from httpx_resilience import AdaptiveLimiter
from httpx_resilience.policies.adaptive_limit import _Partition
from httpx_resilience.testing import FakeClock


class Gradient2(AdaptiveLimiter):
    """After Netflix's Gradient2Limit: the limit times the gradient of a long-term average
    round trip over the latest one (clamped to [0.5, 1], with a 1.5 tolerance), plus a queue
    allowance of 4, smoothed by 0.2; no growth while less than half the limit is in use."""

    __slots__ = ("_long",)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._long: dict[int, tuple[float, int]] = {}

    def _estimate(self, p: _Partition, start: float, now: float, dropped: bool) -> float:
        rtt = now - start
        p.last_rtt = rtt
        if dropped or rtt <= 0:
            return p.limit
        average, count = self._long.get(id(p), (rtt, 0))
        count += 1
        # A plain average for the first 10 samples, then an exponential one over 600.
        average = (
            average + (rtt - average) / count
            if count <= 10
            else average + (rtt - average) * 2 / 601
        )
        if average / rtt > 2:
            average *= 0.95  # the long-term average comes down after an overload ends
        self._long[id(p)] = (average, count)
        limit = p.limit
        if p.active < limit / 2:
            return limit
        gradient = max(0.5, min(1.0, 1.5 * average / rtt))
        target = limit * gradient + 4
        limit = limit * 0.8 + target * 0.2
        return min(float(self._max_limit), max(float(self._min_limit), limit))


class AIMD(AdaptiveLimiter):
    """After Netflix's AIMDLimit: +1 per answer while at least half the limit is in use, x0.9
    on a drop or an answer slower than ``timeout`` (0.5 s here: the callers leave at 1 s, and
    a caller who left is no sample)."""

    __slots__ = ()

    def _estimate(self, p: _Partition, start: float, now: float, dropped: bool) -> float:
        rtt = now - start
        p.last_rtt = rtt
        limit = p.limit
        if dropped or rtt > 0.5:
            limit *= 0.9
        elif 2 * p.active >= limit:
            limit += 1
        return min(float(self._max_limit), max(float(self._min_limit), limit))


CANDIDATES: dict[str, type[AdaptiveLimiter]] = {
    "vegas": AdaptiveLimiter,
    "gradient2": Gradient2,
    "aimd": AIMD,
}


def row(name: str, load: float, run: Run, servers: int, service: float, half: float) -> str:
    warm = min(1.0, half / 2)  # the first second goes to finding the limit
    low, high = run.limit_range(max(0.0, half - 2.0), half)
    follow = recovery(run, half, max(1, servers // 2) / service, service)
    calls = len(run.answers) + len(run.failures)
    after = run.p99(half + warm) / service
    return (
        f"| {name} | {load:g}x | {low}-{high} (K={servers}) | "
        f"{min(run.goodput(warm, half), 1.0):.2f} | {run.p99(warm, half) / service:.1f} | "
        f"{_ms(run.p50_fail())} | {run.upstream_requests / calls:.2f} | "
        f"{'never' if math.isinf(follow) else f'{follow:.1f} s'} | {after:.1f} |"
    )


def recovery(run: Run, since: float, capacity: float, service: float) -> float:
    """Seconds after ``since`` to the first 0.5 s window of arrivals whose goodput is at least
    0.8 of ``capacity`` and whose answers' p99 is at most 4 x ``service``."""
    start = since
    while start + 0.5 <= run.duration:
        if run.goodput(start, start + 0.5, capacity) >= 0.8 and run.p99(start, start + 0.5) <= (
            4 * service
        ):
            return start - since
        start += 0.1
    return math.inf


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


async def main(servers: int, service: float, duration: float) -> None:
    half = duration / 2
    print(
        "| algorithm | load | limit before halving | goodput | p99 / S | p50 fail "
        "| upstream req/call | recovered after halving | p99 / S after |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, cls in CANDIDATES.items():
        for load in (0.5, 3.0, 10.0):
            clock = FakeClock(autojump=False)
            limiter = cls(key=None, clock=clock)
            run = await simulate(
                limiter,
                clock,
                servers=servers,
                service=service,
                load=load,
                duration=duration,
                changes=[(half, max(1, servers // 2))],
            )
            print(row(name, load, run, servers, service, half), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=4, help="K, the upstream's workers")
    parser.add_argument("--service", type=float, default=0.05, help="S, seconds per request")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds simulated")
    args = parser.parse_args()
    anyio.run(main, args.servers, args.service, args.duration)
