"""Cancellation from outside: never swallowed, never a TimeoutRejected, never a leaked connection.

Each test runs a ResilientClient with its default pipeline (attempt and total timeouts far
longer than the caller's own deadline) and a pool of one connection: a connection leaked by a
cancelled request would make the next request wait for the pool until PoolTimeout.
"""

from __future__ import annotations

import anyio
import httpx
import pytest

from httpx_resilience import ResilientClient
from httpx_resilience._loopback import LoopbackServer, ReceivedRequest, Reply

pytestmark = pytest.mark.anyio

ONE_CONNECTION = httpx.Limits(max_connections=1, max_keepalive_connections=1)
TIMEOUT = httpx.Timeout(2.0, pool=0.3)


def hang_on_slow_path(request: ReceivedRequest) -> Reply:
    return Reply(hang=True) if request.path == "/hang" else Reply(200, body=b"fine")


async def wait_for_requests(server: LoopbackServer, count: int) -> None:
    """Wait (at most 1 s) until the server has received ``count`` requests."""
    with anyio.fail_after(1.0):
        while len(server.requests) < count:
            await anyio.sleep(0.005)


async def test_move_on_after_cancels_cleanly_and_the_pool_recovers(
    server: LoopbackServer,
) -> None:
    server.set_handler(hang_on_slow_path)
    async with ResilientClient(base_url=server.url, limits=ONE_CONNECTION, timeout=TIMEOUT) as c:
        for n in range(1, 4):
            with anyio.move_on_after(0.15) as scope:
                await c.get("/hang")
            # A TimeoutRejected would have escaped the scope instead.
            assert scope.cancelled_caught
            # Each attempt got a connection: none was held by the cancelled one before it.
            assert server.paths() == ["/hang"] * n

        response = await c.get("/ok")

    assert response.status_code == 200
    assert response.content == b"fine"
    assert len(response.extensions["resilience"].attempts) == 1


async def test_cancel_scope_from_another_task_does_not_leak_the_connection(
    server: LoopbackServer,
) -> None:
    server.set_handler(hang_on_slow_path)
    outcomes: list[str] = []

    async with ResilientClient(base_url=server.url, limits=ONE_CONNECTION, timeout=TIMEOUT) as c:

        async def call() -> None:
            try:
                await c.get("/hang")
            except BaseException as exc:
                outcomes.append(type(exc).__name__)
                raise
            outcomes.append("returned")

        for n in range(1, 4):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await wait_for_requests(server, n)
                tg.cancel_scope.cancel()

        response = await c.get("/ok")

    cancelled = anyio.get_cancelled_exc_class().__name__
    assert outcomes == [cancelled] * 3
    assert response.status_code == 200
    assert server.paths() == ["/hang"] * 3 + ["/ok"]


async def test_cancel_during_retry_wait_keeps_the_connection_reusable(
    server: LoopbackServer,
) -> None:
    """Cancelled while waiting out a Retry-After: the failed response was already read and its
    connection returned, so the next request reuses it."""
    server.script(Reply(503, headers=[("Retry-After", "1")], body=b"later"))
    server.set_handler(hang_on_slow_path)
    async with ResilientClient(base_url=server.url, limits=ONE_CONNECTION, timeout=TIMEOUT) as c:
        with anyio.move_on_after(0.2) as scope:
            await c.get("/busy")
        assert scope.cancelled_caught
        response = await c.get("/ok")

    assert response.status_code == 200
    assert server.paths() == ["/busy", "/ok"]
    assert server.connections_opened == 1
