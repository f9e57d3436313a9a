from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar, cast

import httpx
import pytest
import respx
import tenacity

from httpx_resilience import (
    Alternate,
    BulkheadRejected,
    Context,
    ExecutionReport,
    Pipeline,
    RateLimitRejected,
    ResilienceError,
    ResilienceTransport,
    ResilientClient,
    TimeoutRejected,
)
from httpx_resilience.testing import FakeClock

from ..flavours import httpx_only

pytestmark = pytest.mark.anyio
T = TypeVar("T")


class Upstream:
    """A MockTransport handler answering with ``statuses`` in turn (then 200)."""

    def __init__(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self.statuses = list(statuses)
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status, headers=self.headers, text=f"answer {len(self.requests)}")


def quick_retry(clock: FakeClock, attempts: int = 3) -> Pipeline:
    return (
        Pipeline.builder(clock=clock)
        .retry(max_attempts=attempts, backoff=tenacity.wait_fixed(0.25))
        .build()
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_client_retries_transient_statuses(clock: FakeClock) -> None:
    upstream = Upstream(503, 502)
    async with ResilientClient(
        pipeline=quick_retry(clock), transport=httpx.MockTransport(upstream)
    ) as client:
        response = await client.get("http://api.test/items")
    assert response.status_code == 200
    assert response.text == "answer 3"
    assert len(upstream.requests) == 3
    report = response.extensions["resilience"]
    assert isinstance(report, ExecutionReport)
    assert [cast(httpx.Response, a.result).status_code for a in report.attempts] == [503, 502, 200]
    assert report.outcome is report.attempts[-1]
    assert clock.monotonic() == 0.5


async def test_client_does_not_retry_client_errors(clock: FakeClock) -> None:
    upstream = Upstream(404)
    async with ResilientClient(
        pipeline=quick_retry(clock), transport=httpx.MockTransport(upstream)
    ) as client:
        response = await client.get("http://api.test/missing")
    assert response.status_code == 404
    assert len(upstream.requests) == 1


async def test_the_last_failed_response_is_returned_readable(clock: FakeClock) -> None:
    upstream = Upstream(503, 503, 503)
    async with ResilientClient(
        pipeline=quick_retry(clock), transport=httpx.MockTransport(upstream)
    ) as client:
        response = await client.get("http://api.test/")
    assert response.status_code == 503
    assert response.text == "answer 3"
    assert response.extensions["resilience"].retry_stopped == "max_attempts"


@pytest.mark.parametrize(
    ("method", "headers", "client_options", "expected_requests"),
    [
        ("POST", {}, {}, 1),
        ("PATCH", {}, {}, 1),
        ("POST", {"Idempotency-Key": "k-1"}, {}, 3),
        ("POST", {}, {"retry_non_idempotent": True}, 3),
        ("PUT", {}, {}, 3),
        ("DELETE", {}, {}, 3),
    ],
)
async def test_only_idempotent_requests_are_retried(
    clock: FakeClock,
    method: str,
    headers: dict[str, str],
    client_options: dict[str, Any],
    expected_requests: int,
) -> None:
    upstream = Upstream(503, 503)
    async with ResilientClient(
        pipeline=quick_retry(clock), transport=httpx.MockTransport(upstream), **client_options
    ) as client:
        response = await client.request(method, "http://api.test/", headers=headers, json={"a": 1})
    assert len(upstream.requests) == expected_requests
    assert response.status_code == (503 if expected_requests == 1 else 200)
    # The body went out whole on every try.
    assert {r.content for r in upstream.requests} == {b'{"a":1}'}


async def test_a_streamed_upload_is_sent_once(clock: FakeClock) -> None:
    upstream = Upstream(503)

    async def body() -> Any:
        yield b"part 1"
        yield b"part 2"

    async with ResilientClient(
        pipeline=quick_retry(clock), transport=httpx.MockTransport(upstream)
    ) as client:
        response = await client.put("http://api.test/upload", content=body())
    assert response.status_code == 503
    assert len(upstream.requests) == 1
    assert response.extensions["resilience"].retry_stopped == "not_replayable"


async def test_transport_errors_are_retried_and_the_last_one_raised(clock: FakeClock) -> None:
    attempts = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise httpx.ConnectError("connection refused", request=request)

    async with ResilientClient(
        pipeline=quick_retry(clock), transport=httpx.MockTransport(refuse)
    ) as client:
        with pytest.raises(httpx.ConnectError, match="refused"):
            await client.get("http://api.test/")
    assert attempts == 3


class Rejecting:
    """A policy that rejects every call with the given error."""

    def __init__(self, error: ResilienceError) -> None:
        self.error = error

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        raise self.error


@pytest.mark.parametrize(
    ("error", "httpx_base"),
    [
        (TimeoutRejected("too slow", timeout=2.0), "TimeoutException"),
        (RateLimitRejected("no token", retry_after=1.25), "TransportError"),
        (BulkheadRejected("full"), "TransportError"),
    ],
)
async def test_rejections_are_also_httpx_errors(error: ResilienceError, httpx_base: str) -> None:
    pipeline = Pipeline([Rejecting(error)])
    async with ResilientClient(pipeline=pipeline, transport=httpx.MockTransport(Upstream())) as c:
        with pytest.raises(type(error)) as info:
            await c.get("http://api.test/path")
    raised = info.value
    assert isinstance(raised, getattr(httpx, httpx_base))  # httpx2's errors through httpx2
    assert isinstance(raised, httpx.TransportError)
    assert isinstance(raised, httpx.RequestError)
    assert raised.request.url == "http://api.test/path"
    assert str(raised) == str(error)
    assert raised.__dict__.items() >= error.__dict__.items()
    assert type(raised).__name__ == type(error).__name__


async def test_rejections_through_the_transport_are_httpx_errors_too() -> None:
    transport = ResilienceTransport(
        Pipeline([Rejecting(TimeoutRejected("x", timeout=1))]), httpx.MockTransport(Upstream())
    )
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.TimeoutException):
            await client.get("http://api.test/")


async def test_transport_retries_and_reports(clock: FakeClock) -> None:
    upstream = Upstream(500)
    transport = ResilienceTransport(quick_retry(clock), httpx.MockTransport(upstream))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("http://api.test/")
    assert response.status_code == 200
    assert len(upstream.requests) == 2
    assert len(response.extensions["resilience"].attempts) == 2


async def test_a_single_successful_exchange_reports_one_attempt() -> None:
    async with ResilientClient(
        pipeline=Pipeline(), transport=httpx.MockTransport(Upstream())
    ) as client:
        response = await client.get("http://api.test/")
    report = response.extensions["resilience"]
    assert [(a.number, a.result) for a in report.attempts] == [(0, response)]
    assert report.outcome is report.attempts[0]


async def test_every_httpx_feature_keeps_working(clock: FakeClock) -> None:
    upstream = Upstream(503)
    hooked: list[str] = []

    async def on_response(response: httpx.Response) -> None:
        hooked.append(str(response.status_code))

    async with ResilientClient(
        pipeline=quick_retry(clock),
        transport=httpx.MockTransport(upstream),
        base_url="http://api.test/v1/",
        headers={"X-Client": "tests"},
        params={"key": "k"},
        auth=("user", "secret"),
        event_hooks={"response": [on_response]},
    ) as client:
        response = await client.get("things", params={"page": 2})
        async with client.stream("GET", "stream") as streamed:
            body = await streamed.aread()
    assert response.status_code == 200
    first = upstream.requests[0]
    assert str(first.url) == "http://api.test/v1/things?key=k&page=2"
    assert first.headers["x-client"] == "tests"
    assert first.headers["authorization"].startswith("Basic ")
    assert hooked == ["503", "200", "200"]
    assert body == b"answer 3"
    assert "resilience" in streamed.extensions


def test_the_default_pipeline_is_the_standard_one() -> None:
    client = ResilientClient()
    assert [type(p).__name__ for p in client.pipeline.policies] == [
        type(p).__name__ for p in Pipeline.standard().policies
    ]
    assert isinstance(ResilienceTransport().pipeline, Pipeline)


def test_bad_pipelines_are_refused() -> None:
    with pytest.raises(TypeError, match="ResilientClient: pipeline must be a Pipeline"):
        ResilientClient(pipeline="standard")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ResilienceTransport: pipeline must be a Pipeline"):
        ResilienceTransport(object())  # type: ignore[arg-type]


@pytest.fixture
def mocked_api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url="http://respx.test", assert_all_called=True) as router:
        yield router


@httpx_only  # respx mocks httpx's transports only
async def test_transport_over_the_real_http_transport_with_respx(
    mocked_api: respx.MockRouter, clock: FakeClock
) -> None:
    route = mocked_api.get("/flaky").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.Response(429, headers={"Retry-After": "2"}),
            httpx.Response(200, json={"ok": True}),
        ]
    )
    transport = ResilienceTransport(quick_retry(clock), httpx.AsyncHTTPTransport())
    async with httpx.AsyncClient(transport=transport, base_url="http://respx.test") as client:
        response = await client.get("/flaky")
    assert response.json() == {"ok": True}
    assert route.call_count == 3
    delays = [a.delay for a in response.extensions["resilience"].attempts]
    assert delays == [0.25, 2.0, None]
    assert clock.monotonic() == 2.25


class ExecutionTimer:
    """An execution listener keeping the status (or exception) each execution ended with."""

    def __init__(self) -> None:
        self.executions: list[str] = []

    def __call__(self, event: Any) -> None:
        pass

    def on_execution(
        self, context: Context, duration: float, exception: BaseException | None
    ) -> None:
        assert duration >= 0
        assert context.request is not None
        ended = type(exception).__name__ if exception is not None else "ok"
        self.executions.append(f"{context.request.url.host} {ended}")


async def test_an_alternates_pipeline_reports_its_executions_to_its_listeners() -> None:
    primary_timer, alternate_timer = ExecutionTimer(), ExecutionTimer()
    alternate = Alternate(
        "http://mirror.test",
        transport=httpx.MockTransport(Upstream()),
        pipeline=Pipeline([], listeners=[alternate_timer]),
    )
    pipeline = Pipeline.builder(listeners=[primary_timer]).fallback(alternate=alternate).build()
    transport = httpx.MockTransport(Upstream(503))
    async with ResilientClient(pipeline=pipeline, transport=transport) as client:
        response = await client.get("http://primary.test/")
    assert response.status_code == 200
    assert response.extensions["resilience"].fallback == "alternate"
    assert primary_timer.executions == ["primary.test ok"]
    assert alternate_timer.executions == ["mirror.test ok"]
