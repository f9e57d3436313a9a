"""Stateful test of Bulkhead: random interleavings of calls against a reference model."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from httpx_resilience import Bulkhead, BulkheadRejected, Context, Pipeline
from httpx_resilience.testing import FakeClock

from ._stateful import HeldCall, LoopDriver, Status, step_failed, task_error

# Clock steps: around the queue timeouts, and 0 (wakes nothing, lets nothing expire).
STEPS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 2.0]


@dataclass
class _Call:
    held: HeldCall
    task: asyncio.Task[int]
    context: Context
    status: Status
    admitted: bool = False  # the model says the dependency was called
    reason: str | None = None  # for a rejection: "full" or "queue_timeout"
    deadline: float | None = None  # for a queued call: when its queue_timeout runs out


class BulkheadMachine(RuleBasedStateMachine):
    """A ``Bulkhead(max_concurrent=N, max_queue=Q, queue_timeout=...)`` on a fake clock.

    The model: ``running`` holds the admitted calls, ``queue`` the waiting ones in arrival
    order. A new call gets in at once if fewer than N run and nobody waits; else it is rejected
    at once ("full") if Q calls already wait or ``queue_timeout`` is 0; else it queues, with a
    deadline of arrival + ``queue_timeout``. Whenever a running call ends (returns, raises or is
    cancelled), its slot goes to the longest waiter. A waiter is rejected ("queue_timeout") when
    the clock reaches its deadline; a cancelled waiter just leaves the queue.

    After every rule the loop settles, then the invariants compare the bulkhead, the calls'
    tasks and the order the dependency was entered in with the model.
    """

    def __init__(self) -> None:
        super().__init__()
        self.driver = LoopDriver()
        self.clock = FakeClock(autojump=False)
        self.now = 0.0  # the model's time: the same additions FakeClock.advance makes
        self.calls: list[_Call] = []
        self.unsettled: set[int] = set()  # calls not yet seen in a final state
        self.running: list[int] = []
        self.queue: list[int] = []
        self.expected_entries: list[int] = []
        # What actually happened inside the bulkhead.
        self.entries: list[int] = []
        self.inside = 0
        self.most_inside = 0

    @initialize(
        max_concurrent=st.integers(1, 3),
        max_queue=st.integers(0, 3),
        queue_timeout=st.sampled_from([None, 0.5, 1.0, 1.25, 0.0]),
    )
    def build(self, max_concurrent: int, max_queue: int, queue_timeout: float | None) -> None:
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.bulkhead = Bulkhead(
            max_concurrent=max_concurrent,
            max_queue=max_queue,
            queue_timeout=queue_timeout,
            clock=self.clock,
        )
        self.pipeline = Pipeline([self.bulkhead])

    # -- the model ------------------------------------------------------------------------------

    def _admit(self, ident: int) -> None:
        call = self.calls[ident]
        call.status = Status.RUNNING
        call.admitted = True
        self.running.append(ident)
        self.expected_entries.append(ident)

    def _free_slot(self) -> None:
        """A running call ended: its slot goes to the longest waiter."""
        if self.queue:
            event("a slot passed to a waiter")
            self._admit(self.queue.pop(0))

    def _end_running(self, ident: int, status: Status) -> None:
        self.running.remove(ident)
        self.calls[ident].status = status
        self._free_slot()

    def _cancel_queued(self, ident: int) -> None:
        self.queue.remove(ident)
        self.calls[ident].status = Status.CANCELLED

    # -- driving the bulkhead -------------------------------------------------------------------

    async def _through_bulkhead(self, held: HeldCall, context: Context) -> int:
        async def call() -> int:
            self.entries.append(held.ident)
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            try:
                return await held()
            finally:
                self.inside -= 1

        return await self.pipeline.execute(call, context)

    def _start(self) -> None:
        ident = len(self.calls)
        held = HeldCall(self.driver.loop, ident)
        context = Context()
        task = self.driver.spawn(self._through_bulkhead(held, context))
        call = _Call(held, task, context, Status.QUEUED)
        self.calls.append(call)
        self.unsettled.add(ident)
        if len(self.running) < self.max_concurrent and not self.queue:
            self._admit(ident)
        elif len(self.queue) >= self.max_queue or self.queue_timeout == 0:
            event("rejected: full")
            call.status, call.reason = Status.REJECTED, "full"
        else:
            self.queue.append(ident)
            if self.queue_timeout is not None:
                call.deadline = self.now + self.queue_timeout

    @rule()
    def start_call(self) -> None:
        self._start()
        self.driver.settle()

    @rule(count=st.integers(2, 4))
    def start_calls_at_once(self, count: int) -> None:
        """Several calls arrive before any of them runs (they run in arrival order)."""
        for _ in range(count):
            self._start()
        self.driver.settle()

    @precondition(lambda self: self.running)
    @rule(index=st.integers(0, 5), ok=st.booleans())
    def finish_running_call(self, index: int, ok: bool) -> None:
        ident = self.running[index % len(self.running)]
        self.calls[ident].held.resolve(ok)
        self._end_running(ident, Status.SUCCEEDED if ok else Status.FAILED)
        self.driver.settle()

    @precondition(lambda self: self.running)
    @rule(index=st.integers(0, 5))
    def cancel_running_call(self, index: int) -> None:
        ident = self.running[index % len(self.running)]
        self.calls[ident].task.cancel()
        self._end_running(ident, Status.CANCELLED)
        self.driver.settle()

    @precondition(lambda self: self.queue)
    @rule(index=st.integers(0, 5))
    def cancel_queued_call(self, index: int) -> None:
        ident = self.queue[index % len(self.queue)]
        self.calls[ident].task.cancel()
        self._cancel_queued(ident)
        self.driver.settle()

    @precondition(lambda self: self.running and self.queue)
    @rule(index=st.integers(0, 5), ok=st.booleans(), cancel_first=st.booleans())
    def finish_running_call_and_cancel_the_first_waiter(
        self, index: int, ok: bool, cancel_first: bool
    ) -> None:
        """Free a slot and cancel the waiter it goes to, before either task runs.

        Whichever happens first in the loop, the slot must pass on to the next waiter.
        """
        ident = self.running[index % len(self.running)]
        first = self.queue[0]
        if cancel_first:
            self.calls[first].task.cancel()
        self.calls[ident].held.resolve(ok)
        if not cancel_first:
            self.calls[first].task.cancel()
        self._cancel_queued(first)
        self._end_running(ident, Status.SUCCEEDED if ok else Status.FAILED)
        self.driver.settle()

    @precondition(lambda self: self.running or self.queue)
    @rule()
    def cancel_everything(self) -> None:
        """Cancel every call in flight at once; the bulkhead must be empty afterwards."""
        self._cancel_all()
        assert self.bulkhead.occupancy() == (0, 0)

    def _cancel_all(self) -> None:
        for ident in self.running + self.queue:
            self.calls[ident].task.cancel()
            self.calls[ident].status = Status.CANCELLED
        self.running.clear()
        self.queue.clear()
        self.driver.settle()

    @precondition(lambda self: self.calls)  # before any call, time changes nothing
    @rule(dt=st.sampled_from(STEPS))
    def advance_clock(self, dt: float) -> None:
        self.clock.advance(dt)
        self._time_passed(dt)
        self.driver.settle()

    @precondition(lambda self: self.queue)
    @rule(dt=st.sampled_from(STEPS), index=st.integers(0, 5))
    def advance_clock_and_cancel_a_waiter(self, dt: float, index: int) -> None:
        """Cancel a waiter right after the clock moved, before it wakes up.

        Even if its queue_timeout ran out at the same time, the cancellation must come out
        (never swallowed, never turned into a rejection).
        """
        ident = self.queue[index % len(self.queue)]
        deadline = self.calls[ident].deadline
        if deadline is not None and deadline <= self.now + dt:
            event("a waiter cancelled as its queue_timeout ran out")
        self.clock.advance(dt)
        self.calls[ident].task.cancel()
        self._cancel_queued(ident)
        self._time_passed(dt)
        self.driver.settle()

    def _time_passed(self, dt: float) -> None:
        """The model's clock moves: the waiters whose deadline it reaches are rejected."""
        self.now += dt
        for ident in list(self.queue):
            call = self.calls[ident]
            if call.deadline is not None and call.deadline <= self.now:
                self.queue.remove(ident)
                event("rejected: queue_timeout")
                call.status, call.reason = Status.REJECTED, "queue_timeout"

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def never_more_than_max_concurrent_inside(self) -> None:
        assert self.most_inside <= self.max_concurrent
        assert self.inside == len(self.running)
        assert len(self.queue) <= self.max_queue

    @invariant()
    def occupancy_matches_the_model(self) -> None:
        assert self.bulkhead.occupancy() == (len(self.running), len(self.queue))
        # A free slot never sits idle while someone waits.
        assert not self.queue or len(self.running) == self.max_concurrent

    @invariant()
    def admitted_first_come_first_served(self) -> None:
        assert self.entries == self.expected_entries

    @invariant()
    def no_timer_outlives_its_wait(self) -> None:
        assert self.clock.monotonic() == self.now
        expected = len(self.queue) if self.queue_timeout is not None else 0
        assert self.clock.sleepers == expected

    @invariant()
    def every_call_is_where_the_model_says(self) -> None:
        for ident in sorted(self.unsettled):
            call = self.calls[ident]
            if call.status.final:
                self.unsettled.discard(ident)  # checked once over, it stays so
            task, held = call.task, call.held
            where = f"call {ident} should be {call.status.value}"
            assert held.started == call.admitted, where
            if call.status in (Status.QUEUED, Status.RUNNING):
                assert not task.done(), where
                assert not held.ended, where
            elif call.status is Status.CANCELLED:
                assert task.cancelled(), where
            else:
                error = task_error(task, where)
                if call.status is Status.SUCCEEDED:
                    assert error is None, where
                    assert task.result() == ident, where
                elif call.status is Status.FAILED:
                    assert isinstance(error, ConnectionError), where
                else:
                    assert isinstance(error, BulkheadRejected), f"{where}, got {error!r}"
                    events = call.context.report.events
                    assert [(e.name, e.detail["reason"]) for e in events] == [
                        ("bulkhead_rejected", call.reason)
                    ], where

    def teardown(self) -> None:
        try:
            if hasattr(self, "bulkhead") and not step_failed():
                self._cancel_all()
                assert self.bulkhead.occupancy() == (0, 0), "a permit leaked"
                assert self.clock.sleepers == 0
        finally:
            self.driver.close()


TestBulkheadStateful = BulkheadMachine.TestCase
TestBulkheadStateful.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)
