"""One rate limit shared by every replica of a service, kept in Redis.

An upstream allows 20 requests per second (bursts of 5) to your whole service, however many
replicas it runs. An in-memory limiter would let each replica send that much; with
``RedisBackend`` every replica draws from one bucket in Redis. This script runs two "replicas"
(two pipelines, each with its own Redis client, as two processes would have) flat out for 2 s
against a local upstream, and checks that together they stayed within the one limit:
at most burst + rate x t requests in t seconds.

Run it: REDIS_URL=redis://localhost:6379/0 python examples/redis_shared_limit.py
(needs ``pip install 'httpx-resilience[redis]'`` and a Redis server; REDIS_URL defaults to
redis://localhost:6379/0; without a server there, it says so and exits)
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass

import redis.asyncio as redis
from redis.exceptions import RedisError

from httpx_resilience import Pipeline, RateLimitRejected, ResilienceEvent, ResilientClient
from httpx_resilience.backends.redis import RedisBackend
from httpx_resilience.testing import LoopbackServer

RATE = 20.0  # requests per second, for all replicas together
BURST = 5
DURATION = 2.0  # seconds each replica sends for
WORKERS = 4  # concurrent callers per replica, so that each would go faster than the limit
# Every replica must use the same prefix (and profile): that is what makes the bucket shared.
PREFIX = "example-shop:upstream-limit"


@dataclass
class Replica:
    """What each replica of the service builds at start-up: its own Redis client and pipeline,
    sharing only the bucket in Redis; and, for this demonstration, what it counted."""

    name: str
    redis_url: str
    upstream_url: str
    sent: int = 0
    rejected: int = 0
    redis_failures: int = 0

    def __post_init__(self) -> None:
        self.connection = redis.Redis.from_url(self.redis_url)
        backend = RedisBackend(
            self.connection,
            prefix=PREFIX,
            # When Redis does not answer within its timeout (0.1 s): "closed" rejects the call,
            # so the upstream never sees more than its limit; "open" (the default) admits it
            # under a bucket of this replica's own, which keeps the service working but lets N
            # replicas send up to N times the limit meanwhile. Choose per upstream.
            failure_mode="closed",
        )
        pipeline = (
            Pipeline.builder(listeners=[self.on_event])
            # max_wait: a caller waits up to 0.5 s for a token (queued fairly) before being
            # rejected with RateLimitRejected.
            .rate_limit(rate=RATE, burst=BURST, max_wait=0.5, backend=backend)
            .build()
        )
        self.client = ResilientClient(pipeline=pipeline, base_url=self.upstream_url)

    async def start(self) -> None:
        # A replica checks its Redis at start-up; this also opens the connection, so that the
        # first request does not spend its 0.1 s on connecting.
        await self.connection.ping()

    def on_event(self, event: ResilienceEvent) -> None:
        # Redis trouble never raises out of the pipeline: it is an event, for logs and alerts.
        if event.name == "rate_limit_backend_failed":
            self.redis_failures += 1

    async def run(self, until: float) -> None:
        """Send requests from WORKERS callers until ``until``."""

        async def worker() -> None:
            while time.monotonic() < until:
                try:
                    await self.client.get("/quote")
                    self.sent += 1
                except RateLimitRejected as exc:
                    # No token within max_wait (or Redis unreachable): back off as told.
                    self.rejected += 1
                    await asyncio.sleep(exc.retry_after or 0.05)

        await asyncio.gather(*(worker() for _ in range(WORKERS)))

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.connection.aclose()  # the backend never closes the client it was given


async def redis_answers(url: str) -> bool:
    connection = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        return bool(await connection.ping())
    except (RedisError, OSError):
        return False
    finally:
        await connection.aclose()


async def main() -> int:
    redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    if not await redis_answers(redis_url):
        print(
            f"This example needs a Redis server, and none answered at {redis_url}. Start one "
            "(redis-server, or docker run -p 6379:6379 redis) or set REDIS_URL, then run it again."
        )
        return 0

    with LoopbackServer() as upstream:
        replicas = [Replica(name, redis_url, upstream.url) for name in ("replica-a", "replica-b")]
        try:
            await asyncio.gather(*(r.start() for r in replicas))
            started = time.monotonic()
            await asyncio.gather(*(r.run(until=started + DURATION) for r in replicas))
        finally:
            for replica in replicas:
                await replica.aclose()
        elapsed = time.monotonic() - started
        received = len(upstream.requests)

    print(f"limit: {RATE:g}/s, burst {BURST}, shared by 2 replicas through Redis")
    for r in replicas:
        print(f"{r.name}: {r.sent} requests sent, {r.rejected} rejected by the limiter")
        if r.redis_failures:
            print(f"  ({r.redis_failures} of its calls found Redis too slow or down: rejected)")
    total = sum(r.sent for r in replicas)
    bound = BURST + RATE * elapsed
    print(
        f"total: {total} requests in {elapsed:.2f} s (the upstream received {received}); "
        f"bound: burst + rate x t = {bound:.1f}"
    )
    print(f"(with a limiter in each replica's memory instead, up to {2 * bound:.1f} together)")
    if total <= bound and received == total:
        print("OK: together the replicas stayed within the one limit")
        return 0
    print("FAILED: the replicas sent more than the limit allows")
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
