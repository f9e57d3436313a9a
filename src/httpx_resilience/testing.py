"""Helpers for testing code that uses httpx-resilience.

:class:`FakeClock` replaces the system clock in any policy (``clock=``) or builder
(``Pipeline.builder(clock=...)``): time only moves when something sleeps on it, and then jumps
straight to the next wake-up, so a test of a 30-second retry schedule runs in microseconds and
every time it reads is exact.

:class:`LoopbackServer` is a real HTTP/1.1 server on 127.0.0.1 whose answers you script with
:class:`Reply`: late answers, trickled bodies, connection resets in the middle of a body, servers
that never answer, bodies that never end. What a mocked transport cannot do, for testing your
client's configuration against the failures it is meant to survive.
"""

from __future__ import annotations

import heapq
import itertools

import anyio
import anyio.lowlevel

from ._loopback import LoopbackServer, ReceivedRequest, Reply

__all__ = ["FakeClock", "LoopbackServer", "ReceivedRequest", "Reply"]

# Checkpoints a sleeper lets pass without anything happening before it concludes that every
# other task is waiting too, and jumps time forward.
_SETTLE_CHECKPOINTS = 20


class FakeClock:
    """A clock that runs on virtual time.

    Args:
        start: The initial :meth:`monotonic` reading.
        autojump: When true (the default), a task that sleeps lets the other tasks run until
            they are all waiting, then moves time straight to the earliest wake-up. When false,
            time only moves when the test calls :meth:`advance`.

    Works on asyncio and trio.
    """

    def __init__(self, start: float = 0.0, *, autojump: bool = True) -> None:
        self._now = float(start)
        self._timers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()
        self._jumps = 0
        self.autojump = autojump

    def monotonic(self) -> float:
        """The current virtual time."""
        return self._now

    @property
    def sleepers(self) -> int:
        """How many tasks are sleeping on this clock."""
        return len(self._timers)

    async def sleep(self, seconds: float) -> None:
        """Suspend until virtual time has advanced by ``seconds``."""
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        entry = (self._now + seconds, next(self._order), anyio.Event())
        heapq.heappush(self._timers, entry)
        woken = entry[2]
        try:
            if not self.autojump:
                await woken.wait()
                return
            while not woken.is_set():
                jumps = self._jumps
                for _ in range(_SETTLE_CHECKPOINTS):
                    await anyio.lowlevel.checkpoint()
                    if woken.is_set() or self._jumps != jumps:
                        break
                else:
                    self._wake_next()
        finally:
            if not woken.is_set():
                self._timers.remove(entry)
                heapq.heapify(self._timers)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper due by then, in order.

        The woken tasks run after this returns, so they read the time at the end of the
        advance; use several smaller advances to observe intermediate times.
        """
        if seconds < 0:
            raise ValueError(f"FakeClock.advance: seconds must be >= 0, got {seconds!r}")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            self._wake_next()
        self._now = target

    def _wake_next(self) -> None:
        when = self._timers[0][0]
        self._now = max(self._now, when)
        while self._timers and self._timers[0][0] <= when:
            heapq.heappop(self._timers)[2].set()
        self._jumps += 1

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, sleepers={len(self._timers)})"
