"""Drop-in gaps (issue 11): httpx's own recipes keep working through the resilience layer, and
a response a fallback served behaves like any other. Against the real loopback server, through
both ResilientClient and ResilienceTransport."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable

import httpx
import pytest

from httpx_resilience import (
    Alternate,
    Pipeline,
    ResilienceTransport,
    ResilientClient,
    ResponseCache,
)
from httpx_resilience._loopback import LoopbackServer, Reply
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio

Hook = Callable[[httpx.Response], Awaitable[None]]


async def raise_on_4xx_5xx(response: httpx.Response) -> None:
    """httpx's documented recipe: raise for every error status, from a response hook."""
    response.raise_for_status()


def make(
    kind: str, pipeline: Pipeline, server: LoopbackServer, hooks: list[Hook] | None = None
) -> httpx.AsyncClient:
    event_hooks: dict[str, list[Hook]] = {"response": hooks or []}
    if kind == "client":
        return ResilientClient(pipeline=pipeline, base_url=server.url, event_hooks=event_hooks)
    return httpx.AsyncClient(
        transport=ResilienceTransport(pipeline), base_url=server.url, event_hooks=event_hooks
    )


KINDS = pytest.mark.parametrize("kind", ["client", "transport"])


async def test_a_raise_for_status_hook_still_lets_the_client_retry(server: LoopbackServer) -> None:
    server.script(Reply(503), Reply(503), Reply(200, body=b"third time"))
    pipeline = Pipeline.builder(clock=FakeClock()).retry(max_attempts=3).build()
    async with make("client", pipeline, server, [raise_on_4xx_5xx]) as client:
        response = await client.get("/flaky")
    assert response.text == "third time"
    assert len(server.requests) == 3


async def test_a_raise_for_status_hook_does_not_retry_a_404(server: LoopbackServer) -> None:
    server.set_handler(lambda r: Reply(404))
    pipeline = Pipeline.builder(clock=FakeClock()).retry(max_attempts=3).build()
    async with make("client", pipeline, server, [raise_on_4xx_5xx]) as client:
        with pytest.raises(httpx.HTTPStatusError) as raised:
            await client.get("/missing")
    assert raised.value.response.status_code == 404
    assert len(server.requests) == 1


async def test_a_raise_for_status_hook_opens_the_breaker_and_the_fallback_answers(
    server: LoopbackServer,
) -> None:
    server.set_handler(lambda r: Reply(503))
    pipeline = (
        Pipeline.builder()
        .fallback(value=httpx.Response(200, text="degraded"))
        .circuit_breaker(failure_ratio=1.0, minimum_throughput=2, break_duration=60.0)
        .build()
    )
    async with make("client", pipeline, server, [raise_on_4xx_5xx]) as client:
        answers = [await client.get("/x") for _ in range(4)]
    assert [r.text for r in answers] == ["degraded"] * 4
    assert len(server.requests) == 2


async def test_a_raise_for_status_hook_keeps_the_retry_after(server: LoopbackServer) -> None:
    server.script(Reply(503, headers=[("Retry-After", "7")]), Reply(200, body=b"later"))
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).retry(max_attempts=2, base_delay=0.01).build()
    async with make("client", pipeline, server, [raise_on_4xx_5xx]) as client:
        response = await client.get("/busy")
    assert response.text == "later"
    assert clock.monotonic() >= 7.0


def cache_pipeline(cache: ResponseCache) -> Pipeline:
    return Pipeline.builder().fallback(cache=cache).build()


@KINDS
@pytest.mark.parametrize("source", ["cache", "value", "alternate"])
async def test_a_fallback_answer_has_elapsed_streams_raw_and_reaches_the_hooks(
    server: LoopbackServer, mirror: LoopbackServer, kind: str, source: str
) -> None:
    down = False

    def upstream(request: object) -> Reply:
        return Reply(503, body=b"down") if down else Reply(200, body=b"payload")

    server.set_handler(upstream)
    mirror.set_handler(lambda r: Reply(200, body=b"payload"))
    if source == "cache":
        pipeline = cache_pipeline(ResponseCache())
    elif source == "value":
        pipeline = Pipeline.builder().fallback(value=httpx.Response(200, text="payload")).build()
    else:
        pipeline = Pipeline.builder().fallback(alternate=Alternate(mirror.url)).build()
    seen: list[tuple[int, bool]] = []

    async def record(response: httpx.Response) -> None:
        report = response.extensions.get("resilience")
        seen.append((response.status_code, report is not None and report.fallback is not None))

    async with make(kind, pipeline, server, [record]) as client:
        await client.get("/item")  # stored by the cache
        down = True
        seen.clear()
        answer = await client.get("/item")
        async with client.stream("GET", "/item") as streamed:
            raw = b"".join([chunk async for chunk in streamed.aiter_raw()])
    assert answer.extensions["resilience"].fallback == source
    assert (answer.status_code, answer.text) == (200, "payload")
    assert isinstance(answer.elapsed, datetime.timedelta)
    assert isinstance(streamed.elapsed, datetime.timedelta)
    assert raw == b"payload"
    # The hooks saw the answer the caller got (through ResilientClient, the failed try too:
    # its hooks run inside the pipeline, which is what lets raise_for_status() drive it).
    assert seen[-1] == (200, True)
    assert (200, True) in seen[:-1]
