"""Timeout: give the rest of the pipeline a fixed time, then cancel it.

Where it sits decides what it bounds: outside a retry it bounds the whole execution, waits
included; inside, each attempt. It sets ``context.deadline`` (tightening any deadline already
there) so that the policies inside never wait past it.

Whatever the clock, the expiry is a timer of the clock (``Clock.call_at``: the event loop's
with the system clock, its own heap with :class:`~httpx_resilience.testing.FakeClock`), so that
tests run the path production runs. What the timer cancels depends on the event loop alone:

- asyncio, Python 3.11+: the task itself, taken back with ``Task.uncancel()`` when the call
  ends otherwise. A timeout then costs no timer of its own: each ``Timeout`` keeps its pending
  deadlines in arrival order (a deadline is always "now + the same seconds", so the order never
  changes) and one timer, armed for the earliest, cancels the calls that overran. A finished
  call's entry lets go of its task at once and leaves the queue at its head, or in a sweep when
  the queue has doubled, so that one long call does not make the calls behind it pile up.
- trio, or Python 3.10 (no ``uncancel()`` to tell our cancellation from another's): an anyio
  cancel scope, which is what cancels on trio, and the only way to do it safely without
  ``uncancel()``. It costs a scope and a timer per call.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import anyio

from .._clock import SYSTEM_CLOCK, Clock, SystemClock, Timer, call_at
from .._running_task import running_asyncio_task
from .._validate import positive
from ..context import _UNKNOWN, Context
from ..errors import TimeoutRejected
from ..telemetry import PolicyEvents

__all__ = ["Timeout"]

T = TypeVar("T")

_ACTIVE, _DONE, _FIRED = 0, 1, 2
_STATE, _TASK, _DEADLINE = 0, 1, 2
# One guarded call is a small list, [state, task, deadline]: on the hot path a list literal
# costs a fraction of an instance of a class.
_Expiry = list[Any]


# The task path takes its cancellation back with Task.uncancel() (3.11), the only way to tell
# it from another's; without it (3.10), calls take the cancel scope path.
_HAS_UNCANCEL = sys.version_info >= (3, 11)


def _fire(expiry: _Expiry) -> None:
    expiry[_STATE] = _FIRED
    expiry[_TASK].cancel()


# The queue is swept of finished calls when it reaches this length, or twice the calls in
# flight at the last sweep, whichever is more (see _Watchdog.sweep).
_MIN_SWEEP = 64


class _Watchdog:
    """The pending deadlines of one Timeout on one event loop, earliest first."""

    __slots__ = ("armed_at", "clock", "handle", "linger", "loop", "queue", "sweep_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Clock) -> None:
        self.loop = loop
        self.clock = clock
        self.queue: deque[_Expiry] = deque()
        self.handle: Timer | None = None
        self.armed_at = 0.0
        self.sweep_at = _MIN_SWEEP
        # The system clock's timer may outlive the last call: it fires once, finds nothing and
        # stops, which costs far less than a cancelled timer and a new one on every call. On
        # any other clock a pending timer can be seen (a FakeClock counts it, and moves time to
        # it when every task waits), so there the timer follows the earliest pending call.
        self.linger = type(clock) is SystemClock

    def arm(self, when: float) -> None:
        self.armed_at = when
        self.handle = call_at(self.clock, when, self._expire)

    def settle(self) -> None:
        """After a call ends (when the timer must not linger): arm the timer for the earliest
        pending call, or for none."""
        queue = self.queue
        while queue and queue[0][_STATE]:
            queue.popleft()
        handle = self.handle
        if queue and handle is not None and queue[0][_DEADLINE] == self.armed_at:
            return
        if handle is not None:
            handle.cancel()
            self.handle = None
        if queue:
            self.arm(queue[0][_DEADLINE])

    def sweep(self) -> None:
        """Drop every finished call from the queue.

        Finished calls leave from the head only: behind one long call, every quick call after
        it would stay queued until it ends. Sweeping when the queue has doubled since the last
        sweep keeps it within twice the calls in flight, at a constant cost per call.
        """
        queue = self.queue
        pending = [expiry for expiry in queue if expiry[_STATE] == _ACTIVE]
        queue.clear()
        queue.extend(pending)
        self.sweep_at = max(_MIN_SWEEP, 2 * len(pending))

    def _expire(self) -> None:
        self.handle = None
        now = self.clock.monotonic()
        queue = self.queue
        while queue:
            head = queue[0]
            if head[_STATE]:
                queue.popleft()
            elif head[_DEADLINE] <= now:
                queue.popleft()
                _fire(head)
            else:
                self.arm(head[_DEADLINE])
                break


class Timeout:
    """Cancel the rest of the pipeline after ``seconds`` and raise
    :class:`~httpx_resilience.TimeoutRejected`.

    Args:
        seconds: How long the inner call may take.
        clock: The clock to measure with (default: the system clock).

    A cancellation that comes from outside (the caller's own cancel scope or task cancellation)
    is never turned into ``TimeoutRejected`` and never swallowed.
    """

    __slots__ = ("_clock", "_events", "_monotonic", "_seconds", "_watchdog")

    def __init__(self, seconds: float, *, clock: Clock | None = None) -> None:
        self._seconds = positive("Timeout", "seconds", seconds)
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._events = PolicyEvents("timeout", self._clock)
        self._monotonic = self._clock.monotonic
        self._watchdog: _Watchdog | None = None

    @property
    def seconds(self) -> float:
        """The timeout, in seconds."""
        return self._seconds

    def describe(self) -> dict[str, Any]:
        """The timeout's configuration, as plain data."""
        return {"policy": "timeout", "options": {"seconds": self._seconds}, "state": {}}

    def __repr__(self) -> str:
        return f"Timeout(seconds={self._seconds:g})"

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        """Run ``next`` with a deadline."""
        now = self._monotonic()
        deadline = now + self._seconds
        previous = context.deadline
        task = context._task
        if task is _UNKNOWN:
            task = context._task = running_asyncio_task()
        watchdog = self._watchdog
        if (
            task is None
            or (previous is not None and previous < deadline)
            or watchdog is None
            or watchdog.loop is not task.get_loop()
        ):
            return await self._execute_other(next, context, task, now, deadline, previous)

        # The hot path: asyncio, our own deadline.
        queue = watchdog.queue
        # Calls mostly finish in the order they started, so finished entries gather at the
        # head; dropping them here keeps the queue about as long as the calls in flight.
        while queue and queue[0][0]:
            queue.popleft()
        if queue and len(queue) >= watchdog.sweep_at:
            watchdog.sweep()
        expiry = [_ACTIVE, task, deadline]
        queue.append(expiry)
        cancelling = task.cancelling()
        if watchdog.handle is None:
            watchdog.arm(deadline)
        context.deadline = deadline
        try:
            return await next(context)
        except asyncio.CancelledError as exc:
            if expiry[0] == _FIRED:
                expiry[0] = _DONE
                # Only ours if nobody else asked for cancellation meanwhile.
                if task.uncancel() <= cancelling:
                    raise self._rejected(context, now, deadline) from exc
            raise
        finally:
            context.deadline = previous
            if expiry[0] == _FIRED:
                # The call finished (or failed otherwise) although its time was up: take our
                # cancellation request back so that it cannot hit the caller later.
                task.uncancel()
            # The entry may stay queued behind an older call: it must not keep the task alive
            # (a finished task holds its result, a running one its frames).
            expiry[0] = _DONE
            expiry[1] = None
            if not watchdog.linger:
                watchdog.settle()

    async def _execute_other(
        self,
        next: Callable[[Context], Awaitable[T]],
        context: Context,
        task: Any,  # asyncio.Task (with 3.11's uncancel()) or None
        now: float,
        deadline: float,
        previous: float | None,
    ) -> T:
        """Everything but the hot path: trio or Python 3.10, an earlier deadline from outside,
        or the first call on this event loop."""
        tightened = previous is not None and previous < deadline
        if tightened:
            deadline = previous  # type: ignore[assignment]
        if task is None or not _HAS_UNCANCEL:
            return await self._execute_scope(next, context, now, deadline)
        if not tightened:
            self._watchdog = _Watchdog(task.get_loop(), self._clock)
            return await self.execute(next, context)
        # A deadline from outside is earlier than ours and out of arrival order: it gets a
        # timer of its own (this happens only late in an execution, never on a first try).
        expiry = [_ACTIVE, task, deadline]
        cancelling = task.cancelling()
        timer = call_at(self._clock, deadline, partial(_fire, expiry))
        context.deadline = deadline
        try:
            return await next(context)
        except asyncio.CancelledError as exc:
            if expiry[0] == _FIRED:
                expiry[0] = _DONE
                if task.uncancel() <= cancelling:
                    raise self._rejected(context, now, deadline) from exc
            raise
        finally:
            context.deadline = previous
            if expiry[0] == _ACTIVE:
                timer.cancel()
            elif expiry[0] == _FIRED:
                task.uncancel()
            expiry[0] = _DONE

    async def _execute_scope(
        self, next: Callable[[Context], Awaitable[T]], context: Context, now: float, deadline: float
    ) -> T:
        previous = context.deadline
        context.deadline = deadline
        scope = anyio.CancelScope()
        timer = call_at(self._clock, deadline, scope.cancel)
        try:
            with scope:
                return await next(context)
        finally:
            timer.cancel()
            context.deadline = previous
        # Reached only when our own scope swallowed the cancellation it caused.
        assert scope.cancelled_caught
        raise self._rejected(context, now, deadline)

    def _rejected(self, context: Context, start: float, deadline: float) -> TimeoutRejected:
        # deadline is start + seconds unless an earlier one from outside replaced it; only then
        # is the limit the difference (which floating point would not give back exactly).
        tightened = deadline < start + self._seconds
        limit = deadline - start if tightened else self._seconds
        self._events.emit(context, "timeout", duration=limit, timeout=self._seconds)
        if tightened:
            message = f"the call did not finish by its deadline ({limit:.3g} s away when it began)"
        else:
            message = f"the call did not finish within {self._seconds:g} s"
        return TimeoutRejected(message, timeout=limit)
