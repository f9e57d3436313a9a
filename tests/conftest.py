from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs on both backends."""
    return str(request.param)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """The URL of a ``redis-server`` of this test's own (for pages and examples that need one).

    Skips, saying how to install it, without ``redis-server`` on PATH; fails instead with
    ``HTTPX_RESILIENCE_REQUIRE_REDIS=1``, as in CI.
    """
    pytest.importorskip("redis.asyncio", reason="the redis extra is not installed")
    from .integration.redis_backend._server import RedisServer, redis_server_executable

    server = RedisServer(redis_server_executable(), tmp_path).start()
    try:
        yield server.url
    finally:
        server.stop()
