from __future__ import annotations

import logging
from typing import Any

import anyio
import httpx
import pytest
import tenacity
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from httpx_resilience import (
    BrokenCircuitError,
    Context,
    Pipeline,
    Registry,
    ResilienceEvent,
    ResilientClient,
)
from httpx_resilience.telemetry import (
    DURATION_BUCKETS,
    EVENT_NAMES,
    OpenTelemetryListener,
    safe_url,
)
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio


def flaky_transport(*statuses: int) -> httpx.MockTransport:
    answers = list(statuses)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0) if answers else 200, text="secret body")

    return httpx.MockTransport(handler)


def quick_retry(clock: FakeClock, **options: Any) -> Pipeline:
    return (
        Pipeline.builder(clock=clock, **options)
        .retry(max_attempts=3, backoff=tenacity.wait_fixed(0.5))
        .build()
    )


async def test_events_name_the_request_but_never_its_secrets() -> None:
    events: list[ResilienceEvent] = []
    clock = FakeClock()
    async with ResilientClient(
        pipeline=quick_retry(clock, listeners=[events.append]), transport=flaky_transport(503)
    ) as client:
        await client.get(
            "https://user:password@api.example/orders?token=abc",
            headers={"Authorization": "Bearer sk-live-123"},
        )
    (event,) = events
    assert (event.name, event.method, event.url) == ("retry", "GET", "https://api.example/orders")
    text = repr(event)
    for secret in ("password", "token=abc", "sk-live-123", "secret body"):
        assert secret not in text


async def test_the_query_is_shown_only_when_asked() -> None:
    events: list[ResilienceEvent] = []
    clock = FakeClock()
    pipeline = quick_retry(clock, listeners=[events.append], include_query=True)
    async with ResilientClient(pipeline=pipeline, transport=flaky_transport(503)) as client:
        await client.get("https://user:pw@api.example/search?q=shoes")
    assert events[0].url == "https://api.example/search?q=shoes"


def test_safe_url_keeps_explicit_ports() -> None:
    assert safe_url(httpx.URL("http://u:p@h.example:8080/a?b=c")) == "http://h.example:8080/a"


async def test_log_levels_and_a_failing_listener(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: ResilienceEvent) -> None:
        raise RuntimeError("listener bug")

    clock = FakeClock()
    pipeline = (
        Pipeline.builder(clock=clock, listeners=[broken])
        .retry(max_attempts=2, backoff=tenacity.wait_fixed(0.1))
        .circuit_breaker(failure_ratio=1.0, minimum_throughput=2)
        .build()
    )

    async def fails() -> None:
        raise ConnectionError("down")

    # A retry (INFO), then the circuit opens (WARNING).
    with (
        caplog.at_level(logging.DEBUG, logger="httpx_resilience"),
        pytest.raises(ConnectionError),
    ):
        await pipeline.execute(fails)
    levels = {
        r.getMessage().split(" ")[1]: r.levelname for r in caplog.records if ": " in r.getMessage()
    }
    assert levels["retry"] == "INFO"
    assert levels["circuit_opened"] == "WARNING"
    assert any("listener bug" in (r.exc_text or "") for r in caplog.records)
    assert all(hasattr(r, "resilience_event") for r in caplog.records if r.levelno < 40)


async def test_every_event_name_is_known() -> None:
    seen: set[str] = set()
    clock = FakeClock()
    pipeline = (
        Pipeline.builder(clock=clock, listeners=[lambda e: seen.add(e.name)])
        .fallback(value="fallback")
        .retry(max_attempts=2, backoff=tenacity.wait_fixed(0.1))
        .circuit_breaker(failure_ratio=1.0, minimum_throughput=1, break_duration=1.0)
        .timeout(1.0)
        .build()
    )

    async def slow() -> None:
        await clock.sleep(5)

    for _ in range(3):
        await pipeline.execute(slow)
        clock.advance(1.0)
    assert seen <= EVENT_NAMES
    assert {"retry", "timeout", "circuit_opened", "fallback", "circuit_half_opened"} <= seen


EVENTS = "resilience.httpx.events"
ATTEMPTS = "resilience.httpx.attempt.duration"
PIPELINE = "resilience.httpx.pipeline.duration"


def metrics_of(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = list(metric.data.data_points)
    return found


async def test_opentelemetry_counts_events_and_records_durations() -> None:
    reader = InMemoryMetricReader()
    listener = OpenTelemetryListener(MeterProvider(metric_readers=[reader]))
    clock = FakeClock()
    registry = Registry.from_mapping(
        {"profiles": {"api": {"retry": {"max_attempts": 3, "base_delay": 0}}}},
        environ={},
        listeners=[listener],
        clock=clock,
    )
    async with ResilientClient(
        profiles=registry, routes={"api.example": "api"}, transport=flaky_transport(503, 502)
    ) as client:
        await client.get("https://api.example/a")
        await client.get("https://api.example/b")
    metrics = metrics_of(reader)
    events = {tuple(sorted(p.attributes.items())): p.value for p in metrics[EVENTS]}
    assert events == {
        (
            ("attempt.number", 0),
            ("error.type", "503"),
            ("event.name", "retry"),
            ("pipeline.name", "api"),
            ("policy.name", "retry"),
        ): 1,
        (
            ("attempt.number", 1),
            ("error.type", "502"),
            ("event.name", "retry"),
            ("pipeline.name", "api"),
            ("policy.name", "retry"),
        ): 1,
    }
    (pipeline_point,) = metrics[PIPELINE]
    assert pipeline_point.count == 2
    assert dict(pipeline_point.attributes) == {"pipeline.name": "api"}
    attempts = {
        (p.attributes["attempt.number"], p.attributes.get("error.type")): p.count
        for p in metrics[ATTEMPTS]
    }
    assert attempts == {(0, "503"): 1, (1, "502"): 1, (2, None): 1, (0, None): 1}


async def test_opentelemetry_labels_a_hedged_execution_with_the_winner() -> None:
    reader = InMemoryMetricReader()
    clock = FakeClock()
    pipeline = (
        Pipeline.builder(clock=clock, listeners=[OpenTelemetryListener(MeterProvider([reader]))])
        .hedging(delay=1.0)
        .build()
    )
    requests = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        if requests == 1:
            await clock.sleep(1.5)  # the first try wins, after the hedge has started
            return httpx.Response(200)
        await clock.sleep(10.0)
        return httpx.Response(504)

    async with ResilientClient(pipeline=pipeline, transport=httpx.MockTransport(handler)) as client:
        response = await client.get("https://api.example/a")
    assert response.status_code == 200
    metrics = metrics_of(reader)
    (pipeline_point,) = metrics[PIPELINE]
    assert "error.type" not in pipeline_point.attributes
    # Tries are timed on the policies' clock: the winner took 1.5 s, the loser 0.5 s.
    attempts = {p.attributes.get("error.type"): (p.count, p.sum) for p in metrics[ATTEMPTS]}
    cancelled = anyio.get_cancelled_exc_class().__name__  # CancelledError, or trio's Cancelled
    assert attempts == {None: (1, 1.5), cancelled: (1, 0.5)}


async def test_timed_listeners_see_failed_executions_too() -> None:
    seen: list[tuple[float, str | None]] = []

    class Timing:
        def __call__(self, event: ResilienceEvent) -> None:
            pass

        def on_execution(
            self, context: Context, duration: float, exception: BaseException | None
        ) -> None:
            seen.append((duration, None if exception is None else type(exception).__name__))

    pipeline = Pipeline([], listeners=[Timing()])

    async def ok() -> int:
        return 1

    async def fails() -> None:
        raise KeyError("x")

    await pipeline.execute(ok)
    with pytest.raises(KeyError):
        await pipeline.execute(fails)
    assert [name for _, name in seen] == [None, "KeyError"]
    assert all(duration >= 0 for duration, _ in seen)


async def test_opentelemetry_durations_resolve_milliseconds() -> None:
    # A 1 ms try and a 300 ms one: the SDK's default buckets put both in (0, 5].
    reader = InMemoryMetricReader()
    clock = FakeClock()
    listener = OpenTelemetryListener(MeterProvider([reader]), traces=False)
    pipeline = (
        Pipeline.builder(clock=clock, listeners=[listener])
        .retry(max_attempts=2, backoff=tenacity.wait_fixed(0.1))
        .build()
    )
    took = iter([(0.001, 503), (0.3, 200)])

    async def handler(request: httpx.Request) -> httpx.Response:
        seconds, status = next(took)
        await clock.sleep(seconds)
        return httpx.Response(status)

    async with ResilientClient(pipeline=pipeline, transport=httpx.MockTransport(handler)) as client:
        await client.get("https://api.example/a")
    points = {p.attributes["attempt.number"]: p for p in metrics_of(reader)[ATTEMPTS]}
    assert tuple(points[0].explicit_bounds) == DURATION_BUCKETS

    def bucket(point: Any) -> int:
        (index,) = [i for i, n in enumerate(point.bucket_counts) if n]
        return int(index)

    assert bucket(points[0]) < bucket(points[1])
    assert points[0].explicit_bounds[bucket(points[0])] == 0.001


async def test_opentelemetry_records_no_empty_attribute_and_no_rejection_as_attempt() -> None:
    reader = InMemoryMetricReader()
    clock = FakeClock()
    listener = OpenTelemetryListener(MeterProvider([reader]), traces=False)
    # Retries around a breaker that opens after two failures: the third try is refused.
    pipeline = (
        Pipeline.builder(clock=clock, listeners=[listener])
        .retry(max_attempts=3, backoff=tenacity.wait_fixed(0.1), handle=lambda o: True)
        .circuit_breaker(window="count", window_size=2, minimum_throughput=2, failure_ratio=0.5)
        .build()
    )
    async with ResilientClient(pipeline=pipeline, transport=flaky_transport(503, 503)) as client:
        with pytest.raises(BrokenCircuitError):
            await client.get("https://api.example/a")
    metrics = metrics_of(reader)
    for points in metrics.values():
        for point in points:
            assert all(value != "" for value in point.attributes.values()), point.attributes
    attempts = sorted(
        (p.attributes["attempt.number"], p.attributes["attempt.handled"], p.count)
        for p in metrics[ATTEMPTS]
    )
    assert attempts == [(0, True, 1), (1, True, 1)]  # the refused third try is no attempt
    (pipeline_point,) = metrics[PIPELINE]
    assert dict(pipeline_point.attributes) == {"error.type": "BrokenCircuitError"}
    names = {p.attributes["event.name"] for p in metrics[EVENTS]}
    assert "circuit_opened" in names


def test_opentelemetry_listener_traces_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="traces must be True or False, got 'no'"):
        OpenTelemetryListener(MeterProvider(), traces="no")  # type: ignore[arg-type]


def test_listeners_must_be_callable() -> None:
    with pytest.raises(TypeError, match="a listener must be callable"):
        Pipeline([], listeners=[42])  # type: ignore[list-item]


def test_safe_url_keeps_ipv6_hosts_bracketed() -> None:
    assert safe_url(httpx.URL("http://[::1]:8080/a")) == "http://[::1]:8080/a"
    assert safe_url(httpx.URL("http://u:p@[2001:db8::1]/a?b=c")) == "http://[2001:db8::1]/a"
