"""Fixtures for the HTTP layer against the real loopback server (127.0.0.1 only)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import httpx
import pytest

from httpx_resilience import Pipeline, ResilienceTransport, ResilientClient
from httpx_resilience._loopback import LoopbackServer

from ..flavours import Flavour, switch_test_modules

#: httpx timeouts for the tests: short enough that a leaked connection shows up quickly as a
#: PoolTimeout, long enough never to fire on a healthy loopback exchange.
TEST_TIMEOUT = httpx.Timeout(2.0, pool=0.5)


@pytest.fixture(autouse=True)
def _on_flavour(flavour: Flavour, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every integration test runs on httpx and on httpx2 (see tests/flavours.py)."""
    switch_test_modules(flavour, monkeypatch)


class MakeClient(Protocol):
    """Build an ``httpx.AsyncClient`` whose requests to the server run through ``pipeline``."""

    def __call__(
        self,
        pipeline: Pipeline,
        *,
        limits: httpx.Limits | None = None,
        retry_non_idempotent: bool = False,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.AsyncClient: ...


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    """A started loopback server, stopped after the test."""
    srv = LoopbackServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def mirror() -> Iterator[LoopbackServer]:
    """A second started loopback server: an alternate provider."""
    srv = LoopbackServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(params=["client", "transport"])
def make_client(request: pytest.FixtureRequest, server: LoopbackServer) -> MakeClient:
    """Either a ``ResilientClient`` or a plain ``httpx.AsyncClient`` with a
    ``ResilienceTransport``: the behaviours both must share run on both."""
    kind: str = request.param

    def make(
        pipeline: Pipeline,
        *,
        limits: httpx.Limits | None = None,
        retry_non_idempotent: bool = False,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.AsyncClient:
        # Read here, not as defaults: the flavour under test swaps them (tests/flavours.py).
        timeout = timeout if timeout is not None else TEST_TIMEOUT
        pool = limits if limits is not None else httpx.Limits()
        if kind == "client":
            return ResilientClient(
                pipeline=pipeline,
                retry_non_idempotent=retry_non_idempotent,
                base_url=server.url,
                limits=pool,
                timeout=timeout,
            )
        transport = ResilienceTransport(
            pipeline,
            httpx.AsyncHTTPTransport(limits=pool),
            retry_non_idempotent=retry_non_idempotent,
        )
        return httpx.AsyncClient(transport=transport, base_url=server.url, timeout=timeout)

    return make
