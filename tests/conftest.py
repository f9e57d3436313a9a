from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .flavours import Flavour, make_flavour, parametrize_flavour


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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The HTTP tests run once per flavour, httpx and httpx2 (see tests/flavours.py)."""
    parametrize_flavour(metafunc)


@pytest.fixture
def flavour(request: pytest.FixtureRequest) -> Flavour:
    """httpx or httpx2 (the test is parametrized over both)."""
    return make_flavour(str(request.param))
