"""One circuit of a breaker (:class:`Circuit`, its :class:`CircuitState`) and the sliding
windows it counts calls in: by time (the last ``duration`` seconds, in ten buckets kept in a
ring, so recording a call is O(1) and allocates nothing) or by count (the last ``size`` calls,
one byte each)."""

from __future__ import annotations

import enum

import anyio

__all__ = ["MAX_WINDOW_SIZE", "Circuit", "CircuitState", "CountWindow", "TimeWindow"]

_BUCKETS = 10

#: The largest count window: it keeps one byte per call, and a window of 10**20 calls would
#: fail (MemoryError, OverflowError) when the first partition is made, not when it is asked for.
MAX_WINDOW_SIZE = 1_000_000


class TimeWindow:
    """Calls of the last ``duration`` seconds, in ``_BUCKETS`` buckets of equal length."""

    __slots__ = (
        "__weakref__",  # the adaptive throttler keeps windows as partitions
        "_bucket_length",
        "_end",
        "_failures",
        "_index",
        "_slow",
        "_totals",
        "failures",
        "slow",
        "total",
    )

    def __init__(self, duration: float) -> None:
        self._bucket_length = duration / _BUCKETS
        self._totals = [0] * _BUCKETS
        self._failures = [0] * _BUCKETS
        self._slow = [0] * _BUCKETS
        self._index = 0
        self._end = -1.0  # end of the current bucket; -1: nothing recorded yet
        self.total = self.failures = self.slow = 0

    def reset(self) -> None:
        for counts in (self._totals, self._failures, self._slow):
            counts[:] = [0] * _BUCKETS
        self._end = -1.0
        self.total = self.failures = self.slow = 0

    def expire(self, now: float) -> None:
        """Drop the buckets that have left the window by ``now``, so the counts are current."""
        if now >= self._end:
            self._advance(now)

    def _advance(self, now: float) -> None:
        if self._end < 0 or now >= self._end + (_BUCKETS - 1) * self._bucket_length:
            # Idle for a whole window (or never used): every bucket has expired.
            if self.total:
                self.reset()
            self._index = 0
            self._end = now + self._bucket_length
            return
        while now >= self._end:
            self._index = index = (self._index + 1) % _BUCKETS
            self._end += self._bucket_length
            self.total -= self._totals[index]
            self.failures -= self._failures[index]
            self.slow -= self._slow[index]
            self._totals[index] = self._failures[index] = self._slow[index] = 0

    def record(self, now: float, failed: bool, slow: bool) -> None:
        if now >= self._end:
            self._advance(now)
        index = self._index
        self._totals[index] += 1
        self.total += 1
        if failed:
            self._failures[index] += 1
            self.failures += 1
        if slow:
            self._slow[index] += 1
            self.slow += 1


class CountWindow:
    """The last ``size`` calls."""

    __slots__ = ("_flags", "_index", "_size", "failures", "slow", "total")

    _FAILED, _SLOW = 1, 2

    def __init__(self, size: int) -> None:
        self._size = size
        self._flags = bytearray(size)
        self._index = 0
        self.total = self.failures = self.slow = 0

    def reset(self) -> None:
        self._flags = bytearray(self._size)
        self._index = 0
        self.total = self.failures = self.slow = 0

    def record(self, now: float, failed: bool, slow: bool) -> None:
        index = self._index
        old = self._flags[index]
        if self.total == self._size:
            self.failures -= old & self._FAILED
            self.slow -= (old & self._SLOW) >> 1
        else:
            self.total += 1
        self._flags[index] = (self._FAILED if failed else 0) | (self._SLOW if slow else 0)
        self.failures += failed
        self.slow += slow
        self._index = (index + 1) % self._size


class CircuitState(str, enum.Enum):
    """Where a circuit stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    ISOLATED = "isolated"

    def __str__(self) -> str:
        return self.value


class Circuit:
    """The breaker state of one partition: its window, its state, its break."""

    __slots__ = (
        "__weakref__",
        "break_duration",
        "generation",
        "key",
        "opened_until",
        "probes",
        "state",
        "verdict",
        "window",
    )

    def __init__(self, key: str | None, window: TimeWindow | CountWindow, state: CircuitState):
        self.key = key
        self.window = window
        self.state = state
        self.opened_until = 0.0
        self.break_duration = 0.0  # the break in force, or 0 before the first opening
        self.probes = 0  # half-open probe calls in flight
        # Bumped on every state change: a call finishing under an older generation saw a state
        # that has since passed, and its outcome no longer counts.
        self.generation = 0
        # Set on the next state change, for the calls waiting for a probe's verdict (made by
        # the first of them; None while nobody waits).
        self.verdict: anyio.Event | None = None
