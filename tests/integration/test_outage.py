"""The outage bar: a dead dependency must not see a retry storm.

Against a server that answers every request 503, 1,000 logical GETs may put at most 1.3 upstream
requests each on the server. The retry budget alone guarantees it (ratio 0.2 plus its floor of
10 retries/s over a 10 s window = 100 retries, i.e. 0.1 per request at 1,000 requests, as long as
the burst fits in one window); the default client's circuit breaker only lowers it further.
"""

from __future__ import annotations

import collections
import time

import anyio
import httpx
import pytest

from httpx_resilience import Pipeline, ResilienceError, ResilientClient, RetryBudget
from httpx_resilience._loopback import LoopbackServer, ReceivedRequest, Reply
from httpx_resilience.testing import FakeClock

# A thousand loopback requests each: run alone (see "serial" in noxfile.py).
pytestmark = [pytest.mark.anyio, pytest.mark.serial]

LOGICAL_REQUESTS = 1_000
BAR = 1.3


def always_503(request: ReceivedRequest) -> Reply:
    return Reply(503, body=b"down")


async def run_outage(
    server: LoopbackServer, client: httpx.AsyncClient, concurrency: int
) -> tuple[float, str, collections.Counter[str]]:
    """Send the logical requests, ``concurrency`` at a time; return the upstream ratio, a
    summary for assertion messages, and how each logical request ended."""
    outcomes: collections.Counter[str] = collections.Counter()
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(number: int) -> None:
        async with limiter:
            try:
                response = await client.get(f"/item/{number}")
            except httpx.TransportError as exc:
                # A policy's rejection (an open circuit) is also an httpx.TransportError.
                kind = "rejected" if isinstance(exc, ResilienceError) else "error"
                outcomes[f"{kind}: {type(exc).__name__}"] += 1
            else:
                report = response.extensions["resilience"]
                outcomes[f"{response.status_code} ({report.retry_stopped})"] += 1

    started = time.monotonic()
    with anyio.fail_after(120):  # a safety net against a hang only: the run takes seconds
        async with anyio.create_task_group() as tg:
            for number in range(LOGICAL_REQUESTS):
                tg.start_soon(one, number)
    duration = time.monotonic() - started

    upstream = len(server.requests)
    ratio = upstream / LOGICAL_REQUESTS
    summary = (
        f"outage: {LOGICAL_REQUESTS} logical GETs -> {upstream} upstream requests, "
        f"ratio {ratio:.3f} (bar {BAR}), outcomes {dict(outcomes)}, {duration:.2f} s"
    )
    print(summary)
    return ratio, summary, outcomes


async def test_default_client_keeps_an_outage_under_the_bar(server: LoopbackServer) -> None:
    """``ResilientClient()`` with its defaults, 100 logical requests at a time."""
    server.set_handler(always_503)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with ResilientClient(base_url=server.url, limits=limits) as client:
        ratio, summary, outcomes = await run_outage(server, client, concurrency=100)

    assert sum(outcomes.values()) == LOGICAL_REQUESTS, summary
    # Each ended with the server's own 503 or a policy's rejection; never with a pool timeout or
    # another failure of the client itself.
    assert all(o.startswith(("503 ", "rejected: ")) for o in outcomes), summary
    assert ratio <= BAR, summary


async def test_retry_budget_alone_keeps_an_outage_under_the_bar(server: LoopbackServer) -> None:
    """The standard retry (3 attempts, full jitter 0.2..10 s) with the default RetryBudget and no
    circuit breaker: the budget alone holds the bar. Waits and the budget's window run on a fake
    clock, so the burst fits in one window however slow the machine."""
    server.set_handler(always_503)
    clock = FakeClock()
    pipeline = (
        Pipeline.builder(clock=clock)
        .retry(max_attempts=3, base_delay=0.2, max_delay=10.0, budget=RetryBudget())
        .build()
    )
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
    async with ResilientClient(pipeline=pipeline, base_url=server.url, limits=limits) as client:
        ratio, summary, outcomes = await run_outage(server, client, concurrency=20)

    summary += f", {clock.monotonic():.2f} s of fake time"
    assert clock.monotonic() < 10.0, summary  # one budget window
    assert outcomes.keys() <= {"503 (budget)", "503 (max_attempts)"}, summary
    assert outcomes["503 (budget)"] > 0, summary
    assert len(server.requests) > LOGICAL_REQUESTS, summary  # the floor allows some retries
    assert ratio <= BAR, summary
