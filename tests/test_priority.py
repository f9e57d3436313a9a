"""A call's priority: set by ``Pipeline.execute(priority=)``, by the ``resilience.priority``
extension of an HTTP request or on the context, and seen by every policy of the execution."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from httpx_resilience import Context, Pipeline, Priority, ResilientClient
from httpx_resilience.priority import PRIORITIES, rank

pytestmark = pytest.mark.anyio


class _Seen:
    """A policy that records the priority of every execution it runs."""

    def __init__(self) -> None:
        self.priorities: list[str] = []

    async def execute(self, next: Callable[[Context], Awaitable[Any]], context: Context) -> Any:
        self.priorities.append(context.priority)
        return await next(context)


async def _ok() -> str:
    return "ok"


def test_ranks_put_critical_first() -> None:
    assert PRIORITIES == ("critical", "default", "sheddable")
    assert [rank(p) for p in PRIORITIES] == [0, 1, 2]


async def test_execute_sets_the_priority_policies_see() -> None:
    seen = _Seen()
    pipeline = Pipeline.builder().add(seen).build()
    await pipeline.execute(_ok)
    await pipeline.execute(_ok, priority="sheddable")
    await pipeline.execute(_ok, priority="critical")
    assert seen.priorities == ["default", "sheddable", "critical"]


async def test_the_contexts_own_priority_is_kept_when_execute_names_none() -> None:
    seen = _Seen()
    pipeline = Pipeline.builder().add(seen).build()
    await pipeline.execute(_ok, Context(priority="critical"))
    assert seen.priorities == ["critical"]


async def test_a_nested_execution_and_a_hedged_try_inherit_the_priority() -> None:
    inner_seen = _Seen()
    inner = Pipeline.builder().add(inner_seen).build()
    context = Context()

    async def call() -> str:
        # The same context, still running the outer execution: the inner runs on a child.
        return await inner.execute(_ok, context)

    outer = Pipeline.builder().build()
    await outer.execute(call, context, priority="sheddable")
    assert inner_seen.priorities == ["sheddable"]
    assert context.fork(1).priority == "sheddable"


@pytest.mark.parametrize(
    ("value", "error"), [("urgent", ValueError), ("CRITICAL", ValueError), (1, TypeError)]
)
async def test_a_bad_priority_names_where_it_came_from(value: Any, error: type[Exception]) -> None:
    pipeline = Pipeline.builder().build()
    with pytest.raises(error, match=r"Pipeline.execute: priority must be one of .*got"):
        await pipeline.execute(_ok, priority=value)
    with pytest.raises(error, match=r"Context: priority must be one of"):
        Context(priority=value)


async def test_the_request_extension_sets_the_priority() -> None:
    seen = _Seen()
    pipeline = Pipeline.builder().add(seen).build()
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with ResilientClient(pipeline=pipeline, transport=transport) as client:
        await client.get("http://upstream.test/")
        await client.get("http://upstream.test/", extensions={"resilience.priority": "critical"})
        await client.get("http://upstream.test/", extensions={"resilience.priority": "sheddable"})
    assert seen.priorities == ["default", "critical", "sheddable"]


async def test_a_bad_priority_extension_fails_before_anything_is_sent() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    async with ResilientClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ValueError, match=r"extensions\['resilience.priority'\] must be one of"):
            await client.get("http://upstream.test/", extensions={"resilience.priority": "high"})
        with pytest.raises(TypeError, match=r"extensions\['resilience.priority'\]"):
            await client.get("http://upstream.test/", extensions={"resilience.priority": 0})
    assert sent == []


def test_priority_is_a_public_name() -> None:
    value: Priority = "critical"
    assert value in PRIORITIES
