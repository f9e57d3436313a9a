"""The shared limiter's own logic (queueing, waiting, failure modes) against a scripted store.

No Redis here: a store that answers what the test tells it to, so that every path is exact and
runs on asyncio and trio alike. tests/integration/redis_backend/ has the real thing.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from httpx_resilience import Context, Pipeline, RateLimiter, RateLimitRejected
from httpx_resilience.backends import FailureMode, StoreUnavailable
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio


class ScriptedStore:
    """Answers ``take`` with the queued answers (seconds to wait; 0.0 admits), then admits.

    Each call yields once, like a round trip; ``down`` makes every call fail.
    """

    def __init__(self, failure_mode: FailureMode = "open") -> None:
        self.failure_mode: FailureMode = failure_mode
        self.answers: deque[float] = deque()
        self.calls: list[tuple[Any, float]] = []
        self.down = False
        self.clock: FakeClock | None = None

    def bucket_name(self, profile: str | None, partition: str | None) -> Any:
        return (profile, partition)

    async def take(self, name: Any) -> float:
        await anyio.lowlevel.checkpoint()
        if self.down:
            raise StoreUnavailable("ConnectionError", retry_after=1.0)
        answer = self.answers.popleft() if self.answers else 0.0
        self.calls.append((name, self.clock.monotonic() if self.clock else 0.0))
        return answer


class ScriptedBackend:
    def __init__(self, store: ScriptedStore) -> None:
        self.store = store
        self.made: list[tuple[float, float]] = []

    def token_store(self, *, rate: float, burst: float) -> ScriptedStore:
        self.made.append((rate, burst))
        return self.store


def shared(
    *, clock: FakeClock, store: ScriptedStore | None = None, **options: Any
) -> tuple[Pipeline, ScriptedStore]:
    store = store if store is not None else ScriptedStore()
    store.clock = clock
    limiter = RateLimiter(clock=clock, backend=ScriptedBackend(store), **options)
    return Pipeline([limiter]), store


async def noop() -> None:
    return None


async def test_the_store_is_asked_once_per_call_with_the_limiters_rate_and_burst() -> None:
    store = ScriptedStore()
    backend = ScriptedBackend(store)
    limiter = RateLimiter(rate=3.0, burst=2, key=lambda c: "k", backend=backend)
    for _ in range(3):
        await Pipeline([limiter]).execute(noop, Context(operation_key="p"))
    assert backend.made == [(3.0, 2.0)]
    assert [name for name, _ in store.calls] == [("p", "k")] * 3


async def test_a_refused_call_sleeps_until_the_named_time_and_asks_again() -> None:
    clock = FakeClock()
    pipeline, store = shared(clock=clock, rate=2.0, burst=1, max_wait=2.0)
    store.answers.extend([0.5, 0.25])  # another process takes the first token it waited for
    await pipeline.execute(noop)
    assert [t for _, t in store.calls] == [0.0, 0.5, 0.75]
    assert clock.monotonic() == 0.75


async def test_a_wait_past_max_wait_is_rejected_before_sleeping_or_after_the_last_answer() -> None:
    clock = FakeClock()
    pipeline, store = shared(clock=clock, rate=2.0, burst=1, max_wait=0.7)
    store.answers.append(0.8)
    with pytest.raises(RateLimitRejected) as info:
        await pipeline.execute(noop)
    assert (info.value.retry_after, clock.monotonic()) == (0.8, 0.0)
    store.answers.extend([0.5, 0.5])  # asleep 0.5 s, then told 0.5 s more: past 0.7
    context = Context()
    with pytest.raises(RateLimitRejected, match="shared") as info:
        await pipeline.execute(noop, context)
    assert (info.value.retry_after, clock.monotonic()) == (0.5, 0.5)
    assert [e.name for e in context.report.events] == ["rate_limited"]


async def test_waiting_calls_of_a_process_queue_and_only_the_first_asks_the_store() -> None:
    clock = FakeClock(autojump=False)
    pipeline, store = shared(clock=clock, rate=2.0, burst=1, max_wait=10.0)
    admitted: list[tuple[str, float]] = []

    async def take(name: str) -> None:
        async def call() -> None:
            admitted.append((name, clock.monotonic()))

        await pipeline.execute(call)

    # Each waiter in turn is told "0.5 s", sleeps, and is admitted when it asks again.
    store.answers.extend([0.5, 0.0] * 3)
    async with anyio.create_task_group() as tg:
        for name in "abc":
            tg.start_soon(take, name)
            await anyio.wait_all_tasks_blocked()
        for _ in range(3):
            clock.advance(0.5)
            await anyio.wait_all_tasks_blocked()
    assert admitted == [("a", 0.5), ("b", 1.0), ("c", 1.5)]
    # Per token, the one in front asks twice (told when, then served); b and c, queued behind,
    # never asked before their turn.
    assert [t for _, t in store.calls] == [0.0, 0.5, 0.5, 1.0, 1.0, 1.5]


async def test_a_queued_call_whose_turn_comes_too_late_is_rejected() -> None:
    clock = FakeClock(autojump=False)
    pipeline, store = shared(clock=clock, rate=2.0, burst=1, max_wait=10.0)
    store.answers.append(1.0)  # the first waiter will wait a whole second
    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.execute, noop)
        await anyio.wait_all_tasks_blocked()
        context = Context(deadline=0.6)  # 0.5 s at least (one token after the first): queued
        with anyio.CancelScope() as scope:

            async def late() -> None:
                with pytest.raises(RateLimitRejected) as info:
                    await pipeline.execute(noop, context)
                assert info.value.retry_after == 0.5  # one in line ahead of it, at 2/s
                assert clock.monotonic() == 0.6
                scope.cancel()

            tg.start_soon(late)
            await anyio.wait_all_tasks_blocked()
            clock.advance(0.6)
            await anyio.wait_all_tasks_blocked()
        clock.advance(0.4)
    assert [e.name for e in context.report.events] == ["rate_limited"]


async def test_a_cancelled_waiter_gives_its_place_to_the_next() -> None:
    clock = FakeClock(autojump=False)
    pipeline, store = shared(clock=clock, rate=1.0, burst=1, max_wait=10.0)
    admitted: list[tuple[str, float]] = []

    async def take(name: str) -> None:
        async def call() -> None:
            admitted.append((name, clock.monotonic()))

        await pipeline.execute(call)

    first, middle = anyio.CancelScope(), anyio.CancelScope()

    async def cancellable(scope: anyio.CancelScope, name: str) -> None:
        with scope:
            await take(name)

    store.answers.extend([1.0])
    async with anyio.create_task_group() as tg:
        tg.start_soon(cancellable, first, "first")
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(cancellable, middle, "middle")
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(take, "last")
        await anyio.wait_all_tasks_blocked()
        middle.cancel()  # not first in line: just leaves the queue
        await anyio.wait_all_tasks_blocked()
        first.cancel()  # first in line: hands its turn on
        await anyio.wait_all_tasks_blocked()
    assert admitted == [("last", 0.0)]


@pytest.mark.parametrize("max_wait", [0.0, 1.0])
async def test_closed_rejects_when_the_store_fails(max_wait: float) -> None:
    clock = FakeClock()
    store = ScriptedStore(failure_mode="closed")
    store.down = True
    pipeline, _ = shared(clock=clock, store=store, rate=1.0, burst=5, max_wait=max_wait)
    context = Context(operation_key="p")
    with pytest.raises(RateLimitRejected, match="failure_mode is 'closed'") as info:
        await pipeline.execute(noop, context)
    assert info.value.retry_after == 1.0
    assert info.value.__cause__ is None
    [event] = context.report.events
    assert (event.name, event.profile, dict(event.detail)) == (
        "rate_limit_backend_failed",
        "p",
        {"failure_mode": "closed", "error": "ConnectionError"},
    )


async def test_open_falls_back_to_a_local_bucket_of_the_same_rate_and_burst() -> None:
    clock = FakeClock()
    store = ScriptedStore(failure_mode="open")
    store.down = True
    pipeline, _ = shared(clock=clock, store=store, rate=2.0, burst=2, key=lambda c: "t")
    for _ in range(2):
        context = Context()
        await pipeline.execute(noop, context)
        assert [e.detail["failure_mode"] for e in context.report.events] == ["open"]
    context = Context()
    with pytest.raises(RateLimitRejected, match="the rate limit for 't' is reached") as info:
        await pipeline.execute(noop, context)
    assert info.value.retry_after == 0.5
    assert [e.name for e in context.report.events] == ["rate_limit_backend_failed", "rate_limited"]
    store.down = False
    await pipeline.execute(noop)  # the store again
    assert len(store.calls) == 1


async def test_a_subclass_of_rate_limiter_never_silently_ignores_a_backend() -> None:
    class Mine(RateLimiter):
        __slots__ = ()

    store = ScriptedStore()
    limiter = Mine(rate=1, backend=ScriptedBackend(store))
    assert type(limiter) is Mine
    await Pipeline([limiter]).execute(noop)
    await Pipeline([limiter]).execute(noop)
    assert len(store.calls) == 2  # both tokens from the store: its one in memory is untouched
    assert limiter.available() == 1
