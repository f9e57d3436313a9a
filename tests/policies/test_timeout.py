from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import pytest
import sniffio

from httpx_resilience import Context, Pipeline, Timeout, TimeoutRejected
from httpx_resilience.policies import timeout as timeout_module
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio
T = TypeVar("T")


class DeadlineSpy:
    """Records the deadline the inner part of the pipeline sees."""

    def __init__(self) -> None:
        self.seen: list[float | None] = []

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        self.seen.append(context.deadline)
        return await next(context)


# -- virtual time: exact ----------------------------------------------------------------------


async def test_a_slow_call_is_cancelled_exactly_when_the_time_is_up() -> None:
    clock = FakeClock(start=10.0)
    pipeline = Pipeline.builder(clock=clock).timeout(2.0).build()
    cancelled = False

    async def slow() -> None:
        nonlocal cancelled
        try:
            await clock.sleep(5.0)
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise

    context = Context()
    with pytest.raises(TimeoutRejected, match="did not finish within 2 s") as info:
        await pipeline.execute(slow, context)
    assert clock.monotonic() == 12.0
    assert cancelled
    assert info.value.timeout == 2.0
    assert [(e.name, e.policy, e.duration) for e in context.report.events] == [
        ("timeout", "timeout", 2.0)
    ]
    assert clock.sleepers == 0


async def test_a_call_that_finishes_in_time_returns_and_leaves_nothing_behind() -> None:
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).timeout(2.0).build()

    async def quick() -> str:
        await clock.sleep(1.999)
        return "done"

    context = Context()
    assert await pipeline.execute(quick, context) == "done"
    assert clock.monotonic() == 1.999
    assert clock.sleepers == 0
    assert context.report.events == []
    assert context.deadline is None


async def test_the_deadline_is_set_for_the_inside_and_restored_after() -> None:
    clock = FakeClock(start=100.0)
    spy = DeadlineSpy()
    pipeline = Pipeline.builder(clock=clock).timeout(3.0).add(spy).build()
    context = Context()

    async def call() -> None:
        return None

    await pipeline.execute(call, context)
    assert spy.seen == [103.0]
    assert context.deadline is None

    async def fails() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await pipeline.execute(fails, context)
    assert context.deadline is None


async def test_an_earlier_deadline_from_outside_tightens_the_timeout() -> None:
    clock = FakeClock()
    spy = DeadlineSpy()
    pipeline = Pipeline.builder(clock=clock).timeout(10.0).add(spy).build()

    async def slow() -> None:
        await clock.sleep(60)

    context = Context(deadline=4.0)
    with pytest.raises(TimeoutRejected, match="did not finish by its deadline") as info:
        await pipeline.execute(slow, context)
    assert spy.seen == [4.0]
    assert clock.monotonic() == 4.0
    assert info.value.timeout == 4.0
    assert context.deadline == 4.0  # the caller's own deadline is left as it was


async def test_a_later_deadline_from_outside_does_not_loosen_the_timeout() -> None:
    clock = FakeClock()
    spy = DeadlineSpy()
    pipeline = Pipeline.builder(clock=clock).timeout(1.0).add(spy).build()

    async def slow() -> None:
        await clock.sleep(60)

    with pytest.raises(TimeoutRejected):
        await pipeline.execute(slow, Context(deadline=50.0))
    assert spy.seen == [1.0]
    assert clock.monotonic() == 1.0


async def test_nested_timeouts_the_outer_one_fires_first() -> None:
    clock = FakeClock()
    spy = DeadlineSpy()
    pipeline = Pipeline.builder(clock=clock).timeout(5.0).timeout(10.0).add(spy).build()

    async def slow() -> None:
        await clock.sleep(60)

    with pytest.raises(TimeoutRejected) as info:
        await pipeline.execute(slow)
    assert spy.seen == [5.0]
    assert clock.monotonic() == 5.0
    assert info.value.timeout == 5.0


async def test_errors_of_the_call_pass_through_unchanged() -> None:
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).timeout(5.0).build()
    error = ValueError("original")

    async def fails() -> None:
        await clock.sleep(1)
        raise error

    with pytest.raises(ValueError, match="original") as info:
        await pipeline.execute(fails)
    assert info.value is error
    assert clock.sleepers == 0


async def test_outside_cancellation_is_not_a_timeout_virtual_clock() -> None:
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).timeout(5.0).build()

    async def slow() -> None:
        await clock.sleep(60)

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_soon() -> None:
                await clock.sleep(1.0)
                scope.cancel()

            tg.start_soon(cancel_soon)
            await pipeline.execute(slow)
    assert scope.cancelled_caught
    assert clock.monotonic() == 1.0


# -- the system clock: the asyncio watchdog and the cancel-scope path --------------------------


async def test_system_clock_timeout_cancels_a_slow_call() -> None:
    pipeline = Pipeline.builder().timeout(0.05).build()

    async def slow() -> None:
        await anyio.sleep(30)

    with pytest.raises(TimeoutRejected, match=r"within 0\.05 s"):
        await pipeline.execute(slow)


async def test_system_clock_timeout_passes_a_quick_call() -> None:
    pipeline = Pipeline.builder().timeout(30).build()

    async def quick() -> str:
        await anyio.lowlevel.checkpoint()
        return "ok"

    for _ in range(3):
        assert await pipeline.execute(quick) == "ok"


async def test_system_clock_only_the_overrunning_calls_time_out() -> None:
    pipeline = Pipeline.builder().timeout(0.3).build()
    results: dict[int, str] = {}

    async def call(n: int) -> None:
        async def body() -> str:
            await anyio.sleep(5 if n % 3 == 0 else 0.01)
            return "ok"

        try:
            results[n] = await pipeline.execute(body)
        except TimeoutRejected:
            results[n] = "timeout"

    async with anyio.create_task_group() as tg:
        for n in range(12):
            tg.start_soon(call, n)
    assert results == {n: "timeout" if n % 3 == 0 else "ok" for n in range(12)}


async def test_system_clock_outside_cancellation_is_not_a_timeout() -> None:
    pipeline = Pipeline.builder().timeout(30).build()

    async def slow() -> None:
        await anyio.sleep(30)

    with anyio.move_on_after(0.05) as scope:
        await pipeline.execute(slow)
    assert scope.cancelled_caught


async def test_system_clock_earlier_outside_deadline_is_enforced() -> None:
    pipeline = Pipeline.builder().timeout(30).build()

    async def slow() -> None:
        await anyio.sleep(30)

    context = Context(deadline=time.monotonic() + 0.05)
    with pytest.raises(TimeoutRejected, match="by its deadline"):
        await pipeline.execute(slow, context)


async def test_system_clock_nested_timeouts() -> None:
    pipeline = Pipeline.builder().timeout(0.05).timeout(0.05).build()

    async def slow() -> None:
        await anyio.sleep(30)

    for _ in range(3):
        with pytest.raises(TimeoutRejected):
            await pipeline.execute(slow)
    # Nothing is left pending: a later sleep is not hit by a stray cancellation.
    await anyio.sleep(0.01)


# -- asyncio specifics: the uncancel bookkeeping ------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.skipif(sys.version_info < (3, 11), reason="the watchdog needs Task.uncancel()")
async def test_a_cancel_from_outside_at_the_same_moment_as_the_timeout_wins() -> None:
    pipeline = Pipeline([Timeout(30)])
    # Any: mypy checks for 3.10, whose Task has no uncancel() (this test skips there).
    task: Any = asyncio.current_task()
    assert task is not None

    async def body() -> None:
        # Our timer fires and somebody else cancels the task, both before it resumes.
        watchdog = pipeline.policies[0]._watchdog  # type: ignore[attr-defined]

        def fire_and_cancel() -> None:
            timeout_module._fire(watchdog.queue[-1])
            task.cancel()

        asyncio.get_running_loop().call_soon(fire_and_cancel)
        await asyncio.sleep(30)

    with pytest.raises(asyncio.CancelledError):
        await pipeline.execute(body)
    # Our own cancellation request was taken back; only the outside one remains.
    assert task.uncancel() == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.skipif(sys.version_info < (3, 11), reason="the watchdog needs Task.uncancel()")
async def test_a_call_that_swallows_the_cancellation_leaves_no_request_pending() -> None:
    pipeline = Pipeline([Timeout(0.02)])
    # Any: mypy checks for 3.10, whose Task has no cancelling() (this test skips there).
    task: Any = asyncio.current_task()
    assert task is not None

    async def stubborn() -> str:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)
        return "finished anyway"

    assert await pipeline.execute(stubborn) == "finished anyway"
    assert task.cancelling() == 0
    await asyncio.sleep(0.01)  # not cancelled by a leftover request


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.skipif(sys.version_info < (3, 11), reason="the watchdog needs Task.uncancel()")
async def test_the_watchdog_queue_stays_short() -> None:
    policy = Timeout(30)
    pipeline = Pipeline([policy])

    async def quick() -> None:
        return None

    for _ in range(1000):
        await pipeline.execute(quick)
    assert len(policy._watchdog.queue) <= 1  # type: ignore[union-attr]
    assert sniffio.current_async_library() == "asyncio"


class Payload:
    """A result whose lifetime a test follows with a weak reference."""


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_finished_call_leaves_nothing_alive_while_an_older_call_is_pending() -> None:
    # One long call, then quick calls each in an asyncio task of its own (a task keeps its
    # result): once they have returned and their tasks are dropped, the timeout must hold
    # neither the tasks nor, through them, their results and frames.
    pipeline = Pipeline([Timeout(30)])
    results: list[weakref.ref[Payload]] = []
    tasks: list[weakref.ref[asyncio.Task[Payload]]] = []
    release = asyncio.Event()

    async def long() -> None:
        await release.wait()

    async def quick() -> Payload:
        payload = Payload()
        results.append(weakref.ref(payload))
        return payload

    pending = asyncio.create_task(pipeline.execute(long))
    await asyncio.sleep(0)
    for _ in range(50):
        task = asyncio.create_task(pipeline.execute(quick))
        tasks.append(weakref.ref(task))
        await task
    del task
    await asyncio.sleep(0)  # asyncio itself holds the last task's result until the loop turns
    gc.collect()
    assert len(results) == 50
    assert [ref for ref in results if ref() is not None] == []
    assert [ref for ref in tasks if ref() is not None] == []
    release.set()
    await pending


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.skipif(sys.version_info < (3, 11), reason="the watchdog needs Task.uncancel()")
async def test_the_watchdog_queue_stays_bounded_behind_a_pending_call() -> None:
    policy = Timeout(30)
    pipeline = Pipeline([policy])
    release = anyio.Event()
    long_task: list[asyncio.Task[object] | None] = []

    async def long() -> None:
        long_task.append(asyncio.current_task())
        await release.wait()

    async def quick() -> None:
        return None

    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.execute, long)
        await anyio.wait_all_tasks_blocked()
        for _ in range(10_000):
            await pipeline.execute(quick)
        watchdog = policy._watchdog
        assert watchdog is not None
        # Finished calls behind the pending one are dropped; the pending one stays watched.
        assert len(watchdog.queue) <= 128
        pending = [entry for entry in watchdog.queue if entry[0] == timeout_module._ACTIVE]
        assert [entry[1] for entry in pending] == long_task
        release.set()


def test_seconds_must_be_positive() -> None:
    for bad in (0, -1, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="Timeout: seconds must be a finite number > 0"):
            Timeout(bad)  # type: ignore[arg-type]
    assert repr(Timeout(1.5)) == "Timeout(seconds=1.5)"


async def test_on_a_hand_driven_clock_it_fires_at_the_deadline_though_time_moved_first() -> None:
    # The call runs before the timeout's watcher does; time that passes in between (here an
    # advance by hand) must not push the expiry back.
    clock = FakeClock(autojump=False)
    pipeline = Pipeline([Timeout(1.0, clock=clock)])
    started = anyio.Event()
    expired_at: list[float] = []

    async def call() -> None:
        clock.advance(0.5)
        started.set()
        await anyio.sleep_forever()

    async def run() -> None:
        with pytest.raises(TimeoutRejected):
            await pipeline.execute(call)
        expired_at.append(clock.monotonic())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await started.wait()
        await anyio.wait_all_tasks_blocked()
        clock.advance(0.5)
        await anyio.wait_all_tasks_blocked()
        seen = list(expired_at)
        tg.cancel_scope.cancel()
    assert seen == [1.0]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.skipif(sys.version_info < (3, 11), reason="the watchdog needs Task.uncancel()")
async def test_a_fake_clock_runs_the_same_watchdog_as_the_system_clock() -> None:
    # Tests on a FakeClock exercise the production path: one watchdog on the clock's timer,
    # which fires the overrunning call and leaves no timer behind once the calls are over.
    clock = FakeClock()
    policy = Timeout(2.0, clock=clock)
    pipeline = Pipeline([policy])

    async def quick() -> None:
        return None

    async def slow() -> None:
        await clock.sleep(5.0)

    await pipeline.execute(quick)
    assert policy._watchdog is not None
    assert clock.sleepers == 0
    with pytest.raises(TimeoutRejected):
        await pipeline.execute(slow)
    assert clock.monotonic() == 2.0
    assert clock.sleepers == 0


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio_the_timers_of_finished_calls_do_not_pile_up() -> None:
    # trio has no callback timers: the system clock keeps its own heap per run, and every call
    # that ends in time cancels its timer there.
    from httpx_resilience import _clock

    pipeline = Pipeline([Timeout(30)])

    async def quick() -> str:
        return "ok"

    for _ in range(1000):
        assert await pipeline.execute(quick) == "ok"
    assert len(_clock._trio_timers().heap) <= 128
    with pytest.raises(TimeoutRejected):
        await Pipeline([Timeout(0.01)]).execute(anyio.sleep_forever)
