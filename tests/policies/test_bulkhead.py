from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from httpx_resilience import Bulkhead, BulkheadRejected, Context, Pipeline
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio


class Gate:
    """Calls that block until released, recording the order they got in."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.open = anyio.Event()

    def call(self, name: str) -> Any:
        async def run() -> str:
            self.entered.append(name)
            await self.open.wait()
            return name

        return run


async def test_at_most_max_concurrent_calls_run_and_the_queue_is_first_come_first_served() -> None:
    bulkhead = Bulkhead(max_concurrent=2, max_queue=3)
    pipeline = Pipeline([bulkhead])
    entered: list[str] = []
    finish = {name: anyio.Event() for name in "abcde"}

    async def run(name: str) -> None:
        async def call() -> None:
            entered.append(name)
            await finish[name].wait()

        await pipeline.execute(call)

    async with anyio.create_task_group() as tg:
        for name in "abcde":
            tg.start_soon(run, name)
            await anyio.wait_all_tasks_blocked()
        assert entered == ["a", "b"]
        assert bulkhead.occupancy() == (2, 3)
        # Free one slot at a time: the longest waiter gets it.
        for done, expected in [("b", "c"), ("a", "d"), ("c", "e")]:
            finish[done].set()
            await anyio.wait_all_tasks_blocked()
            assert entered[-1] == expected
        for event in finish.values():
            event.set()
    assert entered == ["a", "b", "c", "d", "e"]
    assert bulkhead.occupancy() == (0, 0)


async def test_a_full_queue_rejects_at_once() -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queue=1)
    pipeline = Pipeline([bulkhead])
    gate = Gate()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.execute, gate.call("in"))
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(pipeline.execute, gate.call("queued"))
        await anyio.wait_all_tasks_blocked()
        context = Context()
        with pytest.raises(BulkheadRejected, match=r"full \(1 of 1 calls in, 1 of 1 queued\)"):
            await pipeline.execute(gate.call("rejected"), context)
        event = context.report.events[0]
        assert (event.name, event.detail["reason"]) == ("bulkhead_rejected", "full")
        gate.open.set()
    assert gate.entered == ["in", "queued"]


async def test_without_a_queue_the_extra_call_is_rejected() -> None:
    pipeline = Pipeline([Bulkhead(max_concurrent=1)])
    gate = Gate()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.execute, gate.call("in"))
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(BulkheadRejected):
            await pipeline.execute(gate.call("rejected"))
        gate.open.set()


async def test_the_queue_wait_ends_exactly_at_the_queue_timeout() -> None:
    clock = FakeClock()
    pipeline = Pipeline([Bulkhead(max_concurrent=1, max_queue=5, queue_timeout=2.5, clock=clock)])
    gate = Gate()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.execute, gate.call("in"))
        await anyio.wait_all_tasks_blocked()
        context = Context()
        with pytest.raises(BulkheadRejected, match="no free slot in time"):
            await pipeline.execute(gate.call("late"), context)
        assert clock.monotonic() == 2.5
        assert context.report.events[0].detail["reason"] == "queue_timeout"
        gate.open.set()
    assert gate.entered == ["in"]


async def test_the_queue_wait_never_outlives_the_deadline() -> None:
    clock = FakeClock()
    bulkhead = Bulkhead(max_concurrent=1, max_queue=5, queue_timeout=60, clock=clock)
    pipeline = Pipeline([bulkhead])
    gate = Gate()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.execute, gate.call("in"))
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(BulkheadRejected):
            await pipeline.execute(gate.call("late"), Context(deadline=1.25))
        assert clock.monotonic() == 1.25
        with pytest.raises(BulkheadRejected, match="full"):
            await pipeline.execute(gate.call("too late"), Context(deadline=1.0))  # already past
        assert bulkhead.occupancy() == (1, 0)
        gate.open.set()


async def test_a_slot_freed_in_time_admits_the_waiter() -> None:
    clock = FakeClock()
    pipeline = Pipeline([Bulkhead(max_concurrent=1, max_queue=1, queue_timeout=5, clock=clock)])

    async def hold(seconds: float) -> float:
        await clock.sleep(seconds)
        return clock.monotonic()

    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.execute, lambda: hold(3))
        await anyio.wait_all_tasks_blocked()
        assert await pipeline.execute(lambda: hold(1)) == 4.0


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queue=1)
    pipeline = Pipeline([bulkhead])
    gate = Gate()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.execute, gate.call("in"))
        await anyio.wait_all_tasks_blocked()
        with anyio.move_on_after(0.01):
            await pipeline.execute(gate.call("gave up"))
        assert bulkhead.occupancy() == (1, 0)
        tg.start_soon(pipeline.execute, gate.call("queued"))  # the queue has room again
        await anyio.wait_all_tasks_blocked()
        assert bulkhead.occupancy() == (1, 1)
        gate.open.set()
    assert gate.entered == ["in", "queued"]
    assert bulkhead.occupancy() == (0, 0)


async def test_a_cancelled_holder_frees_its_slot() -> None:
    bulkhead = Bulkhead(max_concurrent=1)
    pipeline = Pipeline([bulkhead])
    with anyio.move_on_after(0.01):
        await pipeline.execute(anyio.sleep_forever)
    assert bulkhead.occupancy() == (0, 0)

    async def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await pipeline.execute(fails)
    assert bulkhead.occupancy() == (0, 0)


async def test_a_waiter_cancelled_as_it_is_granted_passes_the_slot_on() -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queue=2)
    pipeline = Pipeline([bulkhead])
    gate = Gate()
    first_done = anyio.Event()
    doomed = anyio.CancelScope()

    async def first() -> None:
        await first_done.wait()

    async def cancelled_waiter() -> None:
        with doomed:
            await pipeline.execute(gate.call("never"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.execute, first)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(cancelled_waiter)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(pipeline.execute, gate.call("next"))
        await anyio.wait_all_tasks_blocked()
        assert bulkhead.occupancy() == (1, 2)
        # The slot is handed to the doomed waiter and, in the same step, it is cancelled.
        first_done.set()
        doomed.cancel()
        await anyio.wait_all_tasks_blocked()
        assert gate.entered == ["next"]
        gate.open.set()
    assert bulkhead.occupancy() == (0, 0)


async def test_the_happy_path_does_not_wait() -> None:
    pipeline = Pipeline([Bulkhead(max_concurrent=1)])
    ran = False

    async def call() -> None:
        nonlocal ran
        ran = True

    # Inside a cancelled scope any checkpoint would raise; a free slot is taken without one.
    with anyio.CancelScope() as scope:
        scope.cancel()
        await pipeline.execute(call)
    assert ran


async def test_partitions_have_their_own_slots() -> None:
    bulkhead = Bulkhead(max_concurrent=1, key=lambda c: c.operation_key or "")
    pipeline = Pipeline([bulkhead])
    gate = Gate()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.execute, gate.call("a1"), Context(operation_key="a"))
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(pipeline.execute, gate.call("b1"), Context(operation_key="b"))
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(BulkheadRejected, match="the bulkhead for 'a' is full"):
            await pipeline.execute(gate.call("a2"), Context(operation_key="a"))
        assert bulkhead.occupancy("a") == (1, 0)
        assert bulkhead.occupancy("b") == (1, 0)
        assert bulkhead.occupancy("c") == (0, 0)
        gate.open.set()
    assert sorted(gate.entered) == ["a1", "b1"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_concurrent": 0}, "max_concurrent must be an integer >= 1, got 0"),
        ({"max_concurrent": 2, "max_queue": -1}, "max_queue must be an integer >= 0, got -1"),
        ({"max_concurrent": 2, "queue_timeout": -1}, "queue_timeout must be a finite number >= 0"),
        ({"max_concurrent": 2, "key": 1}, "key must be a function of the context, got 1"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^Bulkhead: {message}"):
        Bulkhead(**options)
