from __future__ import annotations

import email.utils
import math
from typing import Any

import anyio
import httpx
import pytest
import tenacity

from httpx_resilience import (
    BrokenCircuitError,
    BulkheadRejected,
    Context,
    Outcome,
    Pipeline,
    RateLimitRejected,
    ResilienceError,
    ResilientClient,
    TimeoutRejected,
)
from httpx_resilience._loopback import LoopbackServer, Reply
from httpx_resilience.http._errors import as_httpx_error
from httpx_resilience.http.classify import (
    HTTP_CLASSIFIER,
    can_replay,
    is_idempotent,
    parse_retry_after,
    transient,
)
from httpx_resilience.testing import FakeClock

from ..flavours import httpx_only

REQUEST = httpx.Request("GET", "http://127.0.0.1/")


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused", request=REQUEST),
        httpx.ReadError("reset", request=REQUEST),
        httpx.ReadTimeout("slow", request=REQUEST),
        httpx.PoolTimeout("pool", request=REQUEST),
        httpx.RemoteProtocolError("bad server", request=REQUEST),
        TimeoutRejected("attempt timeout", timeout=1.0),
    ],
)
def test_transient_errors(exc: Exception) -> None:
    assert transient(Outcome(exception=exc))
    assert HTTP_CLASSIFIER.is_failure(Outcome(exception=exc))


@pytest.mark.parametrize(
    "exc",
    [
        httpx.UnsupportedProtocol("ftp://", request=REQUEST),
        httpx.LocalProtocolError("our bug", request=REQUEST),
        BrokenCircuitError("open", retry_after=1.0),
        ValueError("not a transport problem"),
    ],
)
def test_errors_that_are_not_transient(exc: Exception) -> None:
    assert not transient(Outcome(exception=exc))


@pytest.mark.parametrize(
    "rejection",
    [
        BrokenCircuitError("open", retry_after=1.0),
        BulkheadRejected("full"),
        RateLimitRejected("empty", retry_after=0.5),
    ],
)
def test_a_rejection_is_never_transient_even_as_an_httpx_error(rejection: Exception) -> None:
    # What a ResilientClient raises is also an httpx.TransportError; a retry or breaker around
    # that client (a pipeline calling a client that has its own) must still not handle it.
    assert isinstance(rejection, ResilienceError)
    converted = as_httpx_error(rejection, REQUEST)
    assert isinstance(converted, httpx.TransportError)
    for exc in (rejection, converted):
        assert not transient(Outcome(exception=exc))
        assert not HTTP_CLASSIFIER.is_failure(Outcome(exception=exc))
    timeout = as_httpx_error(TimeoutRejected("slow", timeout=1.0), REQUEST)
    assert isinstance(timeout, httpx.TimeoutException)
    assert transient(Outcome(exception=timeout))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses(status: int) -> None:
    assert transient(Outcome(result=httpx.Response(status)))


@pytest.mark.parametrize("status", [200, 201, 301, 304, 400, 401, 403, 404, 409, 422, 501, 505])
def test_statuses_that_are_not_transient(status: int) -> None:
    assert not transient(Outcome(result=httpx.Response(status)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("999999999999999", 999999999999999.0),
        # Too long to wait for is "too long", not garbage: the retry stops rather than ignore it.
        ("1234567890123456", 1234567890123456.0),
        ("9" * 400, math.inf),
        # HTTP numbers are ASCII digits (RFC 9110), whatever Python's int() and float() accept;
        # whitespace around them is spaces and tabs.
        ("\u0661\u0662\u0660", None),  # Arabic-Indic 120
        ("\uff11\uff12", None),  # fullwidth 12
        ("\u00b2", None),  # superscript two
        ("1.\u0665", None),
        ("\u00a0120", None),  # no-break space
        ("\t7 ", 7.0),
        ("-1", None),
        ("soon", None),
        ("", None),
        ("inf", None),
        ("nan", None),
        ("1e3", None),
        ("12 seconds", None),
        ("0x10", None),
    ],
)
def test_retry_after_delay_seconds(value: str, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        ("Tue, 14 Nov 2023 22:14:20 GMT", 60.0),  # IMF-fixdate
        ("Tuesday, 14-Nov-23 22:14:20 GMT", 60.0),  # RFC 850
        ("Tue Nov 14 22:14:20 2023", 60.0),  # asctime, no zone: GMT
        ("Tue, 14 Nov 2023 22:13:20 GMT", None),  # now: nothing to wait
        ("Tue, 14 Nov 2023 22:00:00 GMT", None),  # past
        ("Tue, 32 Nov 2023 22:14:20 GMT", None),  # not a date
        ("Someday, soon", None),
        ("Tue, \u0661\u0664 Nov 2023 22:14:20 GMT", None),  # Arabic-Indic day
    ],
)
def test_retry_after_http_dates(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_retry_after_http_date_uses_the_wall_clock_by_default() -> None:
    future = email.utils.formatdate(__import__("time").time() + 3600, usegmt=True)
    delay = parse_retry_after(future)
    assert delay is not None
    assert 3590 < delay <= 3600


def retrying(clock: FakeClock) -> Pipeline:
    return (
        Pipeline.builder(clock=clock)
        .retry(max_attempts=3, backoff=tenacity.wait_fixed(0.1), max_retry_after=60.0)
        .build()
    )


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["1" * 16, "9" * 400])
async def test_a_huge_retry_after_stops_the_retry_as_too_long(value: str) -> None:
    clock = FakeClock()
    context = Context(classifier=HTTP_CLASSIFIER)

    async def throttled() -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value})

    response = await retrying(clock).execute(throttled, context)
    assert response.status_code == 429
    assert context.report.retry_stopped == "retry_after"
    assert [a.delay for a in context.report.attempts] == [None]
    assert clock.monotonic() == 0.0


@pytest.mark.anyio
async def test_a_retry_after_in_non_ascii_digits_is_ignored_for_the_backoff() -> None:
    clock = FakeClock()
    context = Context(classifier=HTTP_CLASSIFIER)
    replies = iter([429, 200])

    async def throttled_once() -> httpx.Response:
        # Arabic-Indic 30, in UTF-8 bytes as a server would send it.
        return httpx.Response(next(replies), headers=[(b"Retry-After", "\u0663\u0660".encode())])

    response = await retrying(clock).execute(throttled_once, context)
    assert response.status_code == 200
    assert [a.delay for a in context.report.attempts] == [0.1, None]
    assert clock.monotonic() == 0.1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("value", "sent", "delays", "stopped"),
    [
        pytest.param(b"1" * 20, 1, [None], "retry_after", id="huge"),
        pytest.param("\u0663\u0660".encode(), 2, [0.1, None], None, id="non-ascii-digits"),
    ],
)
async def test_retry_after_from_a_real_server(
    value: bytes, sent: int, delays: list[float | None], stopped: str | None
) -> None:
    clock = FakeClock()
    with LoopbackServer() as server:
        # The header goes out as raw bytes (UTF-8 for the non-ASCII digits), as a server sends it.
        headers: Any = [("Retry-After", value)]
        server.script(Reply(429, headers=headers), Reply(200))
        async with ResilientClient(pipeline=retrying(clock), base_url=server.url) as client:
            response = await client.get("/")
        assert len(server.requests) == sent
    report = response.extensions["resilience"]
    assert [a.delay for a in report.attempts] == delays
    assert report.retry_stopped == stopped


def test_the_classifier_reads_retry_after_from_responses_only() -> None:
    response = httpx.Response(429, headers={"Retry-After": "7"})
    assert HTTP_CLASSIFIER.retry_after(Outcome(result=response)) == 7.0
    assert HTTP_CLASSIFIER.retry_after(Outcome(result=httpx.Response(503))) is None
    assert HTTP_CLASSIFIER.retry_after(Outcome(result="not a response")) is None
    assert HTTP_CLASSIFIER.retry_after(Outcome(exception=ValueError())) is None
    # A rejection says itself when to come back (for a retry told to handle rejections).
    rejected = RateLimitRejected("empty", retry_after=0.25)
    assert HTTP_CLASSIFIER.retry_after(Outcome(exception=rejected)) == 0.25


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", {}, True),
        ("HEAD", {}, True),
        ("OPTIONS", {}, True),
        ("PUT", {}, True),
        ("DELETE", {}, True),
        ("TRACE", {}, True),
        ("POST", {}, False),
        ("PATCH", {}, False),
        ("POST", {"Idempotency-Key": "abc"}, True),
        ("PATCH", {"idempotency-key": "abc"}, True),
    ],
)
def test_idempotency(method: str, headers: dict[str, str], expected: bool) -> None:
    request = httpx.Request(method, "http://127.0.0.1/", headers=headers)
    assert is_idempotent(request) is expected
    assert can_replay(request) is expected
    assert can_replay(request, retry_non_idempotent=True)


def test_bodies_that_can_and_cannot_be_sent_twice() -> None:
    assert can_replay(httpx.Request("PUT", "http://127.0.0.1/", content=b"bytes"))
    assert can_replay(httpx.Request("PUT", "http://127.0.0.1/", json={"a": 1}))
    assert can_replay(httpx.Request("PUT", "http://127.0.0.1/", data={"a": "1"}))

    async def chunks() -> object:
        yield b"streamed"

    streamed = httpx.Request("PUT", "http://127.0.0.1/", content=chunks())  # type: ignore[arg-type]
    assert not can_replay(streamed)
    assert not can_replay(streamed, retry_non_idempotent=True)


class Body(httpx.AsyncByteStream):
    """A response body of ``size`` bytes that records how much was read and whether closed.

    An iterator class, not an async generator, as connection streams are: a generator
    abandoned half-way would be finalized by the garbage collector instead.
    """

    def __init__(self, size: int, chunk: int = 1024) -> None:
        self.size = size
        self.chunk = chunk
        self.sent = 0
        self.closed = False

    def __aiter__(self) -> Body:
        return self

    async def __anext__(self) -> bytes:
        if self.sent >= self.size:
            raise StopAsyncIteration
        piece = min(self.chunk, self.size - self.sent)
        self.sent += piece
        return b"x" * piece

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.anyio
@httpx_only  # Body is an httpx stream
async def test_discard_reads_a_short_body_to_the_end_and_closes() -> None:
    body = Body(10_000)
    response = httpx.Response(503, stream=body, request=REQUEST)
    await HTTP_CLASSIFIER.discard(Outcome(result=response))
    assert body.sent == 10_000
    assert body.closed
    assert response.is_closed


@pytest.mark.anyio
@httpx_only  # Body is an httpx stream
async def test_discard_cuts_a_long_body_short() -> None:
    body = Body(10_000_000)
    response = httpx.Response(503, stream=body, request=REQUEST)
    await HTTP_CLASSIFIER.discard(Outcome(result=response))
    assert body.sent <= 70 * 1024
    assert body.closed


@pytest.mark.anyio
@httpx_only  # Body is an httpx stream
async def test_discard_gives_up_on_a_body_that_never_ends() -> None:
    class Endless(Body):
        async def __anext__(self) -> bytes:
            await anyio.sleep(0.01)
            return b"x"

    body = Endless(0)
    response = httpx.Response(503, stream=body, request=REQUEST)
    with anyio.fail_after(5):
        await HTTP_CLASSIFIER.discard(Outcome(result=response))
    assert body.closed


@pytest.mark.anyio
async def test_discard_ignores_what_is_not_an_open_response() -> None:
    await HTTP_CLASSIFIER.discard(Outcome(result="text"))
    await HTTP_CLASSIFIER.discard(Outcome(exception=ValueError()))
    response = httpx.Response(503, content=b"read already")
    await HTTP_CLASSIFIER.discard(Outcome(result=response))
    assert response.is_closed
