"""The pacing gate on a FakeClock: exact waits, learned pace, quotas, and the two bars of
issue 13 against a simulated rate-limited upstream."""

from __future__ import annotations

import pickle
from collections import Counter
from typing import Any

import anyio
import httpx
import pytest

from httpx_resilience import (
    CircuitBreaker,
    Context,
    Pacing,
    PacingRejected,
    Pipeline,
    ResilienceEvent,
    ResilientClient,
)
from httpx_resilience.http._errors import as_httpx_error
from httpx_resilience.http.classify import HTTP_CLASSIFIER
from httpx_resilience.testing import FakeClock

from ._upstream import FixedWindow, standard_with_pacing

pytestmark = pytest.mark.anyio

URL = "http://upstream.test/"


def answer(status: int, *headers: tuple[str, str]) -> httpx.Response:
    # UTF-8 bytes, so that non-ASCII garbage gets through to the parser.
    raw = [(name.encode(), value.encode()) for name, value in headers]
    return httpx.Response(status, headers=raw, request=httpx.Request("GET", URL))


def http_context() -> Context:
    context = Context(request=httpx.Request("GET", URL))
    context.classifier = HTTP_CLASSIFIER
    return context


async def call(pipeline: Pipeline, response: httpx.Response, context: Context | None = None) -> Any:
    async def send() -> httpx.Response:
        return response

    return await pipeline.execute(send, context if context is not None else http_context())


def gated(**options: Any) -> tuple[Pipeline, Pacing, FakeClock, list[ResilienceEvent]]:
    clock = FakeClock()
    events: list[ResilienceEvent] = []
    pacing = Pacing(clock=clock, **options)
    return Pipeline([pacing], listeners=[events.append]), pacing, clock, events


async def start_times(pipeline: Pipeline, clock: FakeClock, calls: int) -> list[float]:
    """Make ``calls`` calls at once; the times they got through the gate, in order."""
    started: list[float] = []

    async def one() -> None:
        await call(pipeline, answer(200))
        started.append(clock.monotonic())

    async with anyio.create_task_group() as tg:
        for _ in range(calls):
            tg.start_soon(one)
    return started


# -- the gate --------------------------------------------------------------------------------


async def test_a_retry_after_holds_every_call_to_the_origin_until_then() -> None:
    pipeline, pacing, clock, events = gated()
    refused = await call(pipeline, answer(429, ("Retry-After", "2")))
    assert refused.status_code == 429
    assert pacing.state("http://upstream.test:80")["closed_for"] == 2.0

    started = await start_times(pipeline, clock, 3)
    # All three waited for the gate, not only the call that got the 429; nothing was learned
    # to pace them by (no answer was accepted before), so they went together.
    assert started == [2.0, 2.0, 2.0]
    names = [e.name for e in events]
    assert names.count("pacing_closed") == 1
    assert names.count("paced") == 3
    closed = next(e for e in events if e.name == "pacing_closed")
    assert closed.key == "http://upstream.test:80"
    assert closed.detail["retry_after"] == 2.0


async def test_a_call_that_cannot_wait_is_refused_at_once_with_retry_after() -> None:
    pipeline, _, clock, events = gated(max_wait=1.0)
    await call(pipeline, answer(503, ("Retry-After", "5")))
    with pytest.raises(PacingRejected, match=r"closed for 5 s more") as info:
        await call(pipeline, answer(200))
    assert info.value.retry_after == 5.0
    assert clock.monotonic() == 0.0  # refused without waiting
    assert events[-1].name == "pacing_rejected"
    # Within its deadline only, too.
    pipeline, _, clock, _ = gated(max_wait=60.0)
    await call(pipeline, answer(429, ("Retry-After", "5")))
    context = http_context()
    context.deadline = 3.0
    with pytest.raises(PacingRejected):
        await call(pipeline, answer(200), context)


async def test_the_rejection_is_picklable_and_an_httpx_transport_error() -> None:
    exc = PacingRejected("closed", retry_after=1.5)
    copy = pickle.loads(pickle.dumps(exc))
    assert (type(copy), copy.args, copy.retry_after) == (PacingRejected, ("closed",), 1.5)
    converted: BaseException = as_httpx_error(exc, httpx.Request("GET", URL))
    assert isinstance(converted, httpx.TransportError)
    assert isinstance(converted, PacingRejected)
    again = pickle.loads(pickle.dumps(converted))
    assert again.retry_after == 1.5


@pytest.mark.parametrize(
    "value", ["soon", "-1", "1e3", "²", "Wed, 21 Oct 2015 07:28:00 GMT", "99999999999", ""]
)
async def test_unusable_retry_after_values_leave_the_gate_open(value: str) -> None:
    pipeline, pacing, _, _ = gated()
    await call(pipeline, answer(429, ("Retry-After", value)))
    assert pacing.state("http://upstream.test:80")["closed_for"] == 0.0


async def test_retry_after_ms_closes_the_gate_to_the_millisecond() -> None:
    pipeline, pacing, _, _ = gated()
    await call(pipeline, answer(429, ("retry-after-ms", "1250"), ("Retry-After", "2")))
    assert pacing.state("http://upstream.test:80")["closed_for"] == 1.25


async def test_each_origin_has_its_own_gate() -> None:
    pipeline, pacing, clock, _ = gated()
    await call(pipeline, answer(429, ("Retry-After", "4")))
    other = Context(request=httpx.Request("GET", "https://other.test/"))
    other.classifier = HTTP_CLASSIFIER
    await call(pipeline, answer(200), other)
    assert clock.monotonic() == 0.0
    assert set(pacing.describe()["state"]["partitions"]) == {
        "http://upstream.test:80",
        "https://other.test:443",
    }


async def test_bad_options_name_the_option_and_the_value() -> None:
    with pytest.raises(ValueError, match=r"Pacing: max_wait must be .*-1"):
        Pacing(max_wait=-1)
    with pytest.raises(ValueError, match=r"Pacing: use_quota must be .*'yes'"):
        Pacing(use_quota="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Pacing: key must be a function"):
        Pacing(key="origin")  # type: ignore[arg-type]


# -- reopening at the learned pace ------------------------------------------------------------


async def test_reopening_releases_calls_at_the_pace_the_origin_accepted() -> None:
    pipeline, pacing, clock, _ = gated()
    for _ in range(4):  # accepted at once...
        await call(pipeline, answer(200))
    await call(pipeline, answer(429, ("Retry-After", "2")))  # ...then come back in 2 s

    started: list[float] = []

    async def one() -> None:
        await call(pipeline, answer(200))
        started.append(round(clock.monotonic(), 6))

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(one)
    # 4 answers per 2 s: one call every 0.5 s (and a thousandth, to stay off the origin's
    # window boundary), not six at once.
    assert started == [round(2.0 + i * 0.5005, 6) for i in range(6)]
    assert pacing.state("http://upstream.test:80")["source"] == "retry_after"


async def test_a_pace_that_holds_nobody_back_is_forgotten() -> None:
    pipeline, pacing, clock, _ = gated()
    for _ in range(2):
        await call(pipeline, answer(200))
    await call(pipeline, answer(429, ("Retry-After", "1")))  # a brief overload
    clock.advance(1.0)
    await call(pipeline, answer(200))
    assert pacing.state("http://upstream.test:80")["interval"] == 0.5005
    clock.advance(10.5)  # more than 10 times the second it was learned over, nobody held back
    for _ in range(3):
        await call(pipeline, answer(200))
    assert clock.monotonic() == 11.5  # all three at once
    assert pacing.state("http://upstream.test:80")["source"] is None


async def test_a_503_closes_the_gate_but_teaches_no_pace() -> None:
    """A 503 ("unavailable for a second") says nothing of how fast the origin serves: the calls held
    go at once when the gate reopens, where after a 429 they would be paced."""
    pipeline, pacing, clock, _ = gated()
    for _ in range(2):
        await call(pipeline, answer(200))
    await call(pipeline, answer(503, ("Retry-After", "1")))
    started = await start_times(pipeline, clock, 3)
    assert started == [1.0, 1.0, 1.0]  # held until the gate reopened, then all at once
    assert pacing.state("http://upstream.test:80")["interval"] == 0.0


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    pipeline, _, clock, _ = gated()
    for _ in range(2):
        await call(pipeline, answer(200))
    await call(pipeline, answer(429, ("Retry-After", "1")))
    await call(pipeline, answer(200))  # reopened at 1.0: one call each 0.5005 s from now
    with anyio.move_on_after(0.1):  # a real-time bound: the fake clock jumps at once
        with anyio.CancelScope() as scope:
            scope.cancel()
            await call(pipeline, answer(200))
    await call(pipeline, answer(200))
    assert clock.monotonic() == pytest.approx(1.5005)


# -- quotas ------------------------------------------------------------------------------------


async def test_a_spent_quota_closes_the_gate_until_it_is_renewed() -> None:
    pipeline, pacing, clock, _ = gated()
    await call(pipeline, answer(200, ("RateLimit", '"default";r=0;t=7')))
    state = pacing.state("http://upstream.test:80")
    assert (state["closed_for"], state["source"]) == (7.0, None)
    await call(pipeline, answer(200))
    assert clock.monotonic() == 7.0


@pytest.mark.parametrize(
    "headers",
    [
        [("RateLimit", '"default";r=10;t=30')],
        [("RateLimit", "limit=100, remaining=10, reset=30")],
        [("RateLimit-Remaining", "10"), ("RateLimit-Reset", "30")],
        [("X-RateLimit-Remaining", "10"), ("X-RateLimit-Reset", "30")],
    ],
)
async def test_a_quota_running_out_is_stretched_to_last(headers: list[tuple[str, str]]) -> None:
    pipeline, pacing, clock, _ = gated()
    await call(pipeline, answer(200, *headers))
    state = pacing.state("http://upstream.test:80")
    assert (state["interval"], state["source"]) == (3.0, "quota")
    # Half the calls left go at once, the rest at the quota's pace.
    for _ in range(5):
        await call(pipeline, answer(200))
    assert clock.monotonic() == 0.0
    await call(pipeline, answer(200))
    assert clock.monotonic() == 3.0


async def test_an_x_ratelimit_reset_in_unix_time_is_read_as_a_time() -> None:
    from httpx_resilience.http.classify import parse_rate_limit

    headers = {"X-RateLimit-Remaining": "10", "X-RateLimit-Reset": "1700000030"}
    assert parse_rate_limit(headers, now=1_700_000_000.0) == (10.0, 30.0)
    # Milliseconds too.
    headers["X-RateLimit-Reset"] = "1700000030000"
    assert parse_rate_limit(headers, now=1_700_000_000.0) == (10.0, 30.0)


@pytest.mark.parametrize(
    "headers",
    [
        [("RateLimit", '"default";r=-1;t=30')],
        [("RateLimit", '"default";r=ten;t=30')],
        [("RateLimit", '"default";r=10;t=99999999')],
        [("RateLimit", '"default";r=10')],
        [("RateLimit-Remaining", "²"), ("RateLimit-Reset", "30")],
        [("RateLimit-Remaining", "10")],
        [("X-RateLimit-Remaining", "99999999999999"), ("X-RateLimit-Reset", "30")],
        [("X-RateLimit-Remaining", "10"), ("X-RateLimit-Reset", "1.5e3")],
    ],
)
async def test_garbage_quota_headers_are_ignored(headers: list[tuple[str, str]]) -> None:
    pipeline, pacing, _, _ = gated()
    await call(pipeline, answer(200, *headers))
    assert pacing.state("http://upstream.test:80") == {
        "closed_for": 0.0,
        "interval": 0.0,
        "source": None,
        "in_flight": 0,
    }


async def test_the_tightest_of_several_quotas_wins() -> None:
    from httpx_resilience.http.classify import parse_rate_limit

    value = '"minute";r=50;t=30, "day";r=100;t=3600'
    assert parse_rate_limit({"RateLimit": value}) == (100.0, 3600.0)


# -- composition -------------------------------------------------------------------------------


async def test_a_retry_outside_does_not_wait_twice_for_the_same_gate() -> None:
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).retry(max_attempts=2, base_delay=0.01).pacing().build()
    answers = iter([answer(429, ("Retry-After", "3")), answer(200)])

    async def send() -> httpx.Response:
        return next(answers)

    response = await pipeline.execute(send, http_context())
    assert response.status_code == 200
    assert clock.monotonic() == 3.0  # the retry's own wait of Retry-After, and no more


async def test_a_gate_refusal_is_neutral_to_a_breaker() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_ratio=0.5, minimum_throughput=2, clock=clock, handle=lambda o: o.failed
    )
    pipeline = Pipeline([breaker, Pacing(clock=clock, max_wait=0.0)])
    await call(pipeline, answer(429, ("Retry-After", "9")))
    for _ in range(5):
        with pytest.raises(PacingRejected):
            await call(pipeline, answer(200))
    assert breaker.state.value == "closed"


async def test_describe_shows_the_gate() -> None:
    pipeline, pacing, clock, _ = gated(max_wait=5.0)
    await call(pipeline, answer(200))
    await call(pipeline, answer(429, ("Retry-After", "2")))
    clock.advance(0.5)
    described = pacing.describe()
    assert described["policy"] == "pacing"
    assert described["options"] == {
        "max_wait": 5.0,
        "use_quota": True,
        "key": "by_origin",
        "max_partitions": 10_000,
    }
    assert described["state"]["partitions"]["http://upstream.test:80"]["closed_for"] == 1.5


# -- the bars of issue 13, on a simulated upstream ------------------------------------------


async def eager_callers(client: httpx.AsyncClient, clock: FakeClock, n: int, until: float) -> None:
    """``n`` callers each sending one request after another until ``until``; a caller the gate
    refuses waits as long as the refusal says."""

    async def caller() -> None:
        while clock.monotonic() < until:
            try:
                await client.get(URL)
            except PacingRejected as exc:
                await clock.sleep(exc.retry_after)

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(caller)


async def test_bar_quota_headers_100_per_10s_for_30s_zero_429s() -> None:
    clock = FakeClock()
    upstream = FixedWindow(clock.monotonic, limit=100, window=10.0, headers=True)
    pipeline = standard_with_pacing(clock)
    async with ResilientClient(pipeline=pipeline, transport=upstream.transport()) as client:
        await eager_callers(client, clock, 20, until=30.0)
    windows = range(3)
    assert sum(upstream.refused.values()) == 0
    used = sum(upstream.accepted[w] for w in windows) / (100 * len(windows))
    assert used >= 0.9


async def test_bar_fixed_window_5_per_second_settles_at_the_limit() -> None:
    clock = FakeClock()
    upstream = FixedWindow(clock.monotonic, limit=5, window=1.0)
    pipeline = standard_with_pacing(clock)
    async with ResilientClient(pipeline=pipeline, transport=upstream.transport()) as client:
        await eager_callers(client, clock, 20, until=30.0)
    windows = range(30)
    assert [upstream.accepted[w] for w in windows] == [5] * 30  # the full quota of each
    first = min(w for w in upstream.windows() if upstream.refused[w])
    later = [w for w in upstream.windows() if w > first]
    sent = sum(upstream.accepted[w] + upstream.refused[w] for w in later)
    refused = sum(upstream.refused[w] for w in later)
    assert refused <= 0.05 * sent
    assert Counter(upstream.refused) == Counter({0: upstream.refused[0]})


async def test_a_profile_builds_a_gate_per_origin() -> None:
    from httpx_resilience import Registry

    registry = Registry.from_mapping({"profiles": {"default": {"pacing": {"max_wait": 5.0}}}})
    described = registry.get("default").describe()["policies"]
    assert described[0]["policy"] == "pacing"
    assert described[0]["options"]["max_wait"] == 5.0
    assert described[0]["options"]["key"] == "by_origin"
    with pytest.raises(ValueError, match=r"pacing.max_wait: expected a finite number >= 0"):
        Registry.from_mapping({"profiles": {"default": {"pacing": {"max_wait": -1}}}})
