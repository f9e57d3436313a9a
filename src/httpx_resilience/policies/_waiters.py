"""A first-in-first-out queue of calls waiting for a place: a bulkhead's slot, or the turn to
take a rate limiter's next token.

A policy takes a free place itself, by a counter check (``queue.active += 1``, no await, no
allocation): only a call that finds none joins the queue. A call done with its place hands it
straight to the longest waiter (:meth:`WaitQueue.release`), so nobody can overtake the queue.
"""

from __future__ import annotations

from collections import deque

import anyio

from .._clock import Clock, wait_for_event

__all__ = ["WaitQueue", "where"]


class _Waiter:
    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.granted = False


class WaitQueue:
    """The places in use (``active``) and the calls waiting for one (``waiters``), in arrival
    order, of one partition (``key``; ``None`` for one in all).

    While anybody waits, every place is in use: a place comes free only through
    :meth:`release`, which hands it to the first waiter if there is one.
    """

    __slots__ = ("__weakref__", "active", "key", "waiters")

    def __init__(self, key: str | None) -> None:
        self.key = key
        self.active = 0
        self.waiters: deque[_Waiter] = deque()

    def release(self) -> None:
        """Give up a place: to the longest waiter (out of the queue, woken), else free it."""
        if self.waiters:
            waiter = self.waiters.popleft()
            waiter.granted = True
            waiter.event.set()
        else:
            self.active -= 1

    async def wait(self, timeout: float | None, clock: Clock) -> int | None:
        """Queue for a place, for at most ``timeout`` seconds of ``clock`` (``None``: no limit).

        Returns ``None`` once a place was handed over (the caller then holds it and must
        :meth:`release` it); else, the time having passed first, the number of calls that were
        still waiting ahead, the caller having left the queue. Cancelled while waiting, the
        caller leaves the queue, passing on a place handed over meanwhile.
        """
        waiter = _Waiter()
        waiters = self.waiters
        waiters.append(waiter)
        try:
            await wait_for_event(waiter.event, timeout, clock)
        except BaseException:
            if waiter.granted:
                self.release()
            else:
                waiters.remove(waiter)
            raise
        if waiter.granted:
            return None
        ahead = waiters.index(waiter)
        del waiters[ahead]
        return ahead


def occupancy(queue: WaitQueue | None) -> tuple[int, int]:
    """``(places in use, calls waiting)`` of ``queue``; ``(0, 0)`` for a partition not made
    yet (``None``)."""
    return (0, 0) if queue is None else (queue.active, len(queue.waiters))


def where(policy: str, key: str | None) -> str:
    """How a rejection names what refused the call: ``the bulkhead``, or with a partition,
    ``the bulkhead for 'tenant-a'``."""
    return policy if key is None else f"{policy} for {key!r}"
