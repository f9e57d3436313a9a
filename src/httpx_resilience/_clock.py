"""Time as the policies see it: a monotonic reading and a way to sleep.

Every policy takes ``clock=``. Production code uses :class:`SystemClock`; tests swap in
:class:`httpx_resilience.testing.FakeClock`, which moves time forward instead of waiting, so
timing rules can be checked exactly and in microseconds.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """The two things a policy needs from time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences are meaningful."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the current task for ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic` and the event loop's own sleep."""

    __slots__ = ()

    #: :func:`time.monotonic` itself: policies call it several times per call, so no wrapper.
    monotonic = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running event loop (asyncio or trio)."""
        await anyio.sleep(seconds)

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
    if type(clock) is SystemClock:
        with anyio.move_on_after(timeout):
            await event.wait()
        return event.is_set()
    # Any other clock (a FakeClock in tests): race the event against a sleep on that clock.
    async with anyio.create_task_group() as waiting:

        async def expire() -> None:
            await clock.sleep(timeout)
            waiting.cancel_scope.cancel()

        waiting.start_soon(expire)
        await event.wait()
        waiting.cancel_scope.cancel()
    return event.is_set()
