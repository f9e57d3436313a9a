"""Bulkhead: a cap on concurrent calls, with a bounded queue in front of it.

A slow dependency holds on to whatever calls it: connections, tasks, memory. A bulkhead lets at
most ``max_concurrent`` calls in at once and up to ``max_queue`` more wait their turn, first come
first served, for at most ``queue_timeout`` (and never past ``context.deadline``). Beyond that,
calls are rejected at once with :class:`~httpx_resilience.BulkheadRejected`, so a stalled
dependency costs a bounded number of waiting callers and the rest fail fast.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .._clock import SYSTEM_CLOCK, Clock
from .._validate import NON_NEGATIVE, integer
from ..context import Context
from ..errors import BulkheadRejected
from ..telemetry import PolicyEvents
from ._options import Options, option
from ._partitions import DEFAULT_MAX_PARTITIONS, Partitions, described_options
from ._waiters import WaitQueue, occupancy, where

__all__ = ["Bulkhead", "BulkheadPolicyOptions"]

T = TypeVar("T")


# The slots and queue of one partition: ``active`` calls in, the rest waiting their turn.
_Compartment = WaitQueue


@dataclass(frozen=True)
class BulkheadPolicyOptions(Options):
    """The plain-data options of a :class:`Bulkhead` (see it for each), validated when built;
    a profile's :class:`~httpx_resilience.profiles.BulkheadOptions` adds how it is
    partitioned."""

    max_concurrent: int = option(integer(1))
    max_queue: int = option(integer(0), 0)
    queue_timeout: float | None = option(NON_NEGATIVE, None, optional=True)


class Bulkhead:
    """Limit concurrent calls, queueing a bounded number of extra ones.

    Args:
        max_concurrent: Calls allowed in at the same time.
        max_queue: Calls allowed to wait for a slot (0: reject at once when full).
        queue_timeout: Longest wait in the queue, in seconds (``None``: until a slot frees or
            the context's deadline).
        key: A function of the :class:`~httpx_resilience.Context` naming the partition (one
            bulkhead per key); ``None`` for one in all.
        max_partitions: Partitions kept at most.
        clock: The clock for queue timeouts (default: the system clock).
    """

    __slots__ = (
        "_clock",
        "_compartment",
        "_events",
        "_key",
        "_max_concurrent",
        "_max_queue",
        "_monotonic",
        "_options",
        "_partitions",
        "_queue_timeout",
    )

    # Kept from the options (see Options._keep).
    _max_concurrent: int
    _max_queue: int
    _queue_timeout: float | None

    def __init__(
        self,
        *,
        max_concurrent: int,
        max_queue: int = 0,
        queue_timeout: float | None = None,
        key: Callable[[Context], str] | None = None,
        max_partitions: int = DEFAULT_MAX_PARTITIONS,
        clock: Clock | None = None,
    ) -> None:
        self._options = BulkheadPolicyOptions._of_arguments("Bulkhead", locals())
        self._options._keep(self)  # self._max_concurrent, self._max_queue, self._queue_timeout
        if key is not None and not callable(key):
            raise ValueError(f"Bulkhead: key must be a function of the context, got {key!r}")
        self._key = key
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._events = PolicyEvents("bulkhead", self._clock)
        self._monotonic = self._clock.monotonic
        self._compartment = _Compartment(None)
        self._partitions: Partitions[_Compartment] = Partitions(
            "Bulkhead", _Compartment, max_partitions
        )

    def describe(self) -> dict[str, Any]:
        """The bulkhead's configuration and occupancy, as plain data."""
        if self._key is None:
            occupancy = {"": self.occupancy()}
        else:
            occupancy = {k: (c.active, len(c.waiters)) for k, c in self._partitions.items()}
        return {
            "policy": "bulkhead",
            "options": described_options(
                self._options,
                self._key,
                self._partitions,
            ),
            "state": {
                "partitions": {
                    k: {"active": active, "queued": queued}
                    for k, (active, queued) in occupancy.items()
                }
            },
        }

    def __repr__(self) -> str:
        return (
            f"Bulkhead(max_concurrent={self._max_concurrent}, max_queue={self._max_queue}, "
            f"queue_timeout={self._queue_timeout!r}, partitioned={self._key is not None})"
        )

    @property
    def max_concurrent(self) -> int:
        """Calls allowed in at the same time."""
        return self._max_concurrent

    def occupancy(self, key: str | None = None) -> tuple[int, int]:
        """``(calls in, calls queued)`` of the bulkhead, or of partition ``key``."""
        return occupancy(self._compartment if key is None else self._partitions.peek(key))

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        """Run ``next`` once a slot is free."""
        compartment = (
            self._compartment if self._key is None else self._partitions.get(self._key(context))
        )
        if compartment.active < self._max_concurrent and not compartment.waiters:
            compartment.active += 1  # a free slot: no waiting, no await
        else:
            await self._queue(compartment, context)
        try:
            return await next(context)
        finally:
            # Handed straight to the longest waiter, so nobody can overtake the queue.
            compartment.release()

    async def _queue(self, compartment: _Compartment, context: Context) -> None:
        now = self._monotonic()
        timeout = self._queue_timeout
        if context.deadline is not None:
            left = context.deadline - now
            timeout = left if timeout is None else min(timeout, left)
        if len(compartment.waiters) >= self._max_queue or (timeout is not None and timeout <= 0):
            self._reject(compartment, context, "full")
        if await compartment.wait(timeout, self._clock) is not None:
            self._reject(compartment, context, "queue_timeout")

    def _reject(self, compartment: _Compartment, context: Context, reason: str) -> None:
        self._events.emit(
            context,
            "bulkhead_rejected",
            key=compartment.key,
            reason=reason,
            active=compartment.active,
            queued=len(compartment.waiters),
        )
        bulkhead = where("the bulkhead", compartment.key)
        if reason == "full":
            message = (
                f"{bulkhead} is full ({compartment.active} of {self._max_concurrent} calls in, "
                f"{len(compartment.waiters)} of {self._max_queue} queued)"
            )
        else:
            message = f"{bulkhead} had no free slot in time ({self._max_concurrent} calls in)"
        raise BulkheadRejected(message)
