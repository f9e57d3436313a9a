"""Fixtures for the tests against a real ``redis-server`` (see ``_server.py``).

Without ``redis-server`` on PATH these tests skip, saying how to install it; with
``HTTPX_RESILIENCE_REQUIRE_REDIS=1`` (as in CI) they fail instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ._server import RedisServer, redis_server_executable

if TYPE_CHECKING:
    import redis.asyncio

redis_asyncio = pytest.importorskip("redis.asyncio", reason="the redis extra is not installed")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A ``redis-server`` of this test's own on 127.0.0.1 at a free port, stopped after it."""
    server = RedisServer(redis_server_executable(), tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    """A ``redis.asyncio.Redis`` client of that server, closed after the test."""
    client = redis_asyncio.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        yield client
    finally:
        await client.aclose()
