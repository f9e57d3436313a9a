"""Time as the policies see it: a monotonic reading, a way to sleep and timers.

Every policy takes ``clock=``. Production code uses :class:`SystemClock`; tests swap in
:class:`httpx_resilience.testing.FakeClock`, which moves time forward instead of waiting, so
timing rules can be checked exactly and in microseconds.

A timer (:func:`call_at`) runs a callback at a time of the clock: the timeout and the waits of
the bulkhead and the rate limiter are built on it alone, whatever the clock, so that a test on
a ``FakeClock`` runs the code that production runs. The system clock's timers are asyncio's
loop's own, or on trio (which has none for callbacks) a heap per run served by one system task;
a clock that has no ``call_at`` of its own gets a task sleeping on it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import anyio

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "Timer"]


@runtime_checkable
class Clock(Protocol):
    """The two things a policy needs from time.

    A clock may also offer ``call_at(when, callback) -> Timer`` (as :class:`SystemClock` and
    ``FakeClock`` do), which runs ``callback()`` once its time reaches ``when``; a clock without
    it is given a timer that sleeps on the clock in a task of its own. And it may offer
    ``process_time() -> float``, the CPU seconds the process has used, in step with
    ``monotonic``: the adaptive limiter reads it to tell a busy process from an overloaded
    dependency (without it, it takes the process for idle).
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences are meaningful."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the current task for ``seconds`` of this clock's time."""
        ...


class Timer(Protocol):
    """A callback waiting for a time: what :func:`call_at` returns."""

    def cancel(self) -> None:
        """Do not run the callback (nothing happens if it already ran)."""
        ...


def _running_loop() -> asyncio.AbstractEventLoop | None:
    # anyio runs on asyncio or trio: no asyncio loop means trio.
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def spawn(run: Callable[[], Awaitable[Any]]) -> Callable[[], object]:
    """Run ``run()`` in a task of its own, outside any task group, on asyncio or trio.

    Returns a function that cancels it. The task ends with the event loop at the latest.
    """
    loop = _running_loop()
    if loop is not None:

        async def main() -> None:
            await run()

        task = loop.create_task(main())
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
        return task.cancel
    import trio

    scope = trio.CancelScope()

    async def guarded() -> None:
        with scope:
            await run()

    trio.lowlevel.spawn_system_task(guarded)
    return scope.cancel


# asyncio keeps only weak references to its tasks.
_BACKGROUND: set[asyncio.Task[None]] = set()


class _SleepingTimer:
    """A timer for a clock without ``call_at``: a task sleeping on the clock."""

    __slots__ = ("_cancel", "_done")

    def __init__(self, clock: Clock, when: float, callback: Callable[[], object]) -> None:
        self._done = False

        async def wait() -> None:
            # Measured at every wake-up: time may have moved in between (a clock driven by hand).
            while (remaining := when - clock.monotonic()) > 0:
                await clock.sleep(remaining)
            if not self._done:
                self._done = True
                callback()

        self._cancel = spawn(wait)

    def cancel(self) -> None:
        if not self._done:
            self._done = True
            self._cancel()


def call_at(clock: Clock, when: float, callback: Callable[[], object]) -> Timer:
    """Run ``callback()`` once ``clock`` reads ``when`` or later; cancel it with the timer."""
    own = getattr(clock, "call_at", None)
    if own is not None:
        timer: Timer = own(when, callback)
        return timer
    return _SleepingTimer(clock, when, callback)


class _TrioTimer:
    __slots__ = ("callback", "deadline", "order", "owner")

    def __init__(
        self, owner: _TrioTimers, deadline: float, order: int, callback: Callable[[], object]
    ) -> None:
        self.owner: _TrioTimers | None = owner  # None once run or cancelled
        self.deadline = deadline
        self.order = order
        self.callback = callback

    def __lt__(self, other: _TrioTimer) -> bool:
        return (self.deadline, self.order) < (other.deadline, other.order)

    def cancel(self) -> None:
        owner = self.owner
        if owner is not None:
            self.owner = None
            owner.cancelled += 1
            if owner.cancelled > _MIN_COMPACT and 2 * owner.cancelled > len(owner.heap):
                owner.compact()


# A trio run's heap is rebuilt without its cancelled timers when they are more than this many
# and more than half of it (a timeout cancels its timer on every call that ends in time).
_MIN_COMPACT = 64


class _TrioTimers:
    """The system clock's timers on trio, which has none for callbacks: like asyncio's loop,
    one heap per run and one system task sleeping until the earliest (a cancel scope with a
    deadline, moved earlier when an earlier timer comes)."""

    def __init__(self) -> None:
        import trio

        self.heap: list[_TrioTimer] = []
        self.cancelled = 0
        self.order = itertools.count()
        self.scope = trio.CancelScope()  # the sleep's; replaced by each round of _run
        trio.lowlevel.spawn_system_task(self._run)

    def call_later(self, delay: float, callback: Callable[[], object]) -> _TrioTimer:
        import trio

        timer = _TrioTimer(self, trio.current_time() + delay, next(self.order), callback)
        heapq.heappush(self.heap, timer)
        if timer.deadline < self.scope.deadline:
            self.scope.deadline = timer.deadline
        return timer

    def compact(self) -> None:
        self.heap = [timer for timer in self.heap if timer.owner is not None]
        heapq.heapify(self.heap)
        self.cancelled = 0

    async def _run(self) -> None:
        import trio

        while True:
            heap = self.heap
            while heap and heap[0].owner is None:
                heapq.heappop(heap)
                self.cancelled -= 1
            self.scope = trio.CancelScope(deadline=heap[0].deadline if heap else math.inf)
            with self.scope:
                await trio.sleep_forever()
            now = trio.current_time()
            # self.heap each time: a callback may cancel timers, and so rebuild the heap.
            while self.heap and self.heap[0].deadline <= now:
                timer = heapq.heappop(self.heap)
                if timer.owner is None:
                    self.cancelled -= 1
                else:
                    timer.owner = None
                    timer.callback()


def _trio_timers() -> _TrioTimers:
    global _TRIO_TIMERS
    if _TRIO_TIMERS is None:
        import trio

        _TRIO_TIMERS = trio.lowlevel.RunVar("httpx_resilience_timers")
    try:
        timers: _TrioTimers = _TRIO_TIMERS.get()
        return timers
    except LookupError:
        timers = _TrioTimers()
        _TRIO_TIMERS.set(timers)
        return timers


_TRIO_TIMERS: Any = None  # a trio.lowlevel.RunVar, made on first use (trio is optional)


class SystemClock:
    """The real clock: :func:`time.monotonic` and the event loop's own sleep and timers."""

    __slots__ = ()

    #: :func:`time.monotonic` itself: policies call it several times per call, so no wrapper.
    monotonic = staticmethod(time.monotonic)
    #: :func:`time.process_time`: the CPU seconds of the whole process (every thread, as they
    #: share one interpreter lock).
    process_time = staticmethod(time.process_time)

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running event loop (asyncio or trio)."""
        await anyio.sleep(seconds)

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback()`` at :func:`time.monotonic` ``when`` on the running event loop."""
        loop = _running_loop()
        if loop is not None:
            # call_later, not call_at: the loop's own time need not be time.monotonic (uvloop).
            return loop.call_later(when - time.monotonic(), callback)
        return _trio_timers().call_later(when - time.monotonic(), callback)

    def __repr__(self) -> str:
        return "SystemClock()"


#: The clock every policy uses unless told otherwise.
SYSTEM_CLOCK = SystemClock()


async def wait_for_event(event: anyio.Event, timeout: float | None, clock: Clock) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds of ``clock`` pass.

    Returns whether the event was set. Cancellation from outside propagates as usual.
    """
    if event.is_set():
        return True
    if timeout is None:
        await event.wait()
        return True
    if timeout <= 0:
        return False
    with anyio.CancelScope() as scope:
        timer = call_at(clock, clock.monotonic() + timeout, scope.cancel)
        try:
            await event.wait()
        finally:
            timer.cancel()
    return event.is_set()
