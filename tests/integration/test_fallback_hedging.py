"""Fallback (stale-if-error cache, alternate provider) and hedging against real loopback servers."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from httpx_resilience import (
    Alternate,
    BrokenCircuitError,
    Pipeline,
    ResilientClient,
    ResponseCache,
)
from httpx_resilience._loopback import LoopbackServer, ReceivedRequest, Reply
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio


async def test_every_url_fetched_before_an_outage_is_served_from_the_cache_during_it(
    server: LoopbackServer,
) -> None:
    down = False

    def upstream(request: ReceivedRequest) -> Reply:
        if down:
            return Reply(503, body=b"down")
        return Reply(200, body=f"item {request.path}".encode())

    server.set_handler(upstream)
    pipeline = (
        Pipeline.builder()
        .fallback(cache=ResponseCache(maxsize=100, ttl=300.0))
        .retry(max_attempts=2, base_delay=0.01)
        .build()
    )
    urls = [f"/items/{n}" for n in range(20)]
    async with ResilientClient(pipeline=pipeline, base_url=server.url) as client:
        for url in urls:
            assert (await client.get(url)).status_code == 200
        down = True
        served = [await client.get(url) for url in urls * 3]
    assert [r.status_code for r in served] == [200] * 60
    assert [r.text for r in served] == [f"item {url}" for url in urls * 3]
    assert all(r.extensions["resilience"].from_cache for r in served)


async def test_a_five_second_outage_behind_the_cache_costs_no_request_an_error(
    server: LoopbackServer,
) -> None:
    # The bar, on the fake clock: the upstream is down from t=10 s to t=15 s, while the
    # callers keep asking for the URLs they fetched before (retries, backoff and the breaker's
    # break all run on the same clock). Every GET gets the cached body; none raises.
    clock = FakeClock(start=0.0)
    outage = (10.0, 15.0)

    def upstream(request: ReceivedRequest) -> Reply:
        if outage[0] <= clock.monotonic() < outage[1]:
            return Reply(503, body=b"down")
        era = "after" if clock.monotonic() >= outage[1] else "before"
        return Reply(200, body=f"{request.path} {era}".encode())

    server.set_handler(upstream)
    pipeline = (
        Pipeline.builder(clock=clock)
        .fallback(cache=ResponseCache(maxsize=100, ttl=300.0, clock=clock))
        .retry(max_attempts=3)
        .circuit_breaker(minimum_throughput=10, failure_ratio=0.5, break_duration=1.0)
        .build()
    )
    urls = [f"/items/{n}" for n in range(10)]
    async with ResilientClient(pipeline=pipeline, base_url=server.url) as client:
        for url in urls:
            assert (await client.get(url)).text == f"{url} before"
        clock.advance(outage[0] - clock.monotonic())
        during: list[httpx.Response] = []
        while clock.monotonic() < outage[1]:
            for url in urls:
                during.append(await client.get(url))
            clock.advance(0.25)
        upstream_during = len(server.requests) - len(urls)
        clock.advance(2.0)  # past the breaker's break: the next calls probe and find it healthy
        after = [await client.get(url) for url in urls * 2]

    # Backoff sleeps move the clock too, so the rounds vary; there are always plenty.
    assert len(during) >= 100
    assert {r.status_code for r in during} == {200}
    assert all(r.extensions["resilience"].from_cache for r in during)
    assert [r.text for r in during] == [f"{url} before" for url in urls] * (len(during) // 10)
    # The breaker opened early in the outage: the dead upstream saw a handful of requests, not
    # three for each of the calls.
    assert upstream_during < len(during) / 4, f"{upstream_during} upstream for {len(during)} GETs"
    # Once the upstream is back, answers are live again.
    assert [r.text for r in after[10:]] == [f"{url} after" for url in urls]
    assert not any(r.extensions["resilience"].from_cache for r in after[10:])


async def test_the_alternate_takes_over_while_the_primary_circuit_is_open(
    server: LoopbackServer, mirror: LoopbackServer
) -> None:
    server.set_handler(lambda r: Reply(503, body=b"primary down"))
    mirror.set_handler(lambda r: Reply(200, body=f"mirror {r.path}".encode()))
    alternate = Alternate(
        mirror.url,
        # The mirror has a breaker of its own, which stays closed.
        pipeline=Pipeline.builder()
        .circuit_breaker(failure_ratio=0.5, minimum_throughput=2)
        .build(),
    )
    pipeline = (
        Pipeline.builder()
        .fallback(alternate=alternate)
        .circuit_breaker(failure_ratio=1.0, minimum_throughput=2, break_duration=60.0)
        .build()
    )
    async with ResilientClient(pipeline=pipeline, base_url=server.url) as client:
        responses = [await client.get(f"/quote/{n}?ccy=EUR") for n in range(6)]
    assert [r.text for r in responses] == [f"mirror /quote/{n}?ccy=EUR" for n in range(6)]
    # Two failures opened the primary's circuit; after that it was never called.
    assert len(server.requests) == 2
    causes = [r.extensions["resilience"].fallback_cause for r in responses]
    assert causes == ["HTTP 503"] * 2 + ["BrokenCircuitError"] * 4
    assert {r.headers["host"] for r in mirror.requests} == {mirror.url.removeprefix("http://")}


async def test_a_post_goes_to_the_alternate_only_if_it_never_reached_the_primary(
    server: LoopbackServer, mirror: LoopbackServer
) -> None:
    server.set_handler(lambda r: Reply(503))
    pipeline = (
        Pipeline.builder()
        .fallback(alternate=mirror.url)
        .circuit_breaker(failure_ratio=1.0, minimum_throughput=1, break_duration=60.0)
        .build()
    )
    async with ResilientClient(pipeline=pipeline, base_url=server.url) as client:
        first = await client.post("/pay", json={"amount": 5})  # reached the primary: 503 stays
        second = await client.post("/pay", json={"amount": 5})  # rejected by the open breaker
    assert first.status_code == 503
    assert second.status_code == 200
    assert [r.body for r in mirror.requests] == [b'{"amount":5}']


async def test_hedging_cuts_a_slow_first_answer_and_releases_the_loser(
    server: LoopbackServer,
) -> None:
    answered = 0

    def upstream(request: ReceivedRequest) -> Reply:
        nonlocal answered
        answered += 1
        if answered == 1:
            return Reply(200, body=b"slow", delay=2.0)
        return Reply(200, body=b"fast", delay=0.01)

    server.set_handler(upstream)
    delay = 0.2
    pipeline = Pipeline.builder().hedging(delay=delay, max_hedged_attempts=2).build()
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    timeout = httpx.Timeout(5.0, pool=0.5)
    async with ResilientClient(
        pipeline=pipeline, base_url=server.url, limits=limits, timeout=timeout
    ) as client:
        started = time.monotonic()
        response = await client.get("/price")
        elapsed = time.monotonic() - started
        assert response.text == "fast"
        # Well under the 2 s the first answer takes (the bar: under delay + 0.3 s).
        assert elapsed < delay + 0.3, f"hedged GET took {elapsed:.3f} s"
        assert len(server.requests) == 2
        attempts = response.extensions["resilience"].attempts
        assert [a.hedged for a in attempts] == [False, True]
        # The losing connection was given back: both pool slots serve at once again.
        server.set_handler(lambda r: Reply(200, body=b"again", delay=0.05))
        results: list[str] = []
        async with anyio.create_task_group() as tg:
            for _ in range(2):

                async def get() -> None:
                    results.append((await client.get("/after")).text)

                tg.start_soon(get)
    assert results == ["again", "again"]


async def test_hedging_does_not_duplicate_a_post(server: LoopbackServer) -> None:
    server.set_handler(lambda r: Reply(200, body=b"done", delay=0.3))
    pipeline = Pipeline.builder().hedging(delay=0.05).build()
    async with ResilientClient(pipeline=pipeline, base_url=server.url) as client:
        response = await client.post("/orders", json={"sku": "x"})
    assert response.text == "done"
    assert len(server.requests) == 1


async def test_an_alternate_failing_too_leaves_the_original_failure(
    server: LoopbackServer, mirror: LoopbackServer
) -> None:
    server.set_handler(lambda r: Reply(503, body=b"primary"))
    mirror.set_handler(lambda r: Reply(502, body=b"mirror"))
    pipeline = Pipeline.builder().fallback(alternate=mirror.url).build()
    async with ResilientClient(pipeline=pipeline, base_url=server.url) as client:
        response = await client.get("/x")
    assert (response.status_code, response.text) == (503, "primary")
    assert response.extensions["resilience"].fallback is None


async def test_an_open_breaker_without_any_fallback_source_answering_raises(
    server: LoopbackServer,
) -> None:
    server.set_handler(lambda r: Reply(503))
    pipeline = (
        Pipeline.builder()
        .fallback(cache=ResponseCache())
        .circuit_breaker(failure_ratio=1.0, minimum_throughput=1, break_duration=60.0)
        .build()
    )
    async with ResilientClient(pipeline=pipeline, base_url=server.url) as client:
        assert (await client.get("/never-cached")).status_code == 503
        with pytest.raises(BrokenCircuitError):
            await client.get("/never-cached")
