"""One worker process of the multi-process test: its own event loop, client and limiter.

Top-level functions only, so that ``multiprocessing`` (spawn) can import and run them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio

from httpx_resilience import Context, Pipeline, RateLimiter, RateLimitRejected
from httpx_resilience.backends.redis import RedisBackend

#: Concurrent callers in each worker process.
TASKS = 3


def run(options: dict[str, Any], barrier: Any, results: Any) -> None:
    """Entry point of the process: put ``(index, admitted, events)`` on ``results``."""
    results.put(asyncio.run(_work(options, barrier)))


async def _work(options: dict[str, Any], barrier: Any) -> tuple[int, list[float], list[str]]:
    client = redis.asyncio.Redis(host="127.0.0.1", port=options["port"])
    # "closed" and a timeout far above a loopback round trip: a failure here must show up as
    # a failure event (the test wants none), never as calls admitted by a local guard.
    backend = RedisBackend(client, prefix=options["prefix"], failure_mode="closed", timeout=2.0)
    limiter = RateLimiter(
        rate=options["rate"], burst=options["burst"], max_wait=options["max_wait"], backend=backend
    )
    await client.ping()  # connected before the start, so that nobody starts late
    admitted: list[float] = []
    events: list[str] = []

    async def call() -> None:
        admitted.append(time.time())

    async def caller(end: float) -> None:
        while time.monotonic() < end:
            try:
                # The end of the run is the deadline: no wait for a token runs past it.
                await pipeline.execute(call, Context(deadline=end))
            except RateLimitRejected as exc:
                # Another process took the token this one waited for, or the wait would pass
                # max_wait or the end: try again when the next token is due.
                await asyncio.sleep(min(exc.retry_after, max(0.0, end - time.monotonic())))

    def listener(event: Any) -> None:
        events.append(event.name)

    pipeline = Pipeline([limiter], listeners=[listener])
    barrier.wait(timeout=60)  # every process connected: start together
    end = time.monotonic() + options["duration"]
    await asyncio.gather(*(caller(end) for _ in range(TASKS)))
    await client.aclose()
    return options["index"], admitted, [e for e in events if e != "rate_limited"]
