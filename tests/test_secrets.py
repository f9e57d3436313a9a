"""Secrets never reach what the library shows: partition keys (API keys, tokens) and tokens in
URL paths stay out of exceptions, events, logs, metrics and ``describe()``."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import anyio
import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from httpx_resilience import (
    BrokenCircuitError,
    Bulkhead,
    BulkheadRejected,
    CircuitBreaker,
    Context,
    Fallback,
    Hedging,
    Outcome,
    Pipeline,
    RateLimiter,
    RateLimitRejected,
    Registry,
    ResilienceEvent,
    ResilientClient,
    Retry,
    by_header,
    handle_exceptions,
    handle_results,
    hashed,
)
from httpx_resilience.telemetry import Listener, OpenTelemetryListener
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio

SECRET = "sk-live-7f3c9a0b1d2e"


def api_key(context: Context) -> str:
    return str(context.properties["api_key"])


def otel_attributes(reader: InMemoryMetricReader) -> list[dict[str, Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        dict(point.attributes or {})
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    ]


def assert_nowhere(secret: str, *shown: object) -> None:
    for thing in shown:
        text = thing if isinstance(thing, str) else repr(thing)
        assert secret not in text, f"{secret!r} shown in {text}"


async def test_a_secret_partition_key_is_shown_nowhere(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="httpx_resilience")
    clock = FakeClock()
    reader = InMemoryMetricReader()
    events: list[ResilienceEvent] = []
    listeners: list[Listener] = [
        events.append,
        OpenTelemetryListener(MeterProvider(metric_readers=[reader])),
    ]
    breaker = CircuitBreaker(
        key=by_header("X-Api-Key"),
        window="count",
        window_size=2,
        minimum_throughput=2,
        failure_ratio=0.5,
        clock=clock,
    )
    http_pipeline = Pipeline.builder(clock=clock, listeners=listeners).add(breaker).build()
    limiter = RateLimiter(rate=1.0, burst=1, key=hashed(api_key), clock=clock)
    bulkhead = Bulkhead(max_concurrent=1, key=hashed(api_key), clock=clock)
    pipeline = Pipeline([limiter, bulkhead], listeners=listeners)
    errors: list[BaseException] = []

    transport = httpx.MockTransport(lambda request: httpx.Response(503))
    async with ResilientClient(pipeline=http_pipeline, transport=transport) as client:
        for _ in range(2):
            await client.get("https://api.example/a", headers={"X-Api-Key": SECRET})
        with pytest.raises(BrokenCircuitError) as broken:
            await client.get("https://api.example/a", headers={"X-Api-Key": SECRET})
        errors.append(broken.value)

    # The bulkhead: one call holds the only slot while another arrives.
    entered, release = anyio.Event(), anyio.Event()

    async def hold() -> None:
        entered.set()
        await release.wait()

    async def quick() -> None:
        pass

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(pipeline.execute, hold, Context(properties={"api_key": SECRET}))
        await entered.wait()
        clock.advance(1.0)  # a token for the next call: it is the bulkhead that refuses
        with pytest.raises(BulkheadRejected) as full:
            await pipeline.execute(quick, Context(properties={"api_key": SECRET}))
        errors.append(full.value)
        release.set()
    with pytest.raises(RateLimitRejected) as limited:
        await pipeline.execute(quick, Context(properties={"api_key": SECRET}))
    errors.append(limited.value)

    names = {event.name for event in events}
    assert {"circuit_opened", "bulkhead_rejected", "rate_limited"} <= names
    assert all(event.key and event.key.startswith("hash:") for event in events if event.key)
    registry = Registry({"api": http_pipeline, "jobs": pipeline})
    assert_nowhere(
        SECRET,
        *(str(error) for error in errors),
        *errors,
        events,
        caplog.text,
        [record.__dict__ for record in caplog.records],
        otel_attributes(reader),
        json.dumps(http_pipeline.describe()),
        json.dumps(pipeline.describe()),
        json.dumps(registry.describe()),
        breaker.partitions(),
    )
    # Still one partition per key: another key has its own circuit, bucket and slot.
    assert breaker.state_of(by_header("X-Api-Key")(with_header(SECRET))).value == "open"
    assert len(breaker.partitions()) == 1
    await pipeline.execute(quick, Context(properties={"api_key": "sk-live-other"}))


def with_header(value: str) -> Context:
    return Context(
        request=httpx.Request("GET", "https://api.example/", headers={"X-Api-Key": value})
    )


def test_hashed_keys_name_each_value_by_a_stable_digest() -> None:
    key = hashed(api_key)
    a, b = Context(properties={"api_key": "a"}), Context(properties={"api_key": "b"})
    assert key(a) == key(Context(properties={"api_key": "a"})) != key(b)
    assert re.fullmatch(r"hash:[0-9a-f]{24}", key(a))
    # A salt (the same in every replica) keeps the digest of a guessable value unguessable.
    assert hashed(api_key, salt="pepper")(a) not in (key(a), hashed(api_key, salt="salt")(a))
    assert hashed(api_key, salt=b"x" * 100)(a).startswith("hash:")
    # No key stays no key.
    assert key(Context(properties={"api_key": ""})) == ""


def test_by_header_hashes_unless_told_the_value_is_not_secret() -> None:
    assert by_header("x-api-key")(with_header(SECRET)).startswith("hash:")
    assert by_header("X-Api-Key", secret=False)(with_header("acme")) == "acme"
    assert by_header("X-Api-Key")(Context()) == ""
    assert by_header("X-Tenant")(with_header(SECRET)) == ""


def test_key_helpers_reject_bad_options() -> None:
    with pytest.raises(ValueError, match=r"hashed: key must be a function of the context, got 42"):
        hashed(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"hashed: salt must be str or bytes, got 1\.5"):
        hashed(api_key, salt=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"by_header: name must be a header name, got ''"):
        by_header("")


def test_describe_names_a_key_function_without_its_arguments() -> None:
    import functools

    def lookup(context: Context, token: str) -> str:
        return token

    key = functools.partial(lookup, token=SECRET)
    for policy in (
        CircuitBreaker(key=key),
        Bulkhead(max_concurrent=1, key=key),
        RateLimiter(rate=1.0, key=key),
    ):
        assert_nowhere(SECRET, policy.describe(), repr(policy))
    assert CircuitBreaker(key=by_header("X-Api-Key")).describe()["options"]["key"] == (
        "by_header('X-Api-Key')"
    )
    assert CircuitBreaker(key=hashed(api_key)).describe()["options"]["key"] == "hashed(api_key)"


def test_describe_names_every_callable_without_its_arguments() -> None:
    import functools

    def refused(outcome: Outcome[Any], token: str) -> bool:
        return False

    def delay_for(context: Context, token: str) -> float:
        return 1.0

    def lookup(context: Context, token: str) -> str:
        return token

    handle = functools.partial(refused, token=SECRET)
    composed = handle_exceptions(ValueError) | handle
    policies: list[Any] = [
        Retry(handle=handle),
        Retry(handle=composed),
        Retry(handle=handle_results(functools.partial(bool, SECRET))),
        Hedging(handle=handle, delay=functools.partial(delay_for, token=SECRET)),
        CircuitBreaker(handle=handle, key=hashed(functools.partial(lookup, token=SECRET))),
        Fallback(value=None, handle=handle),
    ]
    for policy in policies:
        assert_nowhere(SECRET, policy.describe())
    # Named by what they are: the function's name, else the class of the callable.
    assert Retry(handle=handle).describe()["options"]["handle"] == "partial"
    assert Retry(handle=composed).describe()["options"]["handle"] == (
        "(handle_exceptions(ValueError) | partial)"
    )


# -- paths ---------------------------------------------------------------------------------------


async def events_for(url: str, **options: Any) -> list[ResilienceEvent]:
    events: list[ResilienceEvent] = []
    answers = iter([503, 200])
    pipeline = (
        Pipeline.builder(clock=FakeClock(), listeners=[events.append], **options)
        .retry(max_attempts=2, base_delay=0.0)
        .build()
    )
    transport = httpx.MockTransport(lambda request: httpx.Response(next(answers)))
    async with ResilientClient(pipeline=pipeline, transport=transport) as client:
        await client.get(url)
    return events


async def test_patterns_redact_tokens_in_paths(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="httpx_resilience")
    token = "9f8e7d6c5b4a39281706"
    events = await events_for(
        f"https://api.example/reset/{token}/confirm?next=/home",
        redact_path=[r"/reset/([^/]+)", re.compile(r"[0-9a-f]{32}")],
    )
    assert [event.url for event in events] == ["https://api.example/reset/***/confirm"]
    assert_nowhere(token, events, caplog.text)
    # A pattern without a group redacts all it matches.
    (event,) = await events_for(
        "https://api.example/files/0123456789abcdef0123456789abcdef",
        redact_path=[r"[0-9a-f]{32}"],
    )
    assert event.url == "https://api.example/files/***"


async def test_a_function_redacts_paths_and_never_breaks_a_call() -> None:
    (event,) = await events_for(
        "https://api.example/users/42/orders", redact_path=lambda path: path.replace("42", "{id}")
    )
    assert event.url == "https://api.example/users/{id}/orders"

    def broken(path: str) -> str:
        raise RuntimeError("redactor bug")

    (event,) = await events_for("https://api.example/reset/token", redact_path=broken)
    assert event.url == "https://api.example/***"


async def test_registry_profiles_redact_paths() -> None:
    events: list[ResilienceEvent] = []
    registry = Registry.from_mapping(
        {"profiles": {"default": {"retry": {"max_attempts": 2, "base_delay": 0}}}},
        environ={},
        listeners=[events.append],
        clock=FakeClock(),
        redact_path=[r"/reset/([^/]+)"],
    )
    answers = iter([503, 200])
    transport = httpx.MockTransport(lambda request: httpx.Response(next(answers)))
    async with ResilientClient(profiles=registry, transport=transport) as client:
        await client.get("https://api.example/reset/abc")
    assert [event.url for event in events] == ["https://api.example/reset/***"]


def test_bad_redact_path_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"redact_path: '\(' is not a valid pattern"):
        Pipeline([], redact_path=["("])
    with pytest.raises(ValueError, match=r"redact_path must be a function of the path or"):
        Pipeline([], redact_path=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"redact_path must be a function of the path or"):
        Pipeline.builder(redact_path="/reset/")  # a string is an iterable, but not of patterns
    with pytest.raises(ValueError, match=r"redact_path: expected a regular expression, got 1"):
        Registry(redact_path=[1])  # type: ignore[list-item]
