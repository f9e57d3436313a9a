"""Pacing: one gate per origin that the origin itself opens, closes and paces.

A dependency that is busy says so. An answer with ``Retry-After`` (a 429 or 503 in the HTTP
layer) closes the gate of its origin until that moment: every call to the origin through this
pipeline waits there (never past ``max_wait`` nor ``context.deadline``) or is refused at once with
:class:`~httpx_resilience.PacingRejected`, not only the call that got the answer. When the gate
reopens after a "too many requests" (any refusal but a ``503``) the waiting calls do not rush in
together: they are released one by one at the pace the origin was seen to accept (the answers it
accepted between two closings, over that time), so a client held to a fixed window without any
rate-limit headers settles at that limit after the first window. A ``503`` (unavailable) says
nothing of a pace: its gate reopens to everyone at once. Answers that announce a quota
(``RateLimit`` headers in the HTTP layer: calls left, seconds until renewed) pace the calls so
that the quota lasts until it is renewed, and the origin never has to refuse.

The policy reads outcomes only through ``context.classifier`` (``failed_result``,
``failed_exception``, ``retry_after``, ``quota``), so what a "Retry-After" or a quota is stays in
the place the pipeline runs in. A refusal by the gate is neutral to every other policy: the
dependency was not called.

On the happy path (no pace known, the gate open) a call costs a partition lookup, an attribute
check and, per accepted answer, one clock reading; an answer's quota is looked for in every
answer of an origin that has announced one, and in one answer in 16 of the others.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .._clock import SYSTEM_CLOCK, Clock
from .._validate import BOOLEAN, NON_NEGATIVE
from ..context import Context, by_origin
from ..errors import PacingRejected
from ..outcome import Outcome
from ..telemetry import PolicyEvents
from ._options import Options, option
from ._partitions import DEFAULT_MAX_PARTITIONS, Partitions, described_options
from ._waiters import where

__all__ = ["Pacing", "PacingPolicyOptions"]

T = TypeVar("T")

# Times of the last accepted answers kept per gate, to learn a pace at the first closing (when
# there is no earlier closing to count from). A busier origin is learned as this many answers
# per Retry-After at least; the next closing counts exactly.
_RECENT = 128
# A pause longer than this (a day) is not a pause but garbage: ignored.
_MAX_PAUSE = 86_400.0
# Counting between two closings is used when they are at most this many pauses apart; after a
# longer calm the load that led to the new closing is the recent one.
_CALM = 8.0
# A learned pace that has held nobody back for this many times the span it was learned over is
# forgotten: the load that taught it is gone (and an origin's brief overload does not throttle
# its callers for good). Eager callers, held back all the time, keep it.
_FORGET = 10.0

# A learned pace is this much slower than what was counted: a release must never land on the
# origin's next window boundary a rounding error early, where it would be one too many.
_MARGIN = 1.001

# Of an origin that has announced no quota yet, one answer in this many is read for one.
_SAMPLE = 16

_INF = math.inf
# Times this close are the same time: a sleep of less may not move a clock at all.
_EPSILON = 1e-9


class _Gate:
    """The gate of one partition (origin): closed until when, the pace it releases calls at,
    and what it counts to learn that pace."""

    __slots__ = (
        "__weakref__",
        "accepted",
        "bound_at",
        "busy",
        "closed_at",
        "closed_until",
        "closings",
        "in_flight",
        "interval",
        "key",
        "learn_pending",
        "learned",
        "opened_at",
        "quota_seen",
        "quota_until",
        "recent",
        "recent_index",
        "span",
        "tat",
        "tolerance",
        "unread",
    )

    def __init__(self, key: str | None) -> None:
        self.key = key
        # Anything to enforce: a closed gate or a pace. False on the happy path.
        self.busy = False
        self.closed_until = -_INF
        self.closed_at = -_INF  # when the current (or last) closing began
        self.closings = 0  # how many times it closed: tells an answer sent before a closing
        self.opened_at = -_INF  # when the gate last reopened after a closing
        self.learn_pending = False
        # The schedule (GCRA): the theoretical time of the next release, the spacing between
        # releases and how far ahead of the schedule a call may go (a burst, in seconds).
        self.tat = -_INF
        self.interval = 0.0
        self.tolerance = 0.0
        self.learned = 0.0  # the spacing learned from closings (0: none yet)
        self.span = 0.0  # the time it was learned over
        self.bound_at = -_INF  # when a call last had to wait for its turn at that pace
        # The spacing from a quota holds until the quota is renewed (inf: not from a quota).
        self.quota_until = _INF
        self.accepted = 0  # answers accepted since the gate last reopened
        self.recent = [-_INF] * _RECENT  # times of the last accepted answers (a ring)
        self.recent_index = 0
        self.in_flight = 0
        # Reading an answer's quota costs a pass over its headers: an origin that never
        # announced one has only every _SAMPLE-th answer read (the first one included).
        self.quota_seen = False
        self.unread = _SAMPLE - 1

    def accepted_since(self, since: float) -> int:
        return sum(1 for t in self.recent if t > since)


@dataclass(frozen=True)
class PacingPolicyOptions(Options):
    """The plain-data options of a :class:`Pacing` gate (see it for each), validated when
    built; a profile's :class:`~httpx_resilience.profiles.PacingOptions` adds how it is
    partitioned."""

    max_wait: float = option(NON_NEGATIVE, 60.0)
    use_quota: bool = option(BOOLEAN, True)


class Pacing:
    """Hold every call to an origin while it asks for a pause, and pace calls to what it
    accepts.

    Args:
        max_wait: Longest a call waits at the gate, in seconds (never past the context's
            deadline); a call that would wait longer is refused at once with
            :class:`~httpx_resilience.PacingRejected`, whose ``retry_after`` says when the gate
            lets the next call through.
        use_quota: Pace calls from the quota that answers announce (the ``RateLimit`` and
            ``X-RateLimit`` headers in the HTTP layer), so that it lasts until it is renewed.
        key: A function of the :class:`~httpx_resilience.Context` naming the gate (default
            :func:`~httpx_resilience.by_origin`: one gate per scheme, host and port; outside
            the HTTP layer, one gate in all); ``None`` for one gate in all.
        max_partitions: Gates kept at most.
        clock: The clock to measure and wait with (default: the system clock).
    """

    __slots__ = (
        "_clock",
        "_events",
        "_gate",
        "_key",
        "_max_wait",
        "_monotonic",
        "_options",
        "_partitions",
        "_use_quota",
    )

    # Kept from the options (see Options._keep).
    _max_wait: float
    _use_quota: bool

    def __init__(
        self,
        *,
        max_wait: float = 60.0,
        use_quota: bool = True,
        key: Callable[[Context], str] | None = by_origin,
        max_partitions: int = DEFAULT_MAX_PARTITIONS,
        clock: Clock | None = None,
    ) -> None:
        self._options = PacingPolicyOptions._of_arguments("Pacing", locals())
        self._options._keep(self)  # self._max_wait, self._use_quota
        if key is not None and not callable(key):
            raise ValueError(f"Pacing: key must be a function of the context, got {key!r}")
        self._key = key
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._events = PolicyEvents("pacing", self._clock)
        self._monotonic = self._clock.monotonic
        self._gate = _Gate(None)
        # A closed gate is kept over an idle open one: forgetting it would send the next calls
        # into the pause the origin asked for.
        self._partitions: Partitions[_Gate] = Partitions(
            "Pacing", _Gate, max_partitions, keep=self._closed
        )

    def _closed(self, gate: _Gate) -> bool:
        return gate.closed_until > self._monotonic()

    def __repr__(self) -> str:
        return (
            f"Pacing(max_wait={self._max_wait:g}, use_quota={self._use_quota}, "
            f"partitioned={self._key is not None})"
        )

    def describe(self) -> dict[str, Any]:
        """The gate's configuration and, per partition, whether it is closed and until when
        (seconds from now), and the pace it releases calls at, as plain data."""
        now = self._monotonic()
        gates = [("", self._gate)] if self._key is None else list(self._partitions.items())
        return {
            "policy": "pacing",
            "options": described_options(
                self._options,
                self._key,
                self._partitions,
            ),
            "state": {"partitions": {key: _gate_state(gate, now) for key, gate in gates}},
        }

    def state(self, key: str | None = None) -> dict[str, Any]:
        """The gate of partition ``key`` (the only one without ``key=``), as ``describe()``
        shows it: ``closed_for`` (seconds, 0 when open), ``interval`` (seconds between calls,
        0 when not paced), ``source`` (``"retry_after"``, ``"quota"`` or ``None``) and
        ``in_flight`` (calls let through and not answered yet)."""
        gate = self._gate if key is None or self._key is None else self._partitions.peek(key)
        return _gate_state(gate if gate is not None else _Gate(key), self._monotonic())

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        """Pass the gate (waiting for it or refused), run ``next``, learn from its answer."""
        gate = self._gate if self._key is None else self._partitions.get(self._key(context))
        if gate.busy:
            await self._admit(gate, context)
        gate.in_flight += 1
        closings = gate.closings
        classifier = context.classifier
        try:
            result = await next(context)
        except Exception as exc:
            gate.in_flight -= 1
            if classifier.failed_exception(exc) and closings == gate.closings:
                self._failed(gate, Outcome(exception=exc), context)
            raise
        except BaseException:
            gate.in_flight -= 1
            raise
        gate.in_flight -= 1
        if classifier.failed_result(result):
            # An answer to a call sent before the gate last closed tells nothing new: the
            # origin said it to the call that closed the gate (same window, same pause).
            if closings == gate.closings:
                self._failed(gate, Outcome(result), context)
            return result
        now = self._monotonic()
        gate.accepted += 1
        index = gate.recent_index
        gate.recent[index] = now
        gate.recent_index = index + 1 if index + 1 < _RECENT else 0
        if self._use_quota:
            gate.unread += 1
            if gate.quota_seen or gate.unread >= _SAMPLE:
                gate.unread = 0
                quota = classifier.quota(result)
                if quota is not None:
                    gate.quota_seen = True
                    self._quota(gate, quota, now, context)
        return result

    # -- learning -------------------------------------------------------------------------------

    def _failed(self, gate: _Gate, outcome: Outcome[Any], context: Context) -> None:
        pause = context.classifier.retry_after(outcome)
        if pause is None or not 0 < pause <= _MAX_PAUSE:
            return
        # A pace is learned from "too many requests", not from "unavailable": a 503 says the
        # origin cannot serve for a while, not how fast it serves, and the pace counted before a
        # flaky origin's random 503 is the callers' own rate, which would leave the calls held
        # meanwhile no room to drain (the demo's flaky scenario: p99 from 50 ms to 20 s).
        learn = getattr(outcome.result, "status_code", None) != 503
        self._close(gate, self._monotonic(), pause, context, reason="retry_after", learn=learn)

    def _quota(self, gate: _Gate, quota: tuple[float, float], now: float, context: Context) -> None:
        remaining, reset = quota
        if not (remaining >= 0 and 0 < reset <= _MAX_PAUSE):
            return
        # Calls still out were let through on an older count: they will take from this one.
        left = remaining - gate.in_flight
        if left < 1:
            # Spent: nobody goes until it is renewed, and then the pace of this quota is moot.
            self._close(gate, now, reset, context, reason="quota", learn=False)
            gate.quota_until = gate.closed_until
            return
        # Space the calls left over the time until renewal, letting up to half of them go at
        # once: a quota far from spent costs no waiting, one running out is stretched to last.
        interval = reset / left
        if gate.quota_until == _INF or now + reset > gate.quota_until + interval:
            gate.tat = now  # a quota of its own (renewed): the schedule of the old one is moot
        gate.interval = interval
        gate.tolerance = max(left // 2 - 1, 0) * interval  # half of them: the schedule lets one
        gate.quota_until = now + reset
        gate.busy = True

    def _close(
        self,
        gate: _Gate,
        now: float,
        pause: float,
        context: Context,
        *,
        reason: str,
        learn: bool,
    ) -> None:
        until = now + pause
        if until <= gate.closed_until:
            return  # an answer to a call sent before the gate closed: nothing new
        was_open = gate.closed_until <= now
        if was_open:
            gate.closed_at = now
            gate.closings += 1
        gate.closed_until = until
        gate.learn_pending = gate.learn_pending or learn
        gate.busy = True
        if was_open:
            self._events.emit(
                context,
                "pacing_closed",
                key=gate.key,
                timestamp=now,
                reason=reason,
                retry_after=pause,
            )

    def _learn(self, gate: _Gate) -> None:
        """At reopening: the pace the origin accepted, from the answers it accepted before."""
        gate.learn_pending = False
        reopened = gate.closed_until
        pause = reopened - gate.closed_at
        since = gate.opened_at
        if since > -_INF and reopened - since <= _CALM * max(pause, 1e-9) and gate.accepted:
            # Between two closings: that many answers accepted over that time.
            span = reopened - since
            interval = span / gate.accepted
        else:
            # The first closing (or the first after a long calm): the answers accepted in the
            # pause's length before it, and while it lasted, per pause.
            accepted = gate.accepted_since(gate.closed_at - pause)
            span = pause
            interval = pause / accepted if accepted else 0.0
        if interval > 0:
            interval *= _MARGIN
            gate.learned = interval
            gate.span = span
            gate.bound_at = reopened
            if gate.quota_until == _INF:  # a quota, while it holds, says better
                gate.interval = interval
                gate.tolerance = 0.0
        gate.opened_at = reopened
        gate.accepted = 0

    # -- admission -------------------------------------------------------------------------------

    async def _admit(self, gate: _Gate, context: Context) -> None:
        start = now = self._monotonic()
        limit = start + self._max_wait
        deadline = context.deadline
        if deadline is not None and deadline < limit:
            limit = deadline
        while True:
            reserved = tat = 0.0
            if now + _EPSILON < gate.closed_until:
                wake = gate.closed_until
            else:
                if gate.learn_pending:
                    self._learn(gate)
                if gate.quota_until <= now:
                    # The quota was renewed and no answer told the new one: back to the
                    # learned pace, if any.
                    gate.quota_until = _INF
                    gate.interval = gate.learned
                    gate.tolerance = 0.0
                    gate.tat = now
                if gate.learned and now - gate.bound_at > _FORGET * gate.span:
                    gate.learned = 0.0
                    if gate.quota_until == _INF:
                        gate.interval = 0.0
                interval = gate.interval
                if not interval:
                    gate.busy = False
                    break
                tat = gate.tat if gate.tat > now else now
                wake = tat - gate.tolerance
                gate.tat = tat + interval
                if wake <= now + _EPSILON:
                    break
                reserved = gate.tat  # this call's slot ends the schedule, until another comes
                gate.bound_at = now
            if wake > limit:
                if reserved and gate.tat == reserved:
                    gate.tat = tat  # give the slot back
                self._reject(gate, context, now, wake - now, start)
            try:
                await self._clock.sleep(wake - now)
            except BaseException:
                if reserved and gate.tat == reserved:
                    gate.tat = tat
                raise
            now = self._monotonic()
            if reserved and now + _EPSILON >= gate.closed_until:
                break  # its slot came, and the gate did not close meanwhile
        if now > start:
            self._events.emit(
                context,
                "paced",
                key=gate.key,
                timestamp=now,
                duration=now - start,
                interval=gate.interval,
            )

    def _reject(
        self, gate: _Gate, context: Context, now: float, retry_after: float, start: float
    ) -> None:
        closed = now < gate.closed_until
        self._events.emit(
            context,
            "pacing_rejected",
            key=gate.key,
            timestamp=now,
            retry_after=retry_after,
            closed=closed,
        )
        gate_name = where("the pacing gate", gate.key)
        if closed:
            message = (
                f"{gate_name} is closed for {gate.closed_until - now:.3g} s more, as the origin "
                "asked"
            )
        else:
            message = (
                f"{gate_name} would let this call through in {retry_after:.3g} s, at the pace the "
                "origin accepts"
            )
        waited = now - start
        if waited > 0:
            message += f" (after waiting {waited:.3g} s)"
        raise PacingRejected(f"{message}: past max_wait or the deadline", retry_after=retry_after)


def _gate_state(gate: _Gate, now: float) -> dict[str, Any]:
    closed_for = gate.closed_until - now if gate.closed_until > now else 0.0
    if gate.interval and gate.quota_until < _INF:
        source: str | None = "quota"
    elif gate.interval:
        source = "retry_after"
    else:
        source = None
    return {
        "closed_for": closed_for,
        "interval": gate.interval,
        "source": source,
        "in_flight": gate.in_flight,
    }
