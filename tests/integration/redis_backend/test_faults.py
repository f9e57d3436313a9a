"""Redis going away under a running client, coming back, and being slow."""

from __future__ import annotations

import time
from typing import Any, Literal

import anyio
import pytest
import redis.asyncio

from httpx_resilience import Context, Pipeline, RateLimiter, RateLimitRejected
from httpx_resilience.backends.redis import RedisBackend

from ._server import RedisServer

# Real-time bounds against a real redis-server: run alone (see "serial" in noxfile.py).
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("anyio_backend", ["asyncio"]),
    pytest.mark.serial,
]

TIMEOUT = 0.2
RETRY_INTERVAL = 0.3


async def noop() -> None:
    return None


async def command(client: redis.asyncio.Redis, *args: str) -> None:
    """Send a raw command (CLIENT PAUSE and the like) and wait for its reply."""
    await client.execute_command(*args)  # type: ignore[no-untyped-call]  # redis-py: unannotated


def limiter(
    client: redis.asyncio.Redis, failure_mode: Literal["open", "closed"], **options: Any
) -> Pipeline:
    backend = RedisBackend(
        client, failure_mode=failure_mode, timeout=TIMEOUT, retry_interval=RETRY_INTERVAL
    )
    return Pipeline([RateLimiter(backend=backend, **options)])


async def timed(pipeline: Pipeline) -> tuple[Context, float, BaseException | None]:
    context = Context()
    started = time.monotonic()
    try:
        await pipeline.execute(noop, context)
    except Exception as exc:
        return context, time.monotonic() - started, exc
    return context, time.monotonic() - started, None


async def test_closed_rejects_every_call_at_once_while_redis_is_down_and_resumes_after(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    pipeline = limiter(redis_client, "closed", rate=2.0, burst=3)
    await pipeline.execute(noop)
    redis_server.stop(kill=True)

    durations = []
    errors = set()
    started = time.monotonic()
    while time.monotonic() - started < 1.0:  # long enough for three probes of the dead server
        context, duration, exc = await timed(pipeline)
        assert isinstance(exc, RateLimitRejected), exc
        assert "failure_mode is 'closed'" in str(exc)
        assert exc.__cause__ is None
        [event] = context.report.events
        assert event.name == "rate_limit_backend_failed"
        assert event.detail["failure_mode"] == "closed"
        errors.add(event.detail["error"])
        durations.append(duration)
    assert errors <= {"ConnectionError", "TimeoutError"}
    # A call that probes Redis (one per retry_interval) waits at most the timeout; every other
    # call skips Redis and is rejected at once.
    assert max(durations) < TIMEOUT + 0.1
    durations.sort()
    assert len(durations) > 100
    assert durations[int(0.95 * len(durations))] < 0.01

    # The same client, on the same port: shared limiting resumes once the next probe succeeds.
    redis_server.start()
    await anyio.sleep(RETRY_INTERVAL)
    for _ in range(3):
        context, _, exc = await timed(pipeline)
        assert exc is None
        assert context.report.events == []
    context, _, exc = await timed(pipeline)
    assert isinstance(exc, RateLimitRejected)
    assert [e.name for e in context.report.events] == ["rate_limited"]
    # ...and it is shared again: another client sees the same empty bucket.
    async with redis.asyncio.Redis(port=redis_server.port) as other:
        with pytest.raises(RateLimitRejected):
            await limiter(other, "closed", rate=2.0, burst=3).execute(noop)


async def test_open_admits_under_the_local_guard_while_redis_is_down(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    pipeline = limiter(redis_client, "open", rate=1.0, burst=3)
    await pipeline.execute(noop)  # one token of the shared bucket; the local guard is full
    redis_server.stop()

    for _ in range(3):  # the guard's burst: admitted, each saying that Redis failed
        context, duration, exc = await timed(pipeline)
        assert exc is None
        assert duration < TIMEOUT + 0.1
        [event] = context.report.events
        assert (event.name, event.detail["failure_mode"]) == ("rate_limit_backend_failed", "open")
    context, _, exc = await timed(pipeline)  # the guard is empty: rate 1/s, as in Redis
    assert isinstance(exc, RateLimitRejected)
    assert [e.name for e in context.report.events] == ["rate_limit_backend_failed", "rate_limited"]
    assert exc.retry_after == pytest.approx(1.0, abs=0.05)

    redis_server.start()
    await anyio.sleep(RETRY_INTERVAL)
    for _ in range(3):  # a fresh server: a full shared bucket, and no more failure events
        context, _, exc = await timed(pipeline)
        assert exc is None
        assert context.report.events == []
    context, _, exc = await timed(pipeline)
    assert isinstance(exc, RateLimitRejected)
    assert "shared" in str(exc)


async def test_a_slow_redis_counts_as_a_failure_after_the_timeout(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    pipeline = limiter(redis_client, "closed", rate=100.0, burst=100)
    await pipeline.execute(noop)
    async with redis.asyncio.Redis(port=redis_server.port) as admin:
        await command(admin, "CLIENT", "PAUSE", "600", "ALL")  # every command waits
        context, duration, exc = await timed(pipeline)
        assert isinstance(exc, RateLimitRejected)
        assert TIMEOUT - 0.02 < duration < TIMEOUT + 0.1
        [event] = context.report.events
        assert event.detail == {"failure_mode": "closed", "error": "TimeoutError"}
        await command(admin, "CLIENT", "UNPAUSE")
    await anyio.sleep(RETRY_INTERVAL)
    await pipeline.execute(noop)


async def test_a_redis_error_reply_never_leaves_the_pipeline(
    redis_client: redis.asyncio.Redis,
) -> None:
    backend = RedisBackend(redis_client, prefix="wrong", failure_mode="closed")
    pipeline = Pipeline([RateLimiter(rate=1.0, burst=1, backend=backend)])
    await redis_client.set(backend.key(None, None), "not a hash")  # WRONGTYPE in the script
    context, _, exc = await timed(pipeline)
    assert isinstance(exc, RateLimitRejected)
    assert context.report.events[0].detail["error"] == "ResponseError"


async def test_concurrent_calls_to_a_slow_redis_all_time_out_together(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    backend = RedisBackend(redis_client, failure_mode="closed", timeout=TIMEOUT, retry_interval=0)
    pipeline = Pipeline([RateLimiter(rate=100.0, burst=100, backend=backend)])
    await pipeline.execute(noop)
    outcomes: list[tuple[Context, float, BaseException | None]] = []

    async def call() -> None:
        outcomes.append(await timed(pipeline))

    async with redis.asyncio.Redis(port=redis_server.port) as admin:
        await command(admin, "CLIENT", "PAUSE", "500", "ALL")
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(call)
                await anyio.sleep(0.01)
        await command(admin, "CLIENT", "UNPAUSE")
    assert len(outcomes) == 5
    for context, duration, exc in outcomes:
        assert isinstance(exc, RateLimitRejected)
        assert context.report.events[0].detail["error"] == "TimeoutError"
        assert TIMEOUT - 0.02 < duration < TIMEOUT + 0.1
    # Nothing is left behind: no call in flight, no timed-out task kept.
    assert backend._deadlines._inflight == {}
    assert backend._deadlines._expired == set()
    await pipeline.execute(noop)  # retry_interval=0: the next call asks Redis again


async def test_a_cancellation_from_outside_during_the_redis_call_is_no_failure(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    backend = RedisBackend(redis_client, failure_mode="closed", timeout=TIMEOUT)
    events: list[str] = []
    pipeline = Pipeline(
        [RateLimiter(rate=100.0, burst=100, backend=backend)],
        listeners=[lambda event: events.append(event.name)],
    )
    await pipeline.execute(noop)
    async with redis.asyncio.Redis(port=redis_server.port) as admin:
        await command(admin, "CLIENT", "PAUSE", "400", "ALL")
        started = time.monotonic()
        with anyio.move_on_after(0.05) as scope:
            await pipeline.execute(noop)
        assert scope.cancelled_caught
        assert time.monotonic() - started < TIMEOUT
        await command(admin, "CLIENT", "UNPAUSE")
    assert events == []  # cancelled, not failed: Redis is not marked down
    assert backend._down_until == 0.0
    assert backend._deadlines._inflight == {}
    await anyio.sleep(TIMEOUT)  # the timer fires with nothing to cancel, and goes quiet
    assert backend._deadlines._handle is None
    await pipeline.execute(noop)
    assert events == []
