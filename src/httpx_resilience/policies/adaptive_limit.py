"""Adaptive concurrency limit: a bulkhead that finds its own size from round-trip times.

An overloaded dependency answers late before it answers with errors: requests queue up in
front of it. The limiter compares round trips with the fastest it has seen (the *baseline*, the
time with no queue in front of the dependency) and estimates how many of its calls are queued
there. It raises the limit while that queue is short and lowers it when the queue grows, as TCP
Vegas does with a congestion window (after Netflix's concurrency-limits ``VegasLimit``,
rewritten here; docs/policies/adaptive-limit.md says why this one and gives the figures). Two
changes keep calls that are slow by nature from reading as a queue: the limit moves once per
round of a few calls, read by their median (a queue delays every call), and the queue is
counted, by Little's law, from the calls that finish per second rather than from the permits
held. A timeout cuts the limit by a tenth at once.

Calls beyond the limit wait for a permit, never past the context's deadline. How many may wait
depends on what the queue is doing. While more calls are offered than complete, window after
window for half a second, the dependency is overloaded: the queue is short (half the limit)
and the excess is refused with :class:`~httpx_resilience.ConcurrencyLimitRejected` in
microseconds, instead of waiting for a dependency that cannot serve it. Otherwise the queue
holds a burst the dependency will drain (a batch of callers, each waiting for its last call
before the next; the calls a pacing gate let go): refusing those calls would fail work that
plain httpx would have done.

The baseline is refreshed every ``probe_interval`` seconds: the limit halves until one call that
started after the halving has answered, and that answer is the new baseline. So a dependency
that became slower for good (not more loaded) is measured again, and a baseline can never be
stuck on round trips that had a queue in them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .._clock import SYSTEM_CLOCK, Clock, wait_for_event
from .._validate import NON_NEGATIVE, POSITIVE, RATIO, integer
from ..context import Context, by_origin
from ..errors import ConcurrencyLimitRejected, TimeoutRejected
from ..telemetry import PolicyEvents
from ._options import Options, Problem, option
from ._partitions import DEFAULT_MAX_PARTITIONS, Partitions, described_options
from ._waiters import WaitQueue, _Waiter, occupancy, where

__all__ = ["AdaptiveLimitPolicyOptions", "AdaptiveLimiter"]

T = TypeVar("T")

# Answers that say nothing of the dependency's queue: a refusal comes back fast whatever the
# load (Too Many Requests, Service Unavailable). The pacing gate, the retry and the breaker
# handle them; counted as drops, the random 503s of a flaky dependency cut the limit to nothing.
_REFUSAL_STATUSES = frozenset({429, 503})

# Offered calls above this multiple of the completed ones (plus _HOT_SLACK) make a window hot;
# hot windows in a row for _OVERLOADED_AFTER seconds (two at least) mean an overload, not a
# burst. A window is the last round trip, and at least _WINDOW seconds. A burst can last more
# than two windows: the calls a pacing gate holds for a Retry-After of 1 s, let go at once into
# a process they make busy, took two or three (two hot windows cut the queue, and the demo's
# flaky scenario lost 9 to 74 of 800 calls plain httpx answered; after 0.5 s, with the limit
# growing back below its initial value, 0 to 21, and more answers than plain httpx each time).
_HOT = 1.1
_HOT_SLACK = 2
_WINDOW = 0.1
_OVERLOADED_AFTER = 0.5

# A process whose event loop makes a woken task wait this share of a round trip (moving
# average, each sample weighing _LAG_WEIGHT) is itself the bottleneck: its round trips grow with
# its own load, not the dependency's, and a queue in front of the limit is its callers waiting
# for its CPU, which refusing them would not give back.
_BUSY_LOOP = 0.05
_LAG_WEIGHT = 0.2

# A process that used this share of a CPU over the hot windows is busy enough for its own delay
# to be what grew the round trips (its event loop rarely rests, and a woken task waits its turn
# for every step of a call, not once). Measured (process CPU over 0.1 s): the demo's clients and
# servers in one process at 160 calls/s, 0.85 to 1.05; the overload benchmark's client at 3x an
# upstream's capacity 0.25 to 0.52, at 10x 0.41 to 0.96 (median 0.64), its overloads found all
# the same. Without a ``process_time`` on the clock the process counts as idle.
_BUSY_CPU = 0.8

# One move of the limit per round: _ROUND answers to calls sent since the last move, read by
# their median. A queue in front of the dependency delays every call; calls slow by nature (a
# report endpoint next to a cache hit, one in ten) are outvoted, and one slow answer moves
# nothing. The fastest of the round was robust too, but it reads a queue that fluctuates as
# shorter than it is: in the simulation at 3x the limit swung from 7 to 9 with a p99 of 3.9 S,
# against 7 and 2.8 S with the median (one sample per move, as Vegas: 7-8 and 3.0 S, but the
# demo's slow scenario refused 385 to 489 of 800 calls).
_ROUND = 5

# The queue the limit keeps in front of the dependency, in steps of max(1, log10(limit)) calls:
# grow fast up to _GROW_FAST, grow up to _GROW, hold up to _SHRINK, shrink beyond.
_GROW_FAST = 1.0
_GROW = 2.0
_SHRINK = 4.0

# At most one limit_changed event per partition in this many seconds of the policy's clock.
_EVENT_INTERVAL = 1.0


@dataclass(frozen=True)
class AdaptiveLimitPolicyOptions(Options):
    """The plain-data options of an :class:`AdaptiveLimiter` (see it for each), validated when
    built; a profile's :class:`~httpx_resilience.profiles.AdaptiveLimitOptions` adds how it is
    partitioned."""

    min_limit: int = option(integer(1), 1)
    max_limit: int = option(integer(1), 1000)
    initial_limit: int = option(integer(1), 20)
    max_queue: int | None = option(integer(0), None, optional=True)
    queue_timeout: float | None = option(NON_NEGATIVE, None, optional=True)
    backoff_ratio: float = option(RATIO, 0.9)
    probe_interval: float = option(POSITIVE, 10.0)
    sheddable_share: float = option(RATIO, 0.75)

    def _cross_checks(self) -> list[Problem]:
        limits = (self.min_limit, self.max_limit, self.initial_limit)
        if not all(isinstance(n, int) for n in limits):
            return []  # already refused (a shadow of invalid options)
        if self.min_limit > self.max_limit:
            text = f"at most max_limit ({self.max_limit})"
            got = f"expected {text}, got {self.min_limit}"
            return [Problem("min_limit", got, f"must be {text}")]
        if not self.min_limit <= self.initial_limit <= self.max_limit:
            text = f"between min_limit ({self.min_limit}) and max_limit ({self.max_limit})"
            return [Problem("initial_limit", f"expected {text}", f"must be {text}")]
        return []


class _LimitWaiter(_Waiter):
    """A waiter for a permit; ``shed`` when an overload cut the queue in front of it;
    ``granted_at``: when a permit was handed to it (on the limiter's clock)."""

    __slots__ = ("granted_at", "shed")

    def __init__(self) -> None:
        super().__init__()
        self.shed = False
        self.granted_at = 0.0


class _CriticalWaiter(_LimitWaiter):
    """A waiter of a ``"critical"`` call: queued ahead of the others."""

    __slots__ = ()


class _Partition(WaitQueue):
    """The permits, queue and estimate of one partition.

    ``limit`` is the estimate (a float, moved by fractions); ``admit`` is the whole number of
    calls let in at once, and ``shed_below`` the in-flight count from which ``"sheddable"``
    calls are refused: both derived from it whenever it moves, so that taking a permit is two
    integer comparisons.
    """

    __slots__ = (
        "admit",
        "baseline",
        "changed_at",
        "finished",
        "hot",
        "hot_cpu",
        "hot_since",
        "lag",
        "last_rtt",
        "limit",
        "monotonic",
        "next_probe",
        "offered",
        "probe_from",
        "process_time",
        "reported",
        "reported_at",
        "round_finished",
        "round_rtts",
        "shed_below",
        "window_cpu",
        "window_finished",
        "window_start",
    )

    def __init__(
        self,
        key: str | None,
        limit: float,
        monotonic: Callable[[], float],
        process_time: Callable[[], float],
        share: float,
    ) -> None:
        super().__init__(key)
        self.monotonic = monotonic  # the limiter's clock
        self.process_time = process_time  # and the CPU seconds the process used, in step
        now = monotonic()
        self.limit = limit
        self.admit = int(limit)
        self.shed_below = max(1, int(limit * share))
        self.baseline = math.inf  # the fastest round trip seen since the last probe
        self.last_rtt: float | None = None
        self.changed_at = now  # when the limit last moved
        self.next_probe = now  # the first sample sets the schedule
        self.probe_from: float | None = None  # while probing: samples must start after this
        self.reported = self.admit
        self.reported_at = -math.inf
        # Calls that ran, however they ended, ever (see _overloaded and _estimate).
        self.finished = 0
        # How many calls had finished when the limit last moved; the round trips of the round
        # under way (see _ROUND).
        self.round_finished = 0
        self.round_rtts: list[float] = []
        # Calls offered since window_start, calls finished before it, and how many windows in
        # a row had more offered than completed (see AdaptiveLimiter._overloaded).
        self.offered = 0
        self.window_finished = 0
        self.window_start = now
        self.hot = 0
        self.hot_since = now  # when the windows in a row that were hot began
        # The process's CPU seconds at window_start and at hot_since (see _BUSY_CPU).
        self.window_cpu = self.hot_cpu = process_time()
        # How long a woken waiter took to run (moving average, seconds; -1 before the first):
        # the event loop's own delay, which a busy process adds to every round trip.
        self.lag = -1.0

    def grant(self) -> None:
        """Hand free permits to the waiters, first in line first."""
        waiters = self.waiters
        while waiters and self.active < self.admit:
            waiter = waiters.popleft()
            waiter.granted = True
            assert isinstance(waiter, _LimitWaiter)  # the only waiters of this queue
            waiter.granted_at = self.monotonic()
            waiter.event.set()
            self.active += 1

    def release(self) -> None:
        """Give up a permit, to the first waiter if the limit (which may have shrunk) allows."""
        self.active -= 1
        if self.waiters:
            self.grant()


def _overload(p: _Partition) -> bool:
    """Whether the dependency is overloaded: hot windows in a row (more calls offered than
    completed) for _OVERLOADED_AFTER seconds, while this process is known to keep up: its
    event loop (see _BUSY_LOOP) and its CPU (see _BUSY_CPU). The loop's delay is known once the
    queue has moved (a waiter got a permit that an answered call gave back): before that every
    window of a burst is hot, its calls offered before any could answer (500 callers starting
    at once on a busy loop offer theirs over several windows)."""
    hot_for = p.window_start - p.hot_since
    return (
        p.hot >= 2
        and hot_for >= _OVERLOADED_AFTER
        and 0 <= p.lag < _BUSY_LOOP * (p.last_rtt or math.inf)
        and p.window_cpu - p.hot_cpu < _BUSY_CPU * hot_for
    )


def _idle() -> float:
    """The CPU seconds of a process read on a clock that cannot tell them: always idle."""
    return 0.0


class AdaptiveLimiter:
    """Limit concurrent calls to a number that adapts to how the dependency answers.

    Args:
        min_limit: The limit never goes below this many calls in flight.
        max_limit: The limit never goes above this many.
        initial_limit: The limit of a new partition, before any measurement.
        max_queue: Calls allowed to wait for a permit when all are in use (0: refuse at once).
            ``None``: while more calls are offered than complete, window after window for half
            a second (an overload), half the current limit, so that a wait stays within about
            half a round trip; otherwise (a burst the dependency drains) as many as come,
            each waiting no longer than its deadline and ``queue_timeout``.
        queue_timeout: Longest wait in the queue, in seconds (``None``: until a permit frees or
            the context's deadline).
        backoff_ratio: The limit is multiplied by this on a timeout (while the limit was in
            use, at least half of it).
        probe_interval: Seconds between two measurements of the baseline round trip (the limit
            halves until a call started after the halving has answered).
        sheddable_share: A ``"sheddable"`` call is refused once this share of the limit is in
            flight, and never queued; a ``"critical"`` one queues ahead of the others.
        key: A function of the :class:`~httpx_resilience.Context` naming the partition (one
            limit per key); by default :func:`~httpx_resilience.by_origin`, one limit per
            scheme, host and port (a single one outside the HTTP layer); ``None`` for one in
            all.
        max_partitions: Partitions kept at most.
        clock: The clock that round trips and queue waits are measured on (default: the system
            clock).

    What counts: a call's round trip (on ``clock``) is a sample when the call returned (a
    response, whatever its status, other than ``429``/``503``). A timeout
    (:class:`~httpx_resilience.TimeoutRejected`) is a *drop*: the limit backs off. A
    ``429``/``503`` answer, other exceptions, rejections by policies inside and cancellations
    are neither: they say nothing about the dependency's queue (a refusal is fast however long
    the queue; the pacing gate, the retry and the breaker deal with them).
    """

    __slots__ = (
        "_backoff_ratio",
        "_clock",
        "_events",
        "_initial_limit",
        "_key",
        "_max_limit",
        "_max_queue",
        "_min_limit",
        "_monotonic",
        "_options",
        "_partitions",
        "_probe_interval",
        "_process_time",
        "_queue_timeout",
        "_sheddable_share",
        "_single",
    )

    # Kept from the options (see Options._keep).
    _min_limit: int
    _max_limit: int
    _initial_limit: int
    _max_queue: int | None
    _queue_timeout: float | None
    _backoff_ratio: float
    _probe_interval: float
    _sheddable_share: float

    def __init__(
        self,
        *,
        min_limit: int = 1,
        max_limit: int = 1000,
        initial_limit: int = 20,
        max_queue: int | None = None,
        queue_timeout: float | None = None,
        backoff_ratio: float = 0.9,
        probe_interval: float = 10.0,
        sheddable_share: float = 0.75,
        key: Callable[[Context], str] | None = by_origin,
        max_partitions: int = DEFAULT_MAX_PARTITIONS,
        clock: Clock | None = None,
    ) -> None:
        self._options = AdaptiveLimitPolicyOptions._of_arguments("AdaptiveLimiter", locals())
        self._options._keep(self)  # self._min_limit, self._max_limit...
        if key is not None and not callable(key):
            raise ValueError(f"AdaptiveLimiter: key must be a function of the context, got {key!r}")
        self._key = key
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._monotonic = self._clock.monotonic
        self._process_time: Callable[[], float] = getattr(self._clock, "process_time", _idle)
        self._events = PolicyEvents("adaptive_limit", self._clock)
        self._single = self._new_partition(None)
        self._partitions: Partitions[_Partition] = Partitions(
            "AdaptiveLimiter", self._new_partition, max_partitions
        )

    def _new_partition(self, key: str | None) -> _Partition:
        return _Partition(
            key, self._initial_limit, self._monotonic, self._process_time, self._sheddable_share
        )

    def describe(self) -> dict[str, Any]:
        """The limiter's configuration, and each partition's limit, calls in flight and
        queued, as plain data."""
        if self._key is None:
            partitions = [("", self._single)]
        else:
            partitions = list(self._partitions.items())
        return {
            "policy": "adaptive_limit",
            "options": described_options(
                self._options,
                self._key,
                self._partitions,
            ),
            "state": {
                "partitions": {
                    k: {
                        "limit": p.admit,
                        "in_flight": p.active,
                        "queued": len(p.waiters),
                        "baseline_rtt": None if p.baseline == math.inf else p.baseline,
                    }
                    for k, p in partitions
                }
            },
        }

    def __repr__(self) -> str:
        return (
            f"AdaptiveLimiter(min_limit={self._min_limit}, max_limit={self._max_limit}, "
            f"initial_limit={self._initial_limit}, max_queue={self._max_queue}, "
            f"partitioned={self._key is not None})"
        )

    def limit(self, key: str | None = None) -> int:
        """The current limit of the limiter (``key=None`` when built with ``key=None``), or of
        partition ``key`` (its initial limit if it has none yet)."""
        partition = self._single if key is None else self._partitions.peek(key)
        return self._initial_limit if partition is None else partition.admit

    def occupancy(self, key: str | None = None) -> tuple[int, int]:
        """``(calls in flight, calls queued)`` of the limiter, or of partition ``key``."""
        return occupancy(self._single if key is None else self._partitions.peek(key))

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        """Run ``next`` once a permit is free, and learn from its round trip."""
        key = self._key
        partition = self._single if key is None else self._partitions.get(key(context))
        partition.offered += 1
        active = partition.active
        if (
            active < partition.admit
            and not partition.waiters
            and (active < partition.shed_below or context.priority != "sheddable")
        ):
            partition.active = active + 1  # a free permit: no waiting, no await
        else:
            await self._queue(partition, context)
        monotonic = self._monotonic
        start = monotonic()
        try:
            result = await next(context)
        except TimeoutRejected:
            self._learn(partition, context, start, monotonic(), dropped=True)
            raise
        except BaseException:
            # A failure that is not about load, a rejection from inside or a cancellation:
            # no sample. The permit goes back all the same.
            partition.release()
            raise
        finally:
            partition.finished += 1  # a call that ran, however it ended
        if getattr(result, "status_code", None) in _REFUSAL_STATUSES:
            partition.release()  # no sample
        else:
            self._learn(partition, context, start, monotonic(), dropped=False)
        return result

    # -- the limit ------------------------------------------------------------------------------

    def _learn(
        self, partition: _Partition, context: Context, start: float, now: float, *, dropped: bool
    ) -> None:
        """Move the limit from one sample, then give back its permit."""
        try:
            limit = self._estimate(partition, start, now, dropped)
            if limit != partition.limit:
                self._set(partition, context, limit, now)
            if partition.admit != partition.reported:
                # Also a move held back by the event interval, once the interval has passed.
                self._report(partition, context, now)
        finally:
            partition.release()

    def _estimate(self, p: _Partition, start: float, now: float, dropped: bool) -> float:
        """The new limit after one sample: at the end of a round, from the queue estimated
        from its median round trip (see _ROUND)."""
        limit = p.limit
        in_use = 2 * p.active >= limit  # else the caller, not the dependency, set the pace
        if dropped:
            return max(self._min_limit, limit * self._backoff_ratio) if in_use else limit
        rtt = now - start
        p.last_rtt = rtt
        if p.probe_from is not None:
            if start < p.probe_from:
                return limit  # started before the probe: its queue is the old one
            # The first answer to a call sent with the queue drained: the new baseline.
            p.probe_from = None
            p.baseline = rtt
            p.next_probe = now + self._probe_interval
            return limit
        if in_use and now >= p.next_probe and p.baseline != math.inf:
            p.probe_from = now
            return max(float(self._min_limit), limit / 2)
        if rtt < p.baseline:
            p.baseline = rtt
            if p.next_probe <= start:
                p.next_probe = now + self._probe_interval
        # Below the initial limit, answers count even when the limit is not in use: a limit
        # cut by a transient (a burst into a busy process) comes back to it once round trips
        # do, though the callers are too few to fill it. Above it, a limit not in use would
        # grow without evidence.
        regrowing = not in_use and limit < self._initial_limit
        if (not in_use and not regrowing) or rtt <= 0 or start < p.changed_at:
            # Not at the limit, or sent before the limit last moved: its round trip does not
            # tell what the current limit does (one move per round trip, or the limit would
            # swing past its mark on answers that lag behind it).
            return limit
        rtts = p.round_rtts
        rtts.append(rtt)
        elapsed = now - p.changed_at
        if len(rtts) < _ROUND or elapsed < min(rtts):
            return limit  # a round is _ROUND answers, and at least a round trip of time
        rtts.sort()
        rtt = rtts[len(rtts) // 2]  # the median
        # Calls queued in front of the dependency: by Little's law, those that finish per
        # second times the wait each had beyond the baseline. Vegas counts the calls that
        # finish per second as limit / round trip, true when every call takes as long; when
        # some take far longer (a slow endpoint), they hold permits but finish few calls, and
        # counting them would read them as a queue. Twice the count since the last move caps
        # it, so that its noise never moves the limit of calls that all take about as long.
        rate = min(limit / rtt, 2 * (p.finished - p.round_finished) / elapsed)
        rtts.clear()  # the next answers make a new round (and a move starts one in _set)
        queued = rate * (rtt - p.baseline)
        step = max(1.0, math.log10(limit))  # thresholds grow slowly with the limit, as Vegas'
        if regrowing:
            if queued > _GROW_FAST * step:
                return limit
            return min(float(self._initial_limit), limit + 2 * step)
        if queued <= _GROW_FAST * step:
            # Next to no queue: grow fast. The baseline still holds for the dependency's round
            # trips, so there is no need to drain the queue to measure it again.
            p.next_probe = now + self._probe_interval
            limit += 2 * step
        elif queued < _GROW * step:
            limit += step
        elif queued > _SHRINK * step:
            # The whole excess at once: a round already waited for answers sent after the last
            # move (half of it: 1.3 s to follow a halving of the simulated upstream, not 0.5 s).
            limit -= max(step, queued - _SHRINK * step)
        else:
            return limit  # a queue of the right length: hold
        return min(float(self._max_limit), max(float(self._min_limit), limit))

    def _set(self, p: _Partition, context: Context, limit: float, now: float) -> None:
        p.limit = limit
        p.changed_at = now
        # A new round: the answers so far were to calls sent under the old limit.
        p.round_finished = p.finished
        p.round_rtts.clear()
        p.admit = int(limit)
        p.shed_below = max(1, int(limit * self._sheddable_share))

    def _report(self, p: _Partition, context: Context, now: float) -> None:
        """Emit ``limit_changed``, at most once per ``_EVENT_INTERVAL`` per partition."""
        if now - p.reported_at < _EVENT_INTERVAL:
            return
        self._events.emit(
            context,
            "limit_changed",
            key=p.key,
            timestamp=now,
            limit=p.admit,
            previous=p.reported,
            in_flight=p.active,
            queued=len(p.waiters),
        )
        p.reported = p.admit
        p.reported_at = now

    # -- waiting and refusing -------------------------------------------------------------------

    async def _queue(self, partition: _Partition, context: Context) -> None:
        now = self._monotonic()
        priority = context.priority
        if priority == "sheddable":
            self._reject(partition, context, now, "shed")
        timeout = self._queue_timeout
        if context.deadline is not None:
            left = context.deadline - now
            timeout = left if timeout is None else min(timeout, left)
        waiters = partition.waiters
        if (timeout is not None and timeout <= 0) or (
            len(waiters) >= self._room(partition, now) and not self._displace(waiters, priority)
        ):
            self._reject(partition, context, now, "full")
        waiter: _LimitWaiter
        if priority == "critical":
            # Ahead of every waiter that is not critical, behind the critical ones.
            waiter = _CriticalWaiter()
            ahead = 0
            for other in waiters:
                if not isinstance(other, _CriticalWaiter):
                    break
                ahead += 1
            waiters.insert(ahead, waiter)
        else:
            waiter = _LimitWaiter()
            waiters.append(waiter)
        try:
            await wait_for_event(waiter.event, timeout, self._clock)
        except BaseException:
            if waiter.granted:
                partition.release()
            elif waiter in waiters:
                waiters.remove(waiter)
            raise
        if waiter.granted:
            lag = self._monotonic() - waiter.granted_at
            last = partition.lag
            partition.lag = lag if last < 0 else last + (lag - last) * _LAG_WEIGHT
        else:
            if waiter in waiters:
                waiters.remove(waiter)
                reason = "queue_timeout"
            elif waiter.shed:
                reason = "overload"  # the queue was cut to its short length
            else:
                reason = "displaced"  # a critical call took its place
            self._reject(partition, context, self._monotonic(), reason)

    def _room(self, partition: _Partition, now: float | None = None) -> int | float:
        """The places in the queue: ``max_queue``; by default half the limit in an overload
        (as of ``now``; the last known state without it), else no bound."""
        room = self._max_queue
        if room is not None:
            return room
        if now is not None:
            self._overloaded(partition, now)
        return partition.admit // 2 if _overload(partition) else math.inf

    @staticmethod
    def _overloaded(p: _Partition, now: float) -> None:
        """Close the window if it has lasted its length: it was hot if more calls were offered
        in it than completed. Hot windows in a row for half a second are an overload: a queue
        that keeps growing. Fewer are a burst (a batch of callers, the calls a pacing gate let
        go), which drains.

        In an overload the queue is cut to its short length at once: the newest waiters
        beyond it, who would wait longest, are refused, critical ones last."""
        length = max(_WINDOW, p.last_rtt or 0.0)
        if now - p.window_start < length:
            return
        hot = p.offered > _HOT * (p.finished - p.window_finished) + _HOT_SLACK
        cpu = p.process_time()
        if hot and not p.hot:
            # A window lasts until a call queues: one that began long before its calls came
            # (the calls a pacing gate held for a second, let go at once) counts for its
            # nominal length only, or it alone would make half a second of hot windows.
            p.hot_since = max(p.window_start, now - length)
            share = (p.hot_since - p.window_start) / (now - p.window_start)
            p.hot_cpu = p.window_cpu + (cpu - p.window_cpu) * share
        p.hot = p.hot + 1 if hot else 0
        p.offered = 0
        p.window_finished = p.finished
        p.window_start = now
        p.window_cpu = cpu
        if not _overload(p):
            return
        waiters = p.waiters
        room = p.admit // 2
        while len(waiters) > room and not isinstance(waiters[-1], _CriticalWaiter):
            waiter = waiters.pop()
            assert isinstance(waiter, _LimitWaiter)  # the only waiters of this queue
            waiter.shed = True
            waiter.event.set()

    @staticmethod
    def _displace(waiters: deque[_Waiter], priority: str) -> bool:
        """Make room in a full queue for a critical call: the newest waiter that is not
        critical leaves it, woken without a permit (and so refused). Whether there was one."""
        if priority != "critical" or not waiters or isinstance(waiters[-1], _CriticalWaiter):
            return False
        waiters.pop().event.set()  # critical waiters are at the front: the last one is not
        return True

    def _reject(self, p: _Partition, context: Context, now: float, reason: str) -> None:
        self._events.emit(
            context,
            "concurrency_limited",
            key=p.key,
            timestamp=now,
            reason=reason,
            priority=context.priority,
            limit=p.admit,
            in_flight=p.active,
            queued=len(p.waiters),
        )
        limiter = where("the adaptive limit", p.key)
        if reason == "shed":
            message = (
                f"{limiter} sheds sheddable calls under pressure ({p.active} calls in flight, "
                f"limit {p.admit})"
            )
        elif reason == "displaced":
            message = f"{limiter} gave this call's place in its queue to a critical call"
        elif reason == "overload":
            message = (
                f"{limiter} cut its queue to {self._room(p)}: more calls come than complete "
                f"({p.active} of {p.admit} in flight)"
            )
        elif reason == "full":
            why = "" if self._max_queue is not None else ": more calls come than complete"
            message = (
                f"{limiter} is reached ({p.active} of {p.admit} calls in flight, "
                f"{len(p.waiters)} of {self._room(p)} queued{why})"
            )
        else:
            message = f"{limiter} had no free permit in time ({p.active} of {p.admit} in flight)"
        # A permit comes free, on average, every round trip divided by the calls in flight.
        rtt = p.last_rtt
        retry_after = None if rtt is None else rtt / max(1, p.admit)
        raise ConcurrencyLimitRejected(message, retry_after=retry_after)
