"""Hedging through ResilienceTransport gives every connection back, even when the caller is
cancelled just as a response arrives."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import httpx
import pytest

from httpx_resilience import Context, Hedging, Pipeline, ResilienceTransport
from httpx_resilience._loopback import LoopbackServer, Reply

from .conftest import TEST_TIMEOUT

pytestmark = pytest.mark.anyio

T = TypeVar("T")


class CancelOnAnswer:
    """A policy that cancels the caller's scope at the moment an answer comes back from inside."""

    def __init__(self) -> None:
        self.scope: anyio.CancelScope | None = None

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        result = await next(context)
        if self.scope is not None:
            self.scope.cancel()
            self.scope = None
        return result


async def test_a_caller_cancelled_as_a_hedged_response_arrives_leaves_no_connection_taken(
    server: LoopbackServer,
) -> None:
    server.set_handler(lambda request: Reply(200, body=b"answer"))
    trigger = CancelOnAnswer()
    pipeline = Pipeline([Hedging(delay=10.0), trigger])
    transport = ResilienceTransport(
        pipeline,
        transport=httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=1)),
    )
    async with httpx.AsyncClient(
        transport=transport, base_url=server.url, timeout=TEST_TIMEOUT
    ) as client:
        with anyio.CancelScope() as scope:
            trigger.scope = scope
            await client.get("/first")
        assert scope.cancelled_caught
        # The response the cancelled caller never saw was closed: the one connection is free.
        response = await client.get("/second")
        assert response.text == "answer"
