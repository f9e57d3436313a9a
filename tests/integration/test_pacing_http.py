"""The pacing gate against the real loopback server: Retry-After (seconds, date, milliseconds,
garbage), RateLimit headers, and the two bars of issue 13 shortened to run in real time."""

from __future__ import annotations

import email.utils
import time

import anyio
import httpx
import pytest

from httpx_resilience import Pacing, PacingRejected, Pipeline, ResilienceTransport
from httpx_resilience._loopback import LoopbackServer, ReceivedRequest, Reply
from httpx_resilience.testing import FakeClock

from ..policies._upstream import FixedWindow, standard_with_pacing
from .conftest import MakeClient

pytestmark = pytest.mark.anyio


def gate(clock: FakeClock) -> tuple[Pipeline, Pacing]:
    pacing = Pacing(clock=clock)
    return Pipeline([pacing]), pacing


def origin(server: LoopbackServer) -> str:
    return server.url + ""  # scheme://127.0.0.1:port, as by_origin names it


async def test_a_429_with_retry_after_holds_every_request_to_the_origin(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.script(Reply(429, headers=[("Retry-After", "2")]))
    clock = FakeClock()
    pipeline, _ = gate(clock)
    async with make_client(pipeline) as client:
        assert (await client.get("/first")).status_code == 429
        statuses: list[int] = []

        async def one(i: int) -> None:
            statuses.append((await client.get(f"/next/{i}")).status_code)

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(one, i)
    assert statuses == [200, 200, 200]
    assert clock.monotonic() == 2.0  # every one of them waited for the gate
    assert len(server.requests) == 4


@pytest.mark.parametrize(
    ("header", "value", "closed_for"),
    [
        ("Retry-After", "3", 3.0),
        ("retry-after-ms", "1500", 1.5),
        ("Retry-After", "in a bit", 0.0),
        ("Retry-After", "-5", 0.0),
        ("retry-after-ms", "soon", 0.0),
    ],
)
async def test_retry_after_forms_close_the_gate_for_as_long_as_they_say(
    server: LoopbackServer, make_client: MakeClient, header: str, value: str, closed_for: float
) -> None:
    server.script(Reply(429, headers=[(header, value)]))
    clock = FakeClock()
    pipeline, pacing = gate(clock)
    async with make_client(pipeline) as client:
        await client.get("/")
    assert pacing.state(origin(server))["closed_for"] == closed_for


async def test_an_http_date_closes_the_gate_until_that_date(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    date = email.utils.formatdate(time.time() + 5, usegmt=True)
    server.script(Reply(503, headers=[("Retry-After", date)]))
    clock = FakeClock()
    pipeline, pacing = gate(clock)
    async with make_client(pipeline) as client:
        await client.get("/")
    assert 3.0 < pacing.state(origin(server))["closed_for"] <= 5.0  # dates are whole seconds


async def test_a_retry_waits_retry_after_ms_too(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.script(Reply(429, headers=[("retry-after-ms", "1250"), ("Retry-After", "2")]))
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).retry(max_attempts=2, base_delay=0.01).build()
    async with make_client(pipeline) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert clock.monotonic() == 1.25


async def test_ratelimit_headers_pace_the_requests(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.script(Reply(200, headers=[("RateLimit", '"default";r=4;t=8')]))
    clock = FakeClock()
    pipeline, pacing = gate(clock)
    async with make_client(pipeline) as client:
        await client.get("/")
        state = pacing.state(origin(server))
        assert (state["interval"], state["source"]) == (2.0, "quota")
        for _ in range(3):  # half the quota at once, then one each 2 s
            await client.get("/")
    assert clock.monotonic() == 2.0


async def test_x_ratelimit_headers_spent_close_the_gate(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    reset = str(int(time.time()) + 30)  # a Unix time
    server.script(
        Reply(200, headers=[("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", reset)])
    )
    clock = FakeClock()
    pipeline, pacing = gate(clock)
    async with make_client(pipeline) as client:
        await client.get("/")
    assert 28.0 < pacing.state(origin(server))["closed_for"] <= 30.0


# -- the bars, shortened to run in real time ---------------------------------------------------


def rate_limited_server(upstream: FixedWindow) -> tuple[LoopbackServer, list[float]]:
    """A loopback server answering as ``upstream`` does, its windows counted from the first
    request it receives (as an API counts a client's), which the list returned records."""
    first: list[float] = []

    def handle(request: ReceivedRequest) -> Reply:
        if not first:
            first.append(request.received_at)
        upstream.now = lambda: request.received_at - first[0]
        status, headers = upstream.answer()
        return Reply(status, headers=headers)

    return LoopbackServer(handle), first


async def eager(client: httpx.AsyncClient, callers: int, first: list[float], run: float) -> None:
    """``callers`` callers each sending one request after another, stopped ``run`` seconds
    after the server saw the first request; a caller the gate refuses waits as long as the
    refusal says."""

    async def caller() -> None:
        while True:
            try:
                await client.get("/")
            except PacingRejected as exc:
                await anyio.sleep(exc.retry_after)

    async with anyio.create_task_group() as tg:
        for _ in range(callers):
            tg.start_soon(caller)
        while not first:  # the first request may take a while on a busy machine
            await anyio.sleep(0.01)
        await anyio.sleep(first[0] + run - time.monotonic())
        tg.cancel_scope.cancel()


@pytest.mark.serial
async def test_bar_fixed_window_without_headers_in_real_time() -> None:
    """Issue 13's bar as it is (5 per 1 s window, 429 with Retry-After beyond it, 20 eager
    callers through the pipeline proposed as standard), for 3 windows instead of many."""
    upstream = FixedWindow(time.monotonic, limit=5, window=1.0)
    server, first = rate_limited_server(upstream)
    with server:
        async with httpx.AsyncClient(
            base_url=server.url,
            transport=_resilient(standard_with_pacing()),
        ) as client:
            await eager(client, 20, first, run=3.2)
    # Every window the callers were there for from start to end got its full quota.
    ended = 3  # windows 0 to 2 lie wholly within the 3.2 s the callers ran
    assert [upstream.accepted[w] for w in range(ended)] == [5] * ended
    refused_first = min(w for w in upstream.windows() if upstream.refused[w])
    later = [w for w in upstream.windows() if w > refused_first]
    sent = sum(upstream.accepted[w] + upstream.refused[w] for w in later)
    assert sum(upstream.refused[w] for w in later) <= 0.05 * sent


@pytest.mark.serial
async def test_bar_ratelimit_headers_in_real_time() -> None:
    """Issue 13's bar (a quota in RateLimit headers, eager callers: no 429, at least 90 % of
    the quota used), scaled from 100 per 10 s for 30 s to 20 per 1 s for 3 s."""
    upstream = FixedWindow(time.monotonic, limit=20, window=1.0, headers=True)
    server, first = rate_limited_server(upstream)
    with server:
        async with httpx.AsyncClient(
            base_url=server.url,
            transport=_resilient(standard_with_pacing()),
        ) as client:
            await eager(client, 20, first, run=3.2)
    assert sum(upstream.refused.values()) == 0
    ended = 3  # windows 0 to 2 lie wholly within the 3.2 s the callers ran
    used = sum(upstream.accepted[w] for w in range(ended)) / (20 * ended)
    assert used >= 0.9


def _resilient(pipeline: Pipeline) -> httpx.AsyncBaseTransport:
    return ResilienceTransport(pipeline)
