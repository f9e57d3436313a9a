"""Many concurrent acquisitions against a bounded pool, and a stall inside a cancelled task."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

from httpx_resilience import Context, Pipeline, RateLimiter, RateLimitRejected, ResilientClient
from httpx_resilience.backends import FailureMode
from httpx_resilience.backends.redis import RedisBackend
from httpx_resilience.testing import LoopbackServer

from ._server import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

CALLS = 300
NAME = "limiter-under-test"


# Task.cancelling() and uncancel() came with Python 3.11; before, the backend uses anyio's timeout.
needs_uncancel = pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.uncancel(): 3.11+")


async def noop() -> None:
    return None


@contextlib.asynccontextmanager
async def paused(server: RedisServer, milliseconds: int) -> AsyncIterator[None]:
    """Redis holds every command of every client (a stall) until the block ends."""
    admin: Any = redis.asyncio.Redis(port=server.port)  # execute_command is untyped
    try:
        await admin.execute_command("CLIENT", "PAUSE", str(milliseconds), "ALL")
        yield
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()


async def limiter_connections(admin: redis.asyncio.Redis) -> int:
    """How many connections the limiter's client holds open (its name tells them apart)."""
    clients: list[dict[str, Any]] = await admin.client_list()
    return sum(1 for c in clients if c["name"] == NAME)


async def crowd(pipeline: Pipeline) -> list[Context]:
    """CALLS acquisitions at once, each with its own context; every one must be admitted."""
    contexts = [Context() for _ in range(CALLS)]
    await asyncio.gather(*(pipeline.execute(noop, c) for c in contexts))
    return contexts


@pytest.mark.parametrize("failure_mode", ["open", "closed"])
async def test_more_concurrent_calls_than_the_pool_holds_wait_for_a_connection(
    redis_server: RedisServer, failure_mode: FailureMode
) -> None:
    # redis-py's default pool: at most 100 connections, and MaxConnectionsError beyond them.
    client = redis.asyncio.Redis(port=redis_server.port, client_name=NAME)
    # A generous timeout: the calls beyond the pool wait for a connection within it, and on a
    # busy machine 300 round trips through 100 connections take a while.
    backend = RedisBackend(client, failure_mode=failure_mode, timeout=10.0)
    assert backend.max_connections == 100  # the client's pool, by default
    pipeline = Pipeline([RateLimiter(rate=0.01, burst=CALLS, backend=backend)])
    try:
        contexts = await crowd(pipeline)
        # None of them found the store unavailable: all were limited in Redis.
        assert [e.name for c in contexts for e in c.report.events] == []
        async with redis.asyncio.Redis(port=redis_server.port) as admin:
            assert 0 < await limiter_connections(admin) <= 100
    finally:
        await client.aclose()


async def test_max_connections_bounds_the_connections_a_crowd_opens(
    redis_server: RedisServer,
) -> None:
    client = redis.asyncio.Redis(port=redis_server.port, client_name=NAME)
    backend = RedisBackend(client, failure_mode="closed", timeout=10.0, max_connections=4)
    pipeline = Pipeline([RateLimiter(rate=0.01, burst=CALLS, backend=backend)])
    try:
        contexts = await crowd(pipeline)
        assert [e.name for c in contexts for e in c.report.events] == []
        async with redis.asyncio.Redis(port=redis_server.port) as admin:
            assert 0 < await limiter_connections(admin) <= 4
        # ...and they were limited correctly: the bucket of 300 is empty now.
        with pytest.raises(RateLimitRejected, match="shared"):
            await pipeline.execute(noop)
    finally:
        await client.aclose()


async def test_a_call_waiting_for_a_connection_gives_up_at_the_timeout(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    backend = RedisBackend(redis_client, failure_mode="closed", timeout=0.2, max_connections=1)
    pipeline = Pipeline([RateLimiter(rate=100.0, burst=100, backend=backend)])
    await pipeline.execute(noop)
    contexts = [Context(), Context()]
    async with paused(redis_server, 400):
        outcomes = await asyncio.gather(
            *(pipeline.execute(noop, c) for c in contexts), return_exceptions=True
        )
    # One call holds the only connection and times out; the other times out waiting for it.
    assert all(isinstance(o, RateLimitRejected) for o in outcomes), outcomes
    for context in contexts:
        [event] = context.report.events
        assert event.detail == {"failure_mode": "closed", "error": "TimeoutError"}
    assert backend._deadlines._inflight == {}


async def cancelled_once() -> Any:
    """The running task, after a cancellation it caught (as a task that survived one does):
    its cancelling() count is 1 from now on."""
    task: Any = asyncio.current_task()  # Any: mypy checks against 3.10, without cancelling()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(0)
    assert task.cancelling() == 1
    return task


@needs_uncancel
@pytest.mark.parametrize("failure_mode", ["open", "closed"])
async def test_a_stall_in_a_task_cancelled_before_is_a_backend_failure(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis, failure_mode: FailureMode
) -> None:
    backend = RedisBackend(redis_client, failure_mode=failure_mode, timeout=0.1)
    pipeline = Pipeline([RateLimiter(rate=100.0, burst=100, backend=backend)])
    await pipeline.execute(noop)
    context = Context()
    async with paused(redis_server, 400):

        async def call() -> tuple[BaseException | None, int]:
            task = await cancelled_once()
            try:
                await pipeline.execute(noop, context)
            except Exception as exc:
                return exc, task.cancelling()
            return None, task.cancelling()

        # Its own task, so that the test's task keeps a clean count.
        exc, cancelling = await asyncio.create_task(call())
    # Not a CancelledError: the timeout's cancellation is the backend's, and taken back.
    if failure_mode == "closed":
        assert isinstance(exc, RateLimitRejected), exc
    else:
        assert exc is None
    assert context.report.events[0].detail == {
        "failure_mode": failure_mode,
        "error": "TimeoutError",
    }
    assert cancelling == 1
    assert backend._deadlines._expired == set()


async def in_flight(backend: RedisBackend, task: asyncio.Task[Any]) -> None:
    """Until ``task`` waits for Redis."""
    while task not in backend._deadlines._inflight:
        await asyncio.sleep(0)


@needs_uncancel
async def test_a_stall_in_a_task_cancelled_before_never_cancels_client_get(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis, server: LoopbackServer
) -> None:
    backend = RedisBackend(redis_client, failure_mode="closed", timeout=0.1)
    pipeline = Pipeline([RateLimiter(rate=100.0, burst=100, backend=backend)])
    async with ResilientClient(pipeline=pipeline, base_url=server.url) as client:
        assert (await client.get("/")).status_code == 200

        async def call() -> BaseException | None:
            await cancelled_once()
            try:
                await client.get("/")
            except Exception as exc:
                return exc
            return None

        async with paused(redis_server, 400):
            exc = await asyncio.create_task(call())
    assert isinstance(exc, RateLimitRejected), exc
    assert "failure_mode is 'closed'" in str(exc)
    assert len(server.requests) == 1  # the stalled call never reached the upstream


@needs_uncancel
@pytest.mark.parametrize("timed_out", [False, True])
async def test_in_a_task_cancelled_before_a_cancellation_from_outside_still_propagates(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis, timed_out: bool
) -> None:
    backend = RedisBackend(redis_client, failure_mode="closed", timeout=10.0)
    events: list[str] = []
    pipeline = Pipeline(
        [RateLimiter(rate=100.0, burst=100, backend=backend)],
        listeners=[lambda event: events.append(event.name)],
    )
    await pipeline.execute(noop)
    async with paused(redis_server, 2000):

        async def call() -> None:
            await cancelled_once()
            await pipeline.execute(noop)

        task = asyncio.create_task(call())
        await in_flight(backend, task)
        if timed_out:
            # The backend's timer fires in the same step as the cancellation from outside
            # (what its timer does, without waiting for it): the outer one must win.
            backend._deadlines._expired.add(task)
            task.cancel()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert events == []  # cancelled, not failed: Redis is not marked down
    assert backend._down_until == 0.0
    assert backend._deadlines._inflight == {}
    assert backend._deadlines._expired == set()
