"""A server that accepts a request and never answers: attempt and total timeouts."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest
import tenacity

from httpx_resilience import (
    ExecutionReport,
    Pipeline,
    ResilientClient,
    SystemClock,
    TimeoutRejected,
)
from httpx_resilience._loopback import LoopbackServer, Reply
from httpx_resilience.testing import FakeClock

from .conftest import MakeClient

pytestmark = pytest.mark.anyio

ATTEMPT_TIMEOUT = 0.15


def retry_with_attempt_timeout(attempts: int) -> Pipeline:
    """Retry (virtual 0.1 s waits) around a real-time attempt timeout."""
    return (
        Pipeline.builder(clock=FakeClock())
        .retry(max_attempts=attempts, backoff=tenacity.wait_fixed(0.1))
        .timeout(ATTEMPT_TIMEOUT, clock=SystemClock())
        .build()
    )


async def test_hanging_attempt_times_out_and_is_retried(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.script(Reply(hang=True), Reply(200, body=b"answered"))
    async with make_client(retry_with_attempt_timeout(3)) as client:
        response = await client.get("/slow")

    assert response.status_code == 200
    assert response.content == b"answered"
    assert server.paths() == ["/slow", "/slow"]
    report = response.extensions["resilience"]
    assert isinstance(report, ExecutionReport)
    first, second = report.attempts
    assert isinstance(first.exception, TimeoutRejected)
    assert first.delay == 0.1
    assert second.result is response


async def test_every_attempt_hanging_raises_timeout_rejected_as_an_httpx_error(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.set_handler(lambda request: Reply(hang=True))
    async with make_client(retry_with_attempt_timeout(3)) as client:
        request = client.build_request("GET", "/slow")
        with pytest.raises(TimeoutRejected) as caught:
            await client.send(request)

    exc = caught.value
    assert isinstance(exc, httpx.TimeoutException)
    assert isinstance(exc, httpx.TransportError)
    assert exc.request is request
    assert server.paths() == ["/slow"] * 3


async def test_httpx_code_catches_the_rejection(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    """``except httpx.TimeoutException`` keeps working for code written against httpx."""
    server.set_handler(lambda request: Reply(hang=True))
    async with make_client(retry_with_attempt_timeout(1)) as client:
        try:
            await client.get("/slow")
        except httpx.TimeoutException as exc:
            caught: httpx.TimeoutException = exc
        else:
            pytest.fail("no timeout raised")

    assert isinstance(caught, TimeoutRejected)
    assert caught.request.url == httpx.URL(f"{server.url}/slow")
    assert server.paths() == ["/slow"]


async def test_total_timeout_outside_the_retry_cuts_the_whole_execution(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    """Ten attempts of 0.2 s would take 2 s; the 0.3 s total timeout ends it after at most two
    (the second one cut short by the total deadline)."""
    server.set_handler(lambda request: Reply(hang=True))
    pipeline = (
        Pipeline.builder()
        .timeout(0.3)
        .retry(max_attempts=10, backoff=tenacity.wait_fixed(0.01))
        .timeout(0.2)
        .build()
    )
    async with make_client(pipeline) as client:
        request = client.build_request("GET", "/slow")
        with pytest.raises(TimeoutRejected) as caught:
            await client.send(request)

    assert isinstance(caught.value, httpx.TimeoutException)
    assert caught.value.request is request
    assert caught.value.timeout <= 0.3
    assert 1 <= len(server.requests) <= 2


async def test_total_timeout_cuts_a_single_hanging_attempt(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.set_handler(lambda request: Reply(hang=True))
    pipeline = (
        Pipeline.builder().timeout(0.2).retry(max_attempts=5, backoff=tenacity.wait_fixed(0.01))
    ).build()
    async with make_client(pipeline) as client:
        with pytest.raises(TimeoutRejected) as caught:
            await client.get("/slow")

    assert str(caught.value) == "the call did not finish within 0.2 s"
    assert server.paths() == ["/slow"]


class EpochScaleClock:
    """Real time, read on the scale of ``time.time()`` (here 2**31 s and up): a valid Clock,
    since only differences of its readings mean anything."""

    def monotonic(self) -> float:
        return time.monotonic() + 2.0**31

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


async def test_timeout_rejected_names_the_configured_timeout(server: LoopbackServer) -> None:
    """``TimeoutRejected.timeout`` is the timeout that ran out: the configured 0.2 s, not a
    value recomputed from clock readings. Between 2**31 and 2**32, ``(now + 0.2) - now`` is
    0.19999980926513672 for every ``now``, so this clock makes the difference deterministic
    (with the system clock it depends on the magnitude of ``time.monotonic()``)."""
    server.set_handler(lambda request: Reply(hang=True))
    pipeline = Pipeline.builder(clock=EpochScaleClock()).timeout(0.2).build()
    async with ResilientClient(pipeline=pipeline, base_url=server.url) as client:
        with pytest.raises(TimeoutRejected) as caught:
            await client.get("/slow")

    assert str(caught.value) == "the call did not finish within 0.2 s"
    assert caught.value.timeout == 0.2
