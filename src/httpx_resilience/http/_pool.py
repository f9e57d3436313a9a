"""A queue of the library's own in front of httpx's connection pool.

When every connection of httpx's pool (httpcore 1.x) is busy, each request that ends or arrives
makes the pool walk its waiting requests against its connections, at a cost of O(waiters x
connections) per event (encode/httpx#3215). A burst far larger than the pool then spends its time
in that walk: 500 callers making 2,000 GETs through the default pool of 100 connections to a fast
loopback server take about two minutes with plain httpx (``benchmarks/many_callers.py``), and the
attempt timeouts of a pipeline fire on requests that never left the client.

So a client or transport of this library that builds its own httpx connection pool lets no more
requests into it than it has connections: the others wait in a first-in-first-out queue (the
one the bulkhead waits in, ``policies/_waiters.py``), where joining and leaving cost O(1), and
no request waits inside the pool. A permit is held until the response is closed, as the
connection is; the wait honours the request's pool timeout with httpx's own
:class:`httpx.PoolTimeout`. httpx2 reworked its pool
(pydantic/httpx2#974 and #1075) and gets no queue; nor does HTTP/2, whose connections carry many
requests, nor a transport the caller built (its pool and limits are its own).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from .._clock import SYSTEM_CLOCK
from ..policies._waiters import WaitQueue
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
        self._permits = WaitQueue(None)  # active: the requests inside the pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Wait for a connection's permit, then send ``request`` through the pool."""
        permits = self._permits
        if permits.active < self._connections and not permits.waiters:
            permits.active += 1  # a free permit: taken without an await
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
        # httpx's own pool timeout runs in real time, whatever clock the pipeline has.
        if await self._permits.wait(pool_timeout, SYSTEM_CLOCK) is None:
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

    def __init__(self, stream: httpx.AsyncByteStream, permits: WaitQueue | None) -> None:
        self._stream = stream
        self._permits = permits

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()  # the pool's own iterator: no layer of ours per chunk

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
