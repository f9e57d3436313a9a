"""Failures in the middle of a response body: what the client covers and the transport does not."""

from __future__ import annotations

import httpx
import pytest
import tenacity

from httpx_resilience import (
    ExecutionReport,
    Pipeline,
    ResilienceTransport,
    ResilientClient,
    SystemClock,
    TimeoutRejected,
)
from httpx_resilience._loopback import LoopbackServer, Reply
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio

RESET_MID_BODY = Reply(200, body=b"a" * 1000, reset_after=100)


def retrying(*, attempts: int = 3, attempt_timeout: float | None = None) -> Pipeline:
    """Retry with virtual waits of 0.1 s; the attempt timeout, if any, runs on real time."""
    builder = Pipeline.builder(clock=FakeClock()).retry(
        max_attempts=attempts, backoff=tenacity.wait_fixed(0.1)
    )
    if attempt_timeout is not None:
        builder = builder.timeout(attempt_timeout, clock=SystemClock())
    return builder.build()


def report_of(response: httpx.Response) -> ExecutionReport:
    report = response.extensions["resilience"]
    assert isinstance(report, ExecutionReport)
    return report


# -- a connection reset in the middle of the body ---------------------------------------------


async def test_client_retries_a_reset_in_the_middle_of_the_body(server: LoopbackServer) -> None:
    server.script(RESET_MID_BODY, Reply(200, body=b"good"))
    async with ResilientClient(pipeline=retrying(), base_url=server.url) as client:
        response = await client.get("/doc")

    assert response.status_code == 200
    assert response.content == b"good"
    assert server.paths() == ["/doc", "/doc"]
    attempts = report_of(response).attempts
    assert isinstance(attempts[0].exception, httpx.ReadError)
    assert attempts[0].delay == 0.1
    assert attempts[1].result is response


async def test_transport_surfaces_a_reset_in_the_middle_of_the_body(
    server: LoopbackServer,
) -> None:
    """The documented limit: a transport covers the exchange up to the headers only."""
    server.script(RESET_MID_BODY, Reply(200, body=b"good"))
    transport = ResilienceTransport(retrying())
    async with httpx.AsyncClient(transport=transport, base_url=server.url) as client:
        with pytest.raises(httpx.ReadError):
            await client.get("/doc")

    assert server.paths() == ["/doc"]


async def test_streamed_body_reset_reaches_the_caller(server: LoopbackServer) -> None:
    """A streamed body is read after the pipeline has returned, so a reset is not retried."""
    server.script(RESET_MID_BODY, Reply(200, body=b"good"))
    async with (
        ResilientClient(pipeline=retrying(), base_url=server.url) as client,
        client.stream("GET", "/doc") as response,
    ):
        assert response.status_code == 200
        assert len(report_of(response).attempts) == 1
        with pytest.raises(httpx.ReadError):
            await response.aread()

    assert server.paths() == ["/doc"]


# -- a body that never ends -------------------------------------------------------------------


async def test_attempt_timeout_cuts_an_endless_body_and_retries(server: LoopbackServer) -> None:
    """Bytes keep coming, so httpx's read timeout (0.1 s) never fires; the attempt timeout does,
    and it is a retryable failure."""
    server.script(Reply(endless=True, chunk_delay=0.02), Reply(200, body=b"finite"))
    async with ResilientClient(
        pipeline=retrying(attempts=2, attempt_timeout=0.25),
        base_url=server.url,
        timeout=httpx.Timeout(2.0, read=0.1),
    ) as client:
        response = await client.get("/feed")

    assert response.status_code == 200
    assert response.content == b"finite"
    assert server.paths() == ["/feed", "/feed"]
    first, second = report_of(response).attempts
    assert isinstance(first.exception, TimeoutRejected)
    assert first.delay == 0.1
    assert second.result is response


async def test_endless_body_on_every_attempt_raises_timeout_rejected(
    server: LoopbackServer,
) -> None:
    server.set_handler(lambda request: Reply(endless=True, chunk_delay=0.02))
    async with ResilientClient(
        pipeline=retrying(attempts=2, attempt_timeout=0.2),
        base_url=server.url,
        timeout=httpx.Timeout(2.0, read=0.1),
    ) as client:
        request = client.build_request("GET", "/feed")
        with pytest.raises(TimeoutRejected) as caught:
            await client.send(request)

    assert isinstance(caught.value, httpx.TimeoutException)
    assert caught.value.request is request
    assert server.paths() == ["/feed", "/feed"]
