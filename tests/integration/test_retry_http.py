"""Retrying transient responses against a real server: status codes, Retry-After, the
connection pool, and the report on every response."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable

import httpx
import pytest
import tenacity

from httpx_resilience import ExecutionReport, Pipeline, ResilientClient
from httpx_resilience._loopback import LoopbackServer, Reply
from httpx_resilience.testing import FakeClock

from .conftest import MakeClient

pytestmark = pytest.mark.anyio


def retrying(
    clock: FakeClock, *, attempts: int = 3, wait: float = 0.1, max_retry_after: float = 60.0
) -> Pipeline:
    """A retry with a fixed backoff, waiting on ``clock`` (virtual waits, real I/O)."""
    return (
        Pipeline.builder(clock=clock)
        .retry(
            max_attempts=attempts,
            backoff=tenacity.wait_fixed(wait),
            max_retry_after=max_retry_after,
        )
        .build()
    )


def report_of(response: httpx.Response) -> ExecutionReport:
    report = response.extensions["resilience"]
    assert isinstance(report, ExecutionReport)
    return report


def statuses(report: ExecutionReport) -> list[int | None]:
    """The status code each attempt got (``None`` where it raised)."""
    return [getattr(a.result, "status_code", None) for a in report.attempts]


# -- 503, 503, 200 ----------------------------------------------------------------------------


async def test_two_503s_then_200_is_retried_to_success(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.script(Reply(503, body=b"busy"), Reply(503, body=b"busy"), Reply(200, body=b"hello"))
    clock = FakeClock()
    async with make_client(retrying(clock, attempts=3, wait=0.5)) as client:
        response = await client.get("/items")

    assert response.status_code == 200
    assert response.content == b"hello"
    assert server.paths() == ["/items"] * 3
    report = report_of(response)
    assert [a.number for a in report.attempts] == [0, 1, 2]
    assert statuses(report) == [503, 503, 200]
    assert [a.delay for a in report.attempts] == [0.5, 0.5, None]
    assert report.retry_stopped is None
    assert report.total_wait == 1.0
    assert clock.monotonic() == 1.0  # the waits ran on the fake clock, exactly


async def test_503_on_every_attempt_returns_the_last_503(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.script(*[Reply(503, body=f"busy {i}".encode()) for i in range(3)], Reply(200))
    async with make_client(retrying(FakeClock(), attempts=3)) as client:
        response = await client.get("/")

    assert response.status_code == 503
    assert response.content == b"busy 2"
    assert len(server.requests) == 3
    report = report_of(response)
    assert [a.delay for a in report.attempts] == [0.1, 0.1, None]
    assert report.retry_stopped == "max_attempts"


async def test_non_transient_status_is_not_retried(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.script(Reply(404, body=b"no such thing"), Reply(200))
    async with make_client(retrying(FakeClock())) as client:
        response = await client.get("/missing")

    assert response.status_code == 404
    assert response.content == b"no such thing"
    assert len(server.requests) == 1
    report = report_of(response)
    assert len(report.attempts) == 1
    assert report.retry_stopped is None


# -- Retry-After ------------------------------------------------------------------------------


async def test_retry_after_seconds_raises_the_wait(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.script(Reply(429, headers=[("Retry-After", "1")]), Reply(200, body=b"ok now"))
    async with make_client(retrying(FakeClock(), wait=0.1)) as client:
        response = await client.get("/")

    assert response.status_code == 200
    assert response.content == b"ok now"
    assert len(server.requests) == 2
    report = report_of(response)
    assert [a.delay for a in report.attempts] == [1.0, None]


async def test_retry_after_http_date_raises_the_wait(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    target = int(time.time()) + 5  # a whole second: an HTTP-date has no fractions
    server.script(
        Reply(503, headers=[("Retry-After", email.utils.formatdate(target, usegmt=True))]),
        Reply(200),
    )
    async with make_client(retrying(FakeClock(), wait=0.1)) as client:
        before = time.time()
        response = await client.get("/")
        after = time.time()

    assert response.status_code == 200
    delay = report_of(response).attempts[0].delay
    assert delay is not None
    # The header was read between ``before`` and ``after``: the wait is the date's distance then.
    assert 0.1 <= target - after <= delay <= target - before


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("soon", id="garbage"),
        pytest.param("-5", id="negative"),
        pytest.param("", id="empty"),
        pytest.param(email.utils.formatdate(time.time() - 3600, usegmt=True), id="past-date"),
    ],
)
async def test_unusable_retry_after_falls_back_to_the_backoff(
    server: LoopbackServer, make_client: MakeClient, value: str
) -> None:
    server.script(Reply(429, headers=[("Retry-After", value)]), Reply(200))
    async with make_client(retrying(FakeClock(), wait=0.1)) as client:
        response = await client.get("/")

    assert response.status_code == 200
    assert len(server.requests) == 2
    assert [a.delay for a in report_of(response).attempts] == [0.1, None]


async def test_retry_after_over_the_maximum_stops_retrying_at_once(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.script(Reply(429, headers=[("Retry-After", "10")], body=b"slow down"), Reply(200))
    clock = FakeClock()
    async with make_client(retrying(clock, wait=0.1, max_retry_after=5.0)) as client:
        response = await client.get("/")

    assert response.status_code == 429
    assert response.content == b"slow down"
    assert response.headers["retry-after"] == "10"
    assert len(server.requests) == 1
    report = report_of(response)
    assert report.retry_stopped == "retry_after"
    assert [a.delay for a in report.attempts] == [None]
    assert clock.monotonic() == 0.0  # it did not wait at all


# -- the connection pool ----------------------------------------------------------------------


async def test_failed_responses_release_their_connection_for_the_next_attempt(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    """With one connection allowed, each failed response must be read and closed before the
    next attempt, or that attempt waits for the pool in vain (PoolTimeout)."""
    failures = [Reply(503, body=b"x" * 5000, chunks=3) for _ in range(3)]
    server.script(*failures, Reply(200, body=b"done"))
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with make_client(retrying(FakeClock(), attempts=4), limits=limits) as client:
        response = await client.get("/first")
        again = await client.get("/second")

    assert response.status_code == 200
    assert response.content == b"done"
    assert statuses(report_of(response)) == [503, 503, 503, 200]
    assert again.status_code == 200
    assert server.paths() == ["/first"] * 4 + ["/second"]
    assert server.connections_opened == 1
    assert {r.connection for r in server.requests} == {1}


async def test_streamed_request_releases_failed_responses(server: LoopbackServer) -> None:
    """``ResilientClient.stream``: the failed responses of a streamed request arrive unread and
    must be read and closed by the retry, or the single connection stays taken."""
    server.script(Reply(503, body=b"x" * 5000, chunks=3), Reply(502), Reply(200, body=b"streamed"))
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with (
        ResilientClient(
            pipeline=retrying(FakeClock()),
            base_url=server.url,
            limits=limits,
            timeout=httpx.Timeout(2.0, pool=0.5),
        ) as client,
        client.stream("GET", "/feed") as response,
    ):
        body = await response.aread()

    assert body == b"streamed"
    assert statuses(report_of(response)) == [503, 502, 200]
    assert server.connections_opened == 1


# -- the report on every response -------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: Pipeline.builder().build(), id="empty-pipeline"),
        pytest.param(lambda: Pipeline.builder().retry().timeout(5.0).build(), id="retry-timeout"),
        pytest.param(Pipeline.standard, id="standard"),
    ],
)
async def test_single_attempt_success_carries_a_report(
    server: LoopbackServer, make_client: MakeClient, build: Callable[[], Pipeline]
) -> None:
    async with make_client(build()) as client:
        response = await client.get("/")

    assert response.status_code == 200
    report = report_of(response)
    assert len(report.attempts) == 1
    attempt = report.attempts[0]
    assert attempt.number == 0
    assert attempt.exception is None
    assert attempt.result is response
    assert attempt.delay is None
    assert report.retry_stopped is None


async def test_default_resilient_client_attaches_a_report(server: LoopbackServer) -> None:
    async with ResilientClient(base_url=server.url) as client:
        response = await client.get("/")
        async with client.stream("GET", "/streamed") as streamed:
            body = await streamed.aread()

    assert len(report_of(response).attempts) == 1
    assert body == b"ok"
    assert len(report_of(streamed).attempts) == 1
