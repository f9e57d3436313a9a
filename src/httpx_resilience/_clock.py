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

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running event loop (asyncio or trio)."""
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


#: The clock every policy uses unless told otherwise.
SYSTEM_CLOCK = SystemClock()
