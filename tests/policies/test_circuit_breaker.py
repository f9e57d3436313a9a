from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from httpx_resilience import (
    BrokenCircuitError,
    Bulkhead,
    BulkheadRejected,
    CircuitBreaker,
    CircuitState,
    Context,
    IsolatedCircuitError,
    Pipeline,
    TimeoutRejected,
)
from httpx_resilience.http.classify import HTTP_CLASSIFIER, transient
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio

CLOSED, OPEN, HALF_OPEN, ISOLATED = (
    CircuitState.CLOSED,
    CircuitState.OPEN,
    CircuitState.HALF_OPEN,
    CircuitState.ISOLATED,
)


class Harness:
    """A breaker on a FakeClock, with helpers to make calls that succeed or fail."""

    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock()
        options.setdefault("failure_ratio", 0.5)
        options.setdefault("minimum_throughput", 4)
        options.setdefault("sampling_duration", 10.0)
        options.setdefault("break_duration", 5.0)
        self.breaker = CircuitBreaker(clock=self.clock, **options)
        self.pipeline = Pipeline([self.breaker])
        self.calls = 0

    async def ok(self, context: Context | None = None) -> str:
        async def call() -> str:
            self.calls += 1
            return "ok"

        return await self.pipeline.execute(call, context)

    async def fail(self, context: Context | None = None) -> None:
        async def call() -> None:
            self.calls += 1
            raise ConnectionError("down")

        with pytest.raises(ConnectionError):
            await self.pipeline.execute(call, context)

    async def rejected(self, context: Context | None = None) -> BrokenCircuitError:
        before = self.calls
        with pytest.raises(BrokenCircuitError) as info:
            await self.ok(context)
        assert self.calls == before, "a rejected call must not reach the dependency"
        return info.value

    def at(self, t: float) -> None:
        self.clock.advance(t - self.clock.monotonic())


async def test_opens_at_the_failure_ratio_once_the_minimum_throughput_is_reached() -> None:
    h = Harness(failure_ratio=0.5, minimum_throughput=10)
    for _ in range(5):
        await h.ok()
    for _ in range(4):
        await h.fail()
    assert h.breaker.state is CLOSED  # 4/9: below the minimum throughput anyway
    await h.fail()  # 5/10 = 0.5
    assert h.breaker.state is OPEN
    await h.rejected()


async def test_just_below_the_ratio_stays_closed() -> None:
    h = Harness(failure_ratio=0.5, minimum_throughput=10)
    for _ in range(6):
        await h.ok()
    for _ in range(4):
        await h.fail()  # 4/10
    assert h.breaker.state is CLOSED
    await h.ok()
    assert h.breaker.state is CLOSED


async def test_a_success_that_completes_the_minimum_throughput_can_open_it() -> None:
    h = Harness(failure_ratio=0.5, minimum_throughput=4)
    for _ in range(3):
        await h.fail()
    assert h.breaker.state is CLOSED
    await h.ok()  # 3/4 failed, 4 calls: now judged
    assert h.breaker.state is OPEN


async def test_below_the_minimum_throughput_it_never_opens() -> None:
    h = Harness(failure_ratio=0.1, minimum_throughput=100)
    for _ in range(99):
        await h.fail()
    assert h.breaker.state is CLOSED


async def test_calls_leave_the_time_window_bucket_by_bucket() -> None:
    # 10 s window in 1 s buckets, anchored at the first call (t=0).
    h = Harness(failure_ratio=1.0, minimum_throughput=3)
    await h.fail()  # bucket [0, 1)
    h.at(1.0)
    await h.fail()  # bucket [1, 2)
    h.at(9.99)
    await h.ok()
    h.at(10.0)  # [0, 1) has left the window: one failure and one success remain
    await h.fail()
    assert h.breaker.state is CLOSED  # 2 failures of 3 calls < 1.0
    h.breaker.reset()

    h = Harness(failure_ratio=1.0, minimum_throughput=3)
    await h.fail()
    h.at(1.0)
    await h.fail()
    h.at(9.99)
    await h.fail()  # all three inside [0, 10)
    assert h.breaker.state is OPEN


async def test_an_idle_window_forgets_everything() -> None:
    h = Harness(failure_ratio=1.0, minimum_throughput=2)
    await h.fail()
    h.at(1000.0)
    await h.fail()
    assert h.breaker.state is CLOSED


async def test_open_rejects_with_the_exact_time_to_half_open() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0, break_duration=5.0)
    h.at(100.0)
    await h.fail()
    h.at(101.5)
    error = await h.rejected()
    assert error.retry_after == 3.5
    assert "retry in 3.5 s" in str(error)
    assert h.breaker.state is OPEN
    h.at(105.0)
    assert h.breaker.state is HALF_OPEN  # observed, even before a call arrives


async def test_a_successful_probe_closes_it_with_a_fresh_window() -> None:
    h = Harness(minimum_throughput=2, failure_ratio=0.5)
    await h.fail()
    await h.fail()
    assert h.breaker.state is OPEN
    h.at(5.0)
    context = Context()
    assert await h.ok(context) == "ok"
    assert h.breaker.state is CLOSED
    assert [e.name for e in context.report.events] == ["circuit_half_opened", "circuit_closed"]
    await h.fail()  # the old failures are gone: 1 call is below the minimum throughput
    assert h.breaker.state is CLOSED


async def test_a_failed_probe_opens_it_again() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0, break_duration=5.0)
    await h.fail()
    h.at(5.0)
    context = Context()
    await h.fail(context)
    assert h.breaker.state is OPEN
    assert [e.name for e in context.report.events] == ["circuit_half_opened", "circuit_opened"]
    assert (await h.rejected()).retry_after == 5.0


async def test_half_open_lets_only_so_many_probes_through_at_once() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0, half_open_max_calls=2)
    await h.fail()
    h.at(5.0)
    release = anyio.Event()

    async def probe() -> str:
        await release.wait()
        return "probed"

    async with anyio.create_task_group() as tg:
        tg.start_soon(h.pipeline.execute, probe)
        tg.start_soon(h.pipeline.execute, probe)
        await anyio.wait_all_tasks_blocked()
        error = await h.rejected()
        assert error.retry_after == 0.0
        assert "probe calls are in flight" in str(error)
        release.set()
    assert h.breaker.state is CLOSED


async def test_a_cancelled_probe_frees_its_slot() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0)
    await h.fail()
    h.at(5.0)

    async def hang() -> None:
        await anyio.sleep_forever()

    with anyio.move_on_after(0.01):
        await h.pipeline.execute(hang)
    assert h.breaker.state is HALF_OPEN
    assert await h.ok() == "ok"
    assert h.breaker.state is CLOSED


class Upstream:
    """A dependency on the harness's clock: each call takes ``rtt`` and fails while ``down``."""

    def __init__(self, h: Harness, rtt: float = 0.05) -> None:
        self.h = h
        self.rtt = rtt
        self.down = False
        self.ended: list[tuple[str, float]] = []  # (what, when) of every call through it

    async def call(self, name: str, after: float = 0.0, context: Context | None = None) -> None:
        """Call it ``after`` seconds from now."""
        await self.h.clock.sleep(after)

        async def dependency() -> str:
            self.h.calls += 1
            await self.h.clock.sleep(self.rtt)
            if self.down:
                raise ConnectionError("down")
            return name

        try:
            await self.h.pipeline.execute(dependency, context)
        except BrokenCircuitError as error:
            self.ended.append((f"{name} refused, retry in {error.retry_after:g}", self.now()))
        except ConnectionError:
            self.ended.append((f"{name} failed", self.now()))
        else:
            self.ended.append((f"{name} ok", self.now()))

    def now(self) -> float:
        return round(self.h.clock.monotonic(), 9)


async def test_with_max_wait_calls_in_the_break_wait_for_the_probe_and_follow_its_success() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0, break_duration=0.5, max_wait=1.0)
    await h.fail()  # open until 0.5
    upstream = Upstream(h)
    h.at(0.2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(upstream.call, "a")
        tg.start_soon(upstream.call, "b", 0.1)
    # At 0.5 one of them is the probe; its success at 0.55 lets the other through.
    assert sorted(when for _, when in upstream.ended) == [0.55, 0.6]
    assert {what for what, _ in upstream.ended} == {"a ok", "b ok"}
    assert h.calls == 3
    assert h.breaker.state is CLOSED


async def test_with_max_wait_a_failed_probe_refuses_the_waiting_calls_at_its_verdict() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0, break_duration=0.5, max_wait=1.0)
    await h.fail()
    upstream = Upstream(h)
    upstream.down = True
    h.at(0.2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(upstream.call, "a")
        tg.start_soon(upstream.call, "b")
    # The probe fails at 0.55 and opens the circuit again until 1.05: the other call is refused
    # then, not held for the next probe though its max_wait (until 1.2) would allow it.
    assert sorted(upstream.ended) in (
        [("a failed", 0.55), ("b refused, retry in 0.5", 0.55)],
        [("a refused, retry in 0.5", 0.55), ("b failed", 0.55)],
    )
    assert h.calls == 2


async def test_with_max_wait_a_call_is_refused_at_once_when_no_probe_is_due_in_time() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0, break_duration=5.0, max_wait=1.0)
    await h.fail()  # open until 5.0
    h.at(3.5)
    assert (await h.rejected()).retry_after == 1.5  # the probe is due after max_wait
    assert h.clock.monotonic() == 3.5
    h.at(4.5)
    deadline = Context(deadline=4.9)
    assert (await h.rejected(deadline)).retry_after == 0.5  # due after the deadline
    assert h.clock.monotonic() == 4.5


async def test_with_max_wait_a_slow_probe_holds_a_call_no_longer_than_max_wait() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0, break_duration=0.5, max_wait=1.0)
    await h.fail()
    upstream = Upstream(h, rtt=3.0)
    h.at(0.5)
    async with anyio.create_task_group() as tg:
        tg.start_soon(upstream.call, "probe")
        tg.start_soon(upstream.call, "waiter", 0.1)
    assert upstream.ended == [("waiter refused, retry in 0", 1.6), ("probe ok", 3.5)]


async def test_with_max_wait_an_isolated_circuit_refuses_at_once() -> None:
    h = Harness(max_wait=10.0)
    h.breaker.isolate()
    with pytest.raises(IsolatedCircuitError):
        await h.ok()
    assert h.clock.monotonic() == 0.0


async def test_with_max_wait_a_cancelled_waiter_holds_nothing() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0, break_duration=0.5, max_wait=1.0)
    await h.fail()
    upstream = Upstream(h)
    h.at(0.2)
    h.clock.autojump = False  # time moves only when told: the wait is cancelled mid-way
    async with anyio.create_task_group() as tg:
        tg.start_soon(upstream.call, "cancelled")
        await anyio.wait_all_tasks_blocked()
        assert h.clock.sleepers == 1  # it waits for the break to end
        tg.cancel_scope.cancel()
    assert upstream.ended == []
    assert h.calls == 1
    assert h.clock.sleepers == 0
    h.clock.autojump = True
    h.at(0.5)
    assert await h.ok() == "ok"  # the probe slot is free: the next call probes and closes it
    assert h.breaker.state is CLOSED


async def test_with_max_wait_inside_a_timeout_a_call_waits_only_for_a_probe_it_can_see() -> None:
    """Composed: a 0.3 s timeout outside the breaker sets each call's deadline. A call whose
    deadline comes before the probe is refused at once; one that becomes the probe and is cut
    by the timeout frees the probe's place, and the next call probes and closes the circuit."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        minimum_throughput=1, failure_ratio=1.0, break_duration=0.5, max_wait=1.0, clock=clock
    )
    pipeline = Pipeline.builder(clock=clock).timeout(0.3).add(breaker).build()

    async def down() -> None:
        raise ConnectionError("down")

    async def hangs() -> str:
        await clock.sleep(10.0)
        return "late"

    async def ok() -> str:
        return "ok"

    with pytest.raises(ConnectionError):
        await pipeline.execute(down)  # opens it until 0.5
    with pytest.raises(BrokenCircuitError):
        await pipeline.execute(ok)  # its deadline, 0.3, comes before the probe
    assert clock.monotonic() == 0.0
    clock.advance(0.3)
    with pytest.raises(TimeoutRejected):
        await pipeline.execute(hangs)  # waits to 0.5, probes, and is cut at 0.6
    assert clock.monotonic() == pytest.approx(0.6)
    assert breaker.state is HALF_OPEN  # cancelled: no verdict, and no slot held
    assert await pipeline.execute(ok) == "ok"
    assert breaker.state is CLOSED


async def test_cancellation_never_counts_as_a_failure() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0)

    async def hang() -> None:
        await anyio.sleep_forever()

    for _ in range(5):
        with anyio.move_on_after(0.001):
            await h.pipeline.execute(hang)
    assert h.breaker.state is CLOSED
    await h.ok()
    assert h.breaker.state is CLOSED


async def test_the_break_grows_exponentially_up_to_the_maximum() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0, break_duration=1.0, break_duration_max=5.0)
    await h.fail()
    breaks: list[float] = []
    for _ in range(5):
        retry_after = (await h.rejected()).retry_after
        assert retry_after is not None
        breaks.append(retry_after)
        h.at(h.clock.monotonic() + retry_after)
        await h.fail()  # the probe fails
    assert breaks == [1.0, 2.0, 4.0, 5.0, 5.0]
    h.at(h.clock.monotonic() + 5.0)
    await h.ok()  # a probe succeeds: closed, and the growth starts over
    await h.fail()
    assert (await h.rejected()).retry_after == 1.0


async def test_without_a_maximum_the_break_stays_the_same() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0, break_duration=2.0)
    await h.fail()
    for _ in range(3):
        assert (await h.rejected()).retry_after == 2.0
        h.at(h.clock.monotonic() + 2.0)
        await h.fail()


async def test_isolate_holds_it_open_until_reset() -> None:
    h = Harness()
    h.breaker.isolate()
    assert h.breaker.state is ISOLATED
    with pytest.raises(IsolatedCircuitError) as info:
        await h.ok()
    assert info.value.retry_after is None
    h.at(10_000.0)
    with pytest.raises(IsolatedCircuitError):
        await h.ok()
    h.breaker.reset()
    assert h.breaker.state is CLOSED
    assert await h.ok() == "ok"


async def test_reset_closes_an_open_circuit() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0)
    await h.fail()
    h.breaker.reset()
    assert h.breaker.state is CLOSED
    assert await h.ok() == "ok"


async def test_outcomes_of_calls_from_a_past_state_do_not_count() -> None:
    h = Harness(minimum_throughput=2, failure_ratio=1.0)
    release = anyio.Event()

    async def slow_failure() -> None:
        await release.wait()
        raise ConnectionError("late")

    async with anyio.create_task_group() as tg:

        async def late() -> None:
            with pytest.raises(ConnectionError):
                await h.pipeline.execute(slow_failure)

        tg.start_soon(late)
        await anyio.wait_all_tasks_blocked()
        await h.fail()
        await h.fail()
        assert h.breaker.state is OPEN
        h.at(5.0)
        await h.ok()  # probe: closed, fresh window
        release.set()
    await h.fail()
    assert h.breaker.state is CLOSED  # the late failure was not counted in the new window


async def test_slow_calls_open_it_even_when_they_succeed() -> None:
    h = Harness(
        minimum_throughput=2, failure_ratio=1.0, slow_call_duration=1.0, slow_call_ratio=0.5
    )

    async def slow() -> str:
        await h.clock.sleep(1.0)
        return "slow"

    async def fast() -> str:
        await h.clock.sleep(0.999)
        return "fast"

    await h.pipeline.execute(fast)
    assert h.breaker.state is CLOSED
    await h.pipeline.execute(slow)  # 1 slow of 2
    assert h.breaker.state is OPEN


async def test_a_count_window_judges_the_last_calls() -> None:
    h = Harness(window="count", window_size=4, minimum_throughput=4, failure_ratio=0.75)
    await h.fail()
    await h.fail()
    for _ in range(4):
        await h.ok()  # the failures slide out of the last four
    await h.fail()
    await h.fail()
    assert h.breaker.state is CLOSED  # 2 of the last 4
    await h.fail()
    assert h.breaker.state is OPEN  # 3 of the last 4
    h.at(1000.0)  # time does not empty a count window; the break is over though
    assert h.breaker.state is HALF_OPEN


async def test_unhandled_errors_count_as_successes() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0, handle=lambda o: False)
    await h.fail()
    assert h.breaker.state is CLOSED


async def test_in_the_http_layer_only_transient_outcomes_are_failures() -> None:
    h = Harness(minimum_throughput=2, failure_ratio=0.4)

    async def answer(status: int) -> httpx.Response:
        return httpx.Response(status)

    for _ in range(3):
        await h.pipeline.execute(lambda: answer(404), Context(classifier=HTTP_CLASSIFIER))
    assert h.breaker.state is CLOSED
    await h.pipeline.execute(lambda: answer(503), Context(classifier=HTTP_CLASSIFIER))
    assert h.breaker.state is CLOSED  # 1 of 4
    await h.pipeline.execute(lambda: answer(502), Context(classifier=HTTP_CLASSIFIER))
    assert h.breaker.state is OPEN  # 2 of 5


async def test_in_the_http_layer_a_429_is_backpressure_and_does_not_count() -> None:
    # Issue 13: a rate-limited dependency is up; a breaker opening on its 429s refused every
    # call while it was serving.
    h = Harness(minimum_throughput=4, failure_ratio=0.5)

    async def too_many() -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "1"})

    async def raised_429() -> httpx.Response:
        request = httpx.Request("GET", "http://upstream.test/")
        httpx.Response(429, request=request).raise_for_status()
        raise AssertionError("unreachable")

    for _ in range(10):
        response = await h.pipeline.execute(too_many, Context(classifier=HTTP_CLASSIFIER))
        assert response.status_code == 429
        with pytest.raises(httpx.HTTPStatusError):
            await h.pipeline.execute(raised_429, Context(classifier=HTTP_CLASSIFIER))
    assert h.breaker.state is CLOSED


async def test_a_breaker_given_handle_transient_counts_429s_again() -> None:
    h = Harness(minimum_throughput=4, failure_ratio=0.5, handle=transient)

    async def too_many() -> httpx.Response:
        return httpx.Response(429)

    for _ in range(4):
        await h.pipeline.execute(too_many, Context(classifier=HTTP_CLASSIFIER))
    assert h.breaker.state is OPEN
    assert h.breaker.describe()["options"]["handle"] == "transient"


async def test_the_callers_own_overload_never_opens_it() -> None:
    # A breaker outside a bulkhead: a flood of calls over the bulkhead's limit is rejected by
    # the bulkhead, which says nothing about the dependency, so the breaker stays closed.
    clock = FakeClock()
    breaker = CircuitBreaker(failure_ratio=0.5, minimum_throughput=4, clock=clock)
    pipeline = Pipeline([breaker, Bulkhead(max_concurrent=1, clock=clock)])
    release = anyio.Event()
    rejected = 0

    async def held() -> str:
        await release.wait()
        return "ok"

    async def caller() -> None:
        nonlocal rejected
        try:
            await pipeline.execute(held)
        except BulkheadRejected:
            rejected += 1

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(caller)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert rejected == 9  # 9 of 10 calls "failed": far over the ratio, were they counted
    assert breaker.state is CLOSED


async def test_partitions_have_breakers_of_their_own() -> None:
    h = Harness(minimum_throughput=1, failure_ratio=1.0, key=lambda c: c.operation_key or "")
    await h.fail(Context(operation_key="payments"))
    assert h.breaker.state_of("payments") is OPEN
    assert h.breaker.state_of("search") is CLOSED
    assert await h.ok(Context(operation_key="search")) == "ok"
    error = await h.rejected(Context(operation_key="payments"))
    assert "'payments'" in str(error)
    assert h.breaker.partitions() == {"payments": OPEN, "search": CLOSED}
    h.breaker.isolate()
    assert h.breaker.state_of("search") is ISOLATED
    assert h.breaker.state_of("never-seen") is ISOLATED
    h.breaker.reset()
    assert set(h.breaker.partitions().values()) == {CLOSED}


async def test_partitions_are_bounded_and_a_held_one_survives_eviction() -> None:
    h = Harness(
        minimum_throughput=1, failure_ratio=1.0, key=lambda c: c.operation_key, max_partitions=10
    )
    fail_first, release_second = anyio.Event(), anyio.Event()

    async def first() -> None:
        await fail_first.wait()
        raise ConnectionError("fails after eviction")

    async def second() -> str:
        await release_second.wait()
        return "ok"

    async with anyio.create_task_group() as tg:

        async def hold_first() -> None:
            with pytest.raises(ConnectionError):
                await h.pipeline.execute(first, Context(operation_key="held"))

        tg.start_soon(hold_first)
        tg.start_soon(h.pipeline.execute, second, Context(operation_key="held"))
        await anyio.wait_all_tasks_blocked()
        for n in range(50):
            await h.ok(Context(operation_key=f"tenant-{n}"))
        partitions = h.breaker.partitions()
        assert len(partitions) == 10
        assert "held" not in partitions
        fail_first.set()
        await anyio.wait_all_tasks_blocked()
        # The failure opened the evicted breaker, which the second call still holds: a new
        # call for the same key finds it instead of starting a fresh, closed one.
        await h.rejected(Context(operation_key="held"))
        assert h.breaker.state_of("held") is OPEN
        release_second.set()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"failure_ratio": 0}, "failure_ratio must be greater than 0, got 0"),
        ({"failure_ratio": 1.5}, "failure_ratio must be a number between 0 and 1, got 1.5"),
        ({"minimum_throughput": 0}, "minimum_throughput must be an integer >= 1, got 0"),
        ({"sampling_duration": 0}, "sampling_duration must be a finite number > 0, got 0"),
        ({"window": "sliding"}, "window must be 'time' or 'count', got 'sliding'"),
        (
            {"window": "count", "window_size": 0},
            "window_size must be an integer between 1 and 1000000, got 0",
        ),
        (
            {"window": "count", "window_size": 10**20},
            "window_size must be an integer between 1 and 1000000, got 100000000000000000000",
        ),
        (
            {"window": "count", "window_size": 10, "minimum_throughput": 20},
            "minimum_throughput \\(20\\) can never be reached in a count window of window_size 10",
        ),
        ({"break_duration": -1}, "break_duration must be a finite number > 0, got -1"),
        ({"break_duration_max": 1}, "break_duration_max must be >= break_duration"),
        ({"half_open_max_calls": 0}, "half_open_max_calls must be an integer >= 1, got 0"),
        ({"max_wait": -0.5}, "max_wait must be a finite number >= 0, got -0.5"),
        ({"slow_call_ratio": 0.5}, "slow_call_ratio needs slow_call_duration to be set"),
        ({"slow_call_duration": 0}, "slow_call_duration must be a finite number > 0, got 0"),
        ({"key": "host"}, "key must be a function of the context, got 'host'"),
        ({"handle": 3}, "handle must be a predicate over outcomes, got 3"),
        ({"max_partitions": 0}, "max_partitions must be an integer >= 1, got 0"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^CircuitBreaker: {message}"):
        CircuitBreaker(**options)
