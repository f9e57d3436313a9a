"""One Context given to several executions: each runs its own call and reports to its own
listeners (a pipeline called inside another's call, hedged tries, concurrent executions)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import httpx
import pytest
import tenacity

from httpx_resilience import (
    Context,
    ExecutionReport,
    Pipeline,
    ResilienceEvent,
    ResilientClient,
    RetryStopped,
)
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio
T = TypeVar("T")


def names(events: list[ResilienceEvent]) -> list[tuple[str, str]]:
    return [(event.policy, event.name) for event in events]


async def test_an_outer_retry_retries_its_own_call_not_the_inner_pipelines() -> None:
    clock = FakeClock()
    outer_events: list[ResilienceEvent] = []
    inner_events: list[ResilienceEvent] = []
    wait = tenacity.wait_fixed(1.0)
    outer = Pipeline.builder(clock=clock, listeners=[outer_events.append])
    outer_pipeline = outer.retry(max_attempts=3, backoff=wait).build()
    inner = Pipeline.builder(clock=clock, listeners=[inner_events.append])
    inner_pipeline = inner.retry(max_attempts=3, backoff=wait).build()
    context = Context(operation_key="shared")
    calls = {"outer": 0, "inner": 0}

    async def inner_call() -> str:
        calls["inner"] += 1
        if calls["inner"] == 1:
            raise ConnectionError("the inner dependency fails once")
        return "inner"

    async def outer_call() -> str:
        calls["outer"] += 1
        got = await inner_pipeline.execute(inner_call, context)
        if calls["outer"] == 1:
            raise ConnectionError("the outer step fails once, after the inner call")
        return f"outer({got})"

    assert await outer_pipeline.execute(outer_call, context) == "outer(inner)"
    assert calls == {"outer": 2, "inner": 3}
    assert names(inner_events) == [("retry", "retry")]
    assert names(outer_events) == [("retry", "retry")]
    # Both executions record into the context the caller gave, and it is free again after.
    assert context.report.events == [*inner_events, *outer_events]
    assert await outer_pipeline.execute(outer_call, context) == "outer(inner)"
    assert calls == {"outer": 3, "inner": 4}


async def test_a_hedge_runs_the_outer_call_when_an_inner_pipeline_shares_the_context() -> None:
    clock = FakeClock()
    outer_events: list[ResilienceEvent] = []
    inner_events: list[ResilienceEvent] = []
    outer_pipeline = (
        Pipeline.builder(clock=clock, listeners=[outer_events.append])
        .hedging(delay=1.0, max_hedged_attempts=1)
        .build()
    )
    inner_pipeline = (
        Pipeline.builder(clock=clock, listeners=[inner_events.append]).timeout(30.0).build()
    )
    context = Context()
    calls = {"outer": 0, "inner": 0}

    async def inner_call(seconds: float, answer: str) -> str:
        calls["inner"] += 1
        await clock.sleep(seconds)
        return answer

    async def outer_call() -> str:
        calls["outer"] += 1
        # The first try is slow inside the inner pipeline; the hedge, one second later, is fast.
        seconds, answer = (10.0, "slow") if calls["outer"] == 1 else (0.5, "fast")
        got = await inner_pipeline.execute(lambda: inner_call(seconds, answer), context)
        return f"outer({got})"

    assert await outer_pipeline.execute(outer_call, context) == "outer(fast)"
    assert clock.monotonic() == 1.5
    assert calls == {"outer": 2, "inner": 2}
    assert names(outer_events) == [("hedging", "hedge")]
    assert inner_events == []


async def test_concurrent_executions_sharing_a_context_each_retry_their_own_call() -> None:
    clock = FakeClock()
    wait = tenacity.wait_fixed(1.0)
    first = Pipeline.builder(clock=clock).retry(max_attempts=2, backoff=wait).build()
    second = Pipeline.builder(clock=clock).retry(max_attempts=2, backoff=wait).build()
    context = Context()
    calls = {"first": 0, "second": 0}
    results: dict[str, str] = {}

    async def first_call() -> str:
        calls["first"] += 1
        await clock.sleep(1.0)
        if calls["first"] == 1:
            raise ConnectionError("fails once")
        return "first"

    async def second_call() -> str:
        calls["second"] += 1
        await clock.sleep(5.0)
        return "second"

    async def run(name: str, pipeline: Pipeline, call: object) -> None:
        results[name] = await pipeline.execute(call, context)  # type: ignore[arg-type]

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "first", first, first_call)
        tg.start_soon(run, "second", second, second_call)
    assert results == {"first": "first", "second": "second"}
    assert calls == {"first": 2, "second": 1}


async def test_a_pipeline_inside_an_http_exchange_leaves_the_exchange_its_own_call() -> None:
    # A fallback factory that runs a plain pipeline with the exchange's context, inside a
    # retry: the retry must still send the request, not repeat the factory's call.
    clock = FakeClock()
    sent: list[str] = []
    helper_events: list[ResilienceEvent] = []
    helper = Pipeline.builder(clock=clock, listeners=[helper_events.append]).build()

    async def from_helper(outcome: object, context: Context) -> httpx.Response:
        return await helper.execute(lambda: _answer(httpx.Response(203)), context)

    pipeline = (
        Pipeline.builder(clock=clock)
        .retry(max_attempts=2, backoff=tenacity.wait_fixed(1.0), handle=lambda o: True)
        .fallback(factory=from_helper)
        .build()
    )

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(503)

    async with ResilientClient(pipeline=pipeline, transport=httpx.MockTransport(handler)) as c:
        response = await c.get("http://upstream.test/a")
    assert response.status_code == 203
    assert sent == ["/a", "/a"]
    assert helper_events == []


async def _answer(response: httpx.Response) -> httpx.Response:
    return response


class Spy:
    """A policy that keeps the context each execution reaches it with."""

    def __init__(self) -> None:
        self.seen: list[Context] = []

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        self.seen.append(context)
        return await next(context)


async def test_every_way_of_making_a_context_sets_every_field() -> None:
    # Contexts are made by Context(), Pipeline.execute (fresh, or a child of a busy one),
    # fork() and the HTTP layer: each must give every slot a value.
    def unset(context: Context) -> list[str]:
        return [slot for slot in Context.__slots__ if not hasattr(context, slot)]

    spy = Spy()
    pipeline = Pipeline([spy])
    given = Context(operation_key="given")

    async def nested() -> None:
        await pipeline.execute(_nothing, given)

    await pipeline.execute(_nothing)
    await pipeline.execute(nested, given)
    async with ResilientClient(
        pipeline=pipeline, transport=httpx.MockTransport(lambda request: httpx.Response(200))
    ) as client:
        await client.get("http://upstream.test/")
    fresh, outer, inner, http = spy.seen
    assert outer is given
    assert inner is not given
    assert inner.report is given.report
    assert inner.operation_key == "given"
    assert http.request is not None
    for context in (Context(), given.fork(2), fresh, outer, inner, http):
        assert unset(context) == []
    assert given.fork(2).attempt == 2


async def test_a_given_context_is_free_again_after_an_execution_that_failed() -> None:
    pipeline = Pipeline([Spy()])
    context = Context()

    async def fail() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await pipeline.execute(fail, context)
    spy = Spy()
    await Pipeline([spy]).execute(_nothing, context)
    assert spy.seen == [context]


async def _nothing() -> None:
    return None


async def test_the_report_of_a_response_is_typed() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with ResilientClient(transport=transport) as client:
        response = await client.get("https://api.example/a")
    report: ExecutionReport = ExecutionReport.of(response)
    assert report is response.extensions["resilience"]
    stopped: RetryStopped | None = report.retry_stopped
    assert stopped is None
    with pytest.raises(LookupError, match="has no ExecutionReport: it did not come through"):
        ExecutionReport.of(httpx.Response(200))
