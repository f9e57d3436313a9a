"""The queue in front of httpx's connection pool (``http/_pool.py``), against a real server.

A client of this library that builds its own httpx pool lets no more requests into it than it
has connections; the others wait in a first-in-first-out queue. What a user relies on: every
request is still answered, the pool timeout still applies (as httpx's ``PoolTimeout``), a
permit is held exactly as long as the connection (a streamed body until it is closed), and a
cancelled or failed request gives it back.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from httpx_resilience import Pipeline, ResilienceTransport, ResilientClient
from httpx_resilience._loopback import LoopbackServer, ReceivedRequest, Reply
from httpx_resilience.http._flavour import HTTPX
from httpx_resilience.http._pool import _QueuedTransport, queued
from httpx_resilience.policies._waiters import WaitQueue, occupancy

pytestmark = pytest.mark.anyio

# httpx's pool alone gets the queue (httpx2 reworked its own): these tests are of httpx.
ONE_FLAVOUR = True

ONE = httpx.Limits(max_connections=1, max_keepalive_connections=1)


def queue_of(client: ResilientClient) -> WaitQueue:
    transport = client._transport
    assert isinstance(transport, _QueuedTransport)
    return transport._permits


async def until_waiting(permits: WaitQueue, count: int) -> None:
    """Let other tasks run until ``count`` requests wait in the queue."""
    with anyio.fail_after(5):
        while len(permits.waiters) < count:
            await anyio.sleep(0.001)


async def test_many_callers_through_a_small_pool_are_all_answered(server: LoopbackServer) -> None:
    server.set_handler(lambda request: Reply(200, body=request.path.encode(), delay=0.01))
    limits = httpx.Limits(max_connections=3, max_keepalive_connections=3)
    answers: list[bytes] = []
    async with ResilientClient(base_url=server.url, limits=limits) as client:

        async def one(n: int) -> None:
            answers.append((await client.get(f"/{n}")).content)

        async with anyio.create_task_group() as tg:
            for n in range(60):
                tg.start_soon(one, n)
        assert occupancy(queue_of(client)) == (0, 0)  # every permit came back

    assert sorted(answers) == sorted(f"/{n}".encode() for n in range(60))
    # No more connections than the pool's: the queue never let more requests through.
    assert len({r.connection for r in server.requests}) <= 3


async def test_a_wait_beyond_the_pool_timeout_is_httpxs_pool_timeout(
    server: LoopbackServer,
) -> None:
    server.set_handler(lambda request: Reply(hang=True))
    timeout = httpx.Timeout(5.0, pool=0.05)
    pipeline = Pipeline.builder().build()  # no retry: the PoolTimeout reaches the caller as is
    async with ResilientClient(
        pipeline=pipeline, base_url=server.url, limits=ONE, timeout=timeout
    ) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.get, "/hangs")
            await until_waiting(queue_of(client), 0)
            with anyio.fail_after(5):
                while not server.requests:
                    await anyio.sleep(0.001)
            with pytest.raises(httpx.PoolTimeout, match=r"pool \(it has 1\).*0\.05 s"):
                await client.get("/second")
            tg.cancel_scope.cancel()
        assert occupancy(queue_of(client)) == (0, 0)  # the cancelled hang gave its permit back

    assert server.paths() == ["/hangs"]


async def test_a_streamed_body_holds_its_permit_until_closed(server: LoopbackServer) -> None:
    server.set_handler(lambda request: Reply(200, body=b"x" * 1000, chunks=4))
    done: list[int] = []
    async with ResilientClient(base_url=server.url, limits=ONE) as client:
        permits = queue_of(client)

        async def second() -> None:
            done.append((await client.get("/second")).status_code)

        async with client.stream("GET", "/first") as response, anyio.create_task_group() as tg:
            tg.start_soon(second)
            await until_waiting(permits, 1)
            assert server.paths() == ["/first"]  # the second waits, in our queue
            assert await response.aread() == b"x" * 1000
            await response.aclose()  # the connection, and so the permit, comes back
        assert done == [200]
        assert occupancy(permits) == (0, 0)


async def test_a_cancelled_waiter_leaves_the_queue_and_takes_no_permit(
    server: LoopbackServer,
) -> None:
    server.set_handler(lambda request: Reply(200, delay=0.2 if request.path == "/slow" else 0))
    async with ResilientClient(base_url=server.url, limits=ONE) as client:
        permits = queue_of(client)
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.get, "/slow")
            await until_waiting(permits, 0)
            with anyio.CancelScope() as waiting:
                tg.start_soon(lambda: client.get("/never"))
                await until_waiting(permits, 1)
                waiting.cancel()
            tg.cancel_scope.cancel()
        # Both tasks were cancelled: one in the queue, one holding the permit.
        assert occupancy(permits) == (0, 0)
        assert (await client.get("/after")).status_code == 200


async def test_a_reset_mid_body_gives_the_permit_back(server: LoopbackServer) -> None:
    def handler(request: ReceivedRequest) -> Reply:
        if request.path == "/reset":
            return Reply(200, body=b"y" * 10_000, reset_after=100)
        return Reply(200, body=b"fine")

    server.set_handler(handler)
    pipeline = Pipeline.builder().build()
    async with ResilientClient(pipeline=pipeline, base_url=server.url, limits=ONE) as client:
        with pytest.raises(httpx.TransportError):
            await client.get("/reset")
        assert occupancy(queue_of(client)) == (0, 0)
        assert (await client.get("/fine")).content == b"fine"


def test_only_a_pool_the_library_built_for_http1_and_httpx_gets_a_queue() -> None:
    assert isinstance(ResilientClient()._transport, _QueuedTransport)
    assert isinstance(ResilienceTransport()._transport, _QueuedTransport)
    limits = httpx.Limits(max_connections=7)
    assert ResilientClient(limits=limits)._transport._connections == 7  # type: ignore[attr-defined]
    # HTTP/2 multiplexes many requests on a connection (the client reads http2= as here).
    pool = httpx.AsyncHTTPTransport()
    assert queued(HTTPX, pool, limits, http2=True) is pool


def test_no_queue_without_a_bound_or_for_a_given_transport() -> None:
    # A pool without a bound has nothing to queue for; a transport given by the caller keeps
    # its own pool and limits.
    unbounded = httpx.Limits(max_connections=None)
    assert not isinstance(ResilientClient(limits=unbounded)._transport, _QueuedTransport)
    given = httpx.AsyncHTTPTransport()
    assert ResilientClient(transport=given)._transport is given
    assert ResilienceTransport(transport=given)._transport is given


def test_httpx2_keeps_its_own_pool() -> None:
    httpx2 = pytest.importorskip("httpx2")
    from httpx_resilience import httpx2 as layer

    assert isinstance(layer.ResilientClient()._transport, httpx2.AsyncHTTPTransport)
    transport: Any = layer.ResilienceTransport()  # typed as httpx2's base, without _transport
    assert isinstance(transport._transport, httpx2.AsyncHTTPTransport)
