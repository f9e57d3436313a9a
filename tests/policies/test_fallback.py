from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from httpx_resilience import (
    BrokenCircuitError,
    Context,
    Fallback,
    Outcome,
    Pipeline,
    TimeoutRejected,
    handle_exceptions,
)
from httpx_resilience.http.classify import HTTP_CLASSIFIER
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio


async def ok() -> str:
    return "live"


async def boom() -> str:
    raise ConnectionError("down")


async def test_a_value_answers_for_a_failure_and_the_report_says_so() -> None:
    pipeline = Pipeline([Fallback(value="default")])
    context = Context()
    assert await pipeline.execute(boom, context) == "default"
    report = context.report
    assert (report.fallback, report.fallback_cause) == ("value", "ConnectionError")
    event = report.events[0]
    assert (event.name, event.outcome, event.detail["source"]) == (
        "fallback",
        "ConnectionError",
        "value",
    )
    assert report.attempts[0].exception is not None  # the try it answered for


async def test_success_passes_through_untouched() -> None:
    context = Context()
    assert await Pipeline([Fallback(value="default")]).execute(ok, context) == "live"
    assert context.report.fallback is None
    assert context.report.events == []


async def test_a_factory_gets_the_failed_outcome_and_the_context() -> None:
    seen: list[tuple[Outcome[Any], Context]] = []

    async def factory(outcome: Outcome[Any], context: Context) -> str:
        seen.append((outcome, context))
        return f"instead of {type(outcome.exception).__name__}"

    context = Context(operation_key="quotes")
    result = await Pipeline([Fallback(factory=factory)]).execute(boom, context)
    assert result == "instead of ConnectionError"
    assert seen[0][1] is context
    assert context.report.fallback == "factory"


async def test_rejections_are_handled_by_default_cancellation_never() -> None:
    async def rejected() -> str:
        raise BrokenCircuitError("open", retry_after=1.0)

    assert await Pipeline([Fallback(value="x")]).execute(rejected) == "x"

    async def timed_out() -> str:
        raise TimeoutRejected("slow", timeout=1.0)

    assert await Pipeline([Fallback(value="x")]).execute(timed_out) == "x"

    with anyio.move_on_after(0.01) as scope:
        await Pipeline([Fallback(value="x")]).execute(anyio.sleep_forever)
    assert scope.cancelled_caught


async def test_unhandled_failures_pass_through() -> None:
    pipeline = Pipeline([Fallback(value="x", handle=handle_exceptions(TimeoutError))])
    with pytest.raises(ConnectionError):
        await pipeline.execute(boom)


async def test_a_source_with_nothing_to_offer_passes_to_the_next() -> None:
    class Empty:
        name = "empty"

        def observe(self, result: Any, context: Context) -> Any:
            return result

        async def answer(self, outcome: Outcome[Any], context: Context) -> Outcome[Any] | None:
            return None

    context = Context()
    pipeline = Pipeline([Fallback(cache=Empty(), value="last resort")])
    assert await pipeline.execute(boom, context) == "last resort"
    assert context.report.fallback == "value"


async def test_when_no_source_answers_the_original_failure_goes_on() -> None:
    class Empty:
        name = "empty"

        def observe(self, result: Any, context: Context) -> Any:
            return result

        async def answer(self, outcome: Outcome[Any], context: Context) -> Outcome[Any] | None:
            return None

    with pytest.raises(ConnectionError, match="down"):
        await Pipeline([Fallback(cache=Empty())]).execute(boom)


async def test_http_failed_responses_are_answered_for_and_released() -> None:
    failed = httpx.Response(503, content=b"busy")
    value = httpx.Response(200, json={"quote": 1.0}, headers={"X-Fallback": "yes"})

    async def unavailable() -> httpx.Response:
        return failed

    pipeline = Pipeline([Fallback(value=value)])
    request = httpx.Request("GET", "http://api.test/quote")
    first = await pipeline.execute(
        unavailable, Context(classifier=HTTP_CLASSIFIER, request=request)
    )
    second = await pipeline.execute(unavailable, Context(classifier=HTTP_CLASSIFIER))
    # Each caller gets a response of its own, with the request it made.
    assert first is not second
    assert first is not value
    assert first.json() == {"quote": 1.0}
    assert first.headers["x-fallback"] == "yes"
    assert first.request is request
    assert failed.is_closed


async def test_http_client_errors_are_not_answered_for() -> None:
    async def missing() -> httpx.Response:
        return httpx.Response(404)

    response = await Pipeline([Fallback(value=httpx.Response(200))]).execute(
        missing, Context(classifier=HTTP_CLASSIFIER)
    )
    assert response.status_code == 404


async def test_the_builder_passes_its_clock() -> None:
    clock = FakeClock(start=7.0)
    pipeline = Pipeline.builder(clock=clock).fallback(value=1).build()
    context = Context()
    await pipeline.execute(boom, context)
    assert context.report.events[0].timestamp == 7.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "give at least one of cache=, alternate=, factory=, value="),
        ({"factory": "f"}, "factory must be an async callable, got 'f'"),
        ({"cache": {}}, "cache must be a ResponseCache, got {}"),
        ({"alternate": 42}, "alternate must be a base URL, an httpx transport or an Alternate"),
        ({"value": 1, "handle": 2}, "handle must be a predicate over outcomes, got 2"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^Fallback: {message}"):
        Fallback(**options)
