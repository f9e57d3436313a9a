"""A queue of the library's own in front of httpx's connection pool.

When every connection of httpx's pool (httpcore 1.x) is busy, each request that ends or arrives
makes the pool walk its waiting requests against its connections, at a cost of O(waiters x
connections) per event (encode/httpx#3215). A burst far larger than the pool then spends its time
in that walk: 500 callers making 2,000 GETs through the default pool of 100 connections to a fast
loopback server take about two minutes with plain httpx (``benchmarks/many_callers.py``), and the
attempt timeouts of a pipeline fire on requests that never left the client.

So a client or transport of this library that builds its own httpx connection pool lets no more
requests into it than it has connections: the others wait in a first-in-first-out queue
(:class:`anyio.Semaphore`), where joining and leaving cost O(1), and no request waits inside the
pool. A permit is held until the response is closed, as the connection is; the wait honours the
request's pool timeout with httpx's own :class:`httpx.PoolTimeout`. httpx2 reworked its pool
(pydantic/httpx2#974 and #1075) and gets no queue; nor does HTTP/2, whose connections carry many
requests, nor a transport the caller built (its pool and limits are its own).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx

from ._flavour import HTTPX, Flavour

__all__ = ["DEFAULT_LIMITS", "queued"]

#: httpx's default pool limits (100 connections), which a client given no ``limits`` has.
DEFAULT_LIMITS: httpx.Limits = httpx._config.DEFAULT_LIMITS


class _QueuedTransport(httpx.AsyncBaseTransport):
    """``transport``, with at most ``connections`` requests inside it at once."""

    __slots__ = ("_connections", "_permits", "_transport")

    def __init__(self, transport: httpx.AsyncBaseTransport, connections: int) -> None:
        self._transport = transport
        self._connections = connections
        # fast_acquire: a free permit is taken without a turn of the event loop.
        self._permits = anyio.Semaphore(connections, fast_acquire=True)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Wait for a connection's permit, then send ``request`` through the pool."""
        permits = self._permits
        if permits.value > 0:
            permits.acquire_nowait()
        else:
            await self._wait(request)
        try:
            response = await self._transport.handle_async_request(request)
        except BaseException:
            permits.release()
            raise
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)  # a transport's answer, never sync
        response.stream = _Releasing(stream, permits)
        return response

    async def _wait(self, request: httpx.Request) -> None:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        pool_timeout = timeouts.get("pool")
        if pool_timeout is None:
            await self._permits.acquire()
            return
        with anyio.move_on_after(pool_timeout):
            await self._permits.acquire()
            return
        raise httpx.PoolTimeout(
            f"no connection of the pool (it has {self._connections}) came free "
            f"within the pool timeout of {pool_timeout} s",
            request=request,
        )

    async def aclose(self) -> None:
        """Close the pool."""
        await self._transport.aclose()


class _Releasing(httpx.AsyncByteStream):
    """A response body that gives its permit back when closed (once), as the pool gets its
    connection back."""

    __slots__ = ("_permits", "_stream")

    def __init__(self, stream: httpx.AsyncByteStream, permits: anyio.Semaphore | None) -> None:
        self._stream = stream
        self._permits = permits

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        """Close the body, then free the permit."""
        permits, self._permits = self._permits, None
        try:
            await self._stream.aclose()
        finally:
            if permits is not None:
                permits.release()


def queued(
    flavour: Flavour, transport: httpx.AsyncBaseTransport, limits: httpx.Limits, http2: bool
) -> httpx.AsyncBaseTransport:
    """``transport`` (a connection pool the library built with ``limits``) behind the queue,
    where it needs one: httpx's own pool, HTTP/1.1, a bounded number of connections."""
    connections = limits.max_connections
    if flavour is not HTTPX or flavour.name != "httpx" or http2 or connections is None:
        return transport
    return _QueuedTransport(transport, connections)
