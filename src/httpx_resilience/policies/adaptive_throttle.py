"""AdaptiveThrottler: client-side throttling, refusing locally the share of calls a dependency
cannot take (Google SRE book, "Handling Overload").

Over a sliding window it counts ``requests`` (every call it saw, refused ones included) and
``accepts`` (calls the dependency answered with something other than a failure), and refuses a
new call with probability

    max(0, (requests - k * accepts) / (requests + 1)),  at most ``max_rejection_rate``,

with :class:`~httpx_resilience.ThrottleRejected`, without calling the dependency. While the
dependency accepts everything the probability is 0; when it accepts only a share ``a`` of what
it gets, the throttler lets through about ``k * a`` of the calls (``k`` times what it can take,
so that it keeps seeing how much that is) and refuses the rest at once. Unlike a circuit breaker
it never refuses everything: the calls it lets through see the end of an overload as soon as it
ends, and the probability falls with each accepted call.

Priorities (``context.priority``) change ``k``: a ``"critical"`` call is refused with ``2k``
(only once the dependency accepts less than ``1 / (2k)`` of calls), a ``"sheddable"`` one with
``(1 + k) / 2`` (as soon as it accepts less than ``2 / (1 + k)``), so sheddable work is shed
first and critical work last.

The window is ``window`` seconds in ten buckets kept in a ring (the breaker's time window), so
each call is O(1) and allocates nothing.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .._clock import SYSTEM_CLOCK, Clock
from .._validate import POSITIVE, Rule, integer, window_problem
from ..context import Context
from ..errors import ThrottleRejected
from ..outcome import Outcome, _is_rejection
from ..priority import Priority, rank
from ..telemetry import PolicyEvents
from ._options import Options, Problem, option
from ._partitions import DEFAULT_MAX_PARTITIONS, Partitions, described_options
from ._windows import TimeWindow

__all__ = ["AdaptiveThrottlePolicyOptions", "AdaptiveThrottler"]

T = TypeVar("T")

_MULTIPLIER = Rule("a finite number >= 1", lambda v: POSITIVE.accepts(v) and v >= 1, float)
_RATE = Rule("a number > 0 and <= 1", lambda v: POSITIVE.accepts(v) and v <= 1, float)


@dataclass(frozen=True)
class AdaptiveThrottlePolicyOptions(Options):
    """The plain-data options of an :class:`AdaptiveThrottler` (see it for each), validated
    when built; a profile's :class:`~httpx_resilience.profiles.AdaptiveThrottleOptions` adds
    how it is partitioned."""

    k: float = option(_MULTIPLIER, 2.0)
    window: float = option(POSITIVE, 5.0)
    max_rejection_rate: float = option(_RATE, 0.9)
    min_requests: int = option(integer(0), 20)

    def _cross_checks(self) -> list[Problem]:
        if not POSITIVE.accepts(self.window):
            return []  # already refused (a shadow of invalid options)
        problem = window_problem(self.window)
        return [] if problem is None else [Problem.bound("window", problem)]


class AdaptiveThrottler:
    """Refuse locally, at random, the share of calls the dependency is not accepting.

    Args:
        k: How many times what the dependency accepts is still sent to it (>= 1; 2, the SRE
            book's, lets through twice what it takes; 1 sheds the most). A ``"critical"`` call
            is judged with ``2k``, a ``"sheddable"`` one with ``(1 + k) / 2``.
        window: Seconds of history the counts cover (ten buckets of ``window / 10``).
        max_rejection_rate: The highest probability of refusing a call (0 < rate <= 1), so
            that some calls always reach the dependency.
        min_requests: Calls the window must hold before anything is refused.
        handle: Which outcomes the dependency did not accept. Default: the place's classifier
            (any exception; over HTTP, transport errors, attempt timeouts and 408/429/5xx
            statuses: a 429 is exactly a dependency refusing load). A rejection by a policy
            inside counts as neither, and cancellation never counts.
        key: A function of the :class:`~httpx_resilience.Context` naming the partition (one
            throttle per host, tenant...); ``None`` for one in all.
        max_partitions: Partitions kept at most.
        rng: The :class:`random.Random` the refusals are drawn from (give a seeded one for
            repeatable tests); default, a generator of its own.
        clock: The clock (default: the system clock).
    """

    __slots__ = (
        "_clock",
        "_events",
        "_handle",
        "_k",
        "_key",
        "_max_rejection_rate",
        "_min_requests",
        "_monotonic",
        "_multipliers",
        "_options",
        "_partitions",
        "_random",
        "_window",
        "_window_of",
    )

    # Kept from the options (see Options._keep).
    _k: float
    _window: float
    _max_rejection_rate: float
    _min_requests: int

    def __init__(
        self,
        *,
        k: float = 2.0,
        window: float = 5.0,
        max_rejection_rate: float = 0.9,
        min_requests: int = 20,
        handle: Callable[[Outcome[Any]], bool] | None = None,
        key: Callable[[Context], str] | None = None,
        max_partitions: int = DEFAULT_MAX_PARTITIONS,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        name = "AdaptiveThrottler"
        self._options = AdaptiveThrottlePolicyOptions._of_arguments(name, locals())
        self._options._keep(self)  # self._k, self._window... (read on every call)
        if handle is not None and not callable(handle):
            raise ValueError(f"{name}: handle must be a predicate over outcomes, got {handle!r}")
        if key is not None and not callable(key):
            raise ValueError(f"{name}: key must be a function of the context, got {key!r}")
        if rng is not None and not isinstance(rng, random.Random):
            raise ValueError(f"{name}: rng must be a random.Random, got {rng!r}")
        self._handle = handle
        self._key = key
        self._random = (rng if rng is not None else random.Random()).random
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._monotonic = self._clock.monotonic
        self._events = PolicyEvents("adaptive_throttle", self._clock)
        k = self._k
        # By rank(priority): critical, default, sheddable.
        self._multipliers = (2 * k, k, (1 + k) / 2)
        self._window_of = TimeWindow(self._window)
        self._partitions: Partitions[TimeWindow] = Partitions(
            name, lambda _key: TimeWindow(self._window), max_partitions
        )

    def describe(self) -> dict[str, Any]:
        """The throttler's configuration, and the counts and refusal probability (of a
        ``"default"`` call) of each partition, as plain data."""
        if self._key is None:
            windows = {"": self._window_of}
        else:
            windows = dict(self._partitions.items())
        now = self._monotonic()
        return {
            "policy": "adaptive_throttle",
            "options": described_options(self._options, self._key, self._partitions, self._handle),
            "state": {
                "partitions": {key: self._counts(window, now) for key, window in windows.items()}
            },
        }

    def __repr__(self) -> str:
        return (
            f"AdaptiveThrottler(k={self._k:g}, window={self._window:g}, "
            f"max_rejection_rate={self._max_rejection_rate:g}, "
            f"partitioned={self._key is not None})"
        )

    def rejection_rate(self, key: str | None = None, *, priority: Priority = "default") -> float:
        """The probability that a call of ``priority`` is refused now (of the throttler, or of
        partition ``key``)."""
        window = self._window_of if key is None else self._partitions.peek(key)
        if window is None:
            return 0.0
        window.expire(self._monotonic())
        return self._probability(window, self._multipliers[rank(priority)])

    def _counts(self, window: TimeWindow, now: float) -> dict[str, Any]:
        window.expire(now)
        return {
            "requests": window.total,
            "accepts": window.total - window.failures,
            "rejection_rate": self._probability(window, self._k),
        }

    def _probability(self, window: TimeWindow, k: float) -> float:
        requests = window.total
        if requests < self._min_requests:
            return 0.0
        share = (requests - k * (requests - window.failures)) / (requests + 1)
        return 0.0 if share <= 0.0 else min(share, self._max_rejection_rate)

    # -- execution -----------------------------------------------------------------------------

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        """Run ``next`` unless the draw refuses it, and count whether it was accepted."""
        key_of = self._key
        if key_of is None:
            key = None
            window = self._window_of
        else:
            key = key_of(context)
            window = self._partitions.get(key)
        now = self._monotonic()
        if window.failures:
            # Only a window holding failures can refuse (with none, requests <= k * accepts):
            # the happy path draws nothing. Expired buckets are dropped before judging.
            window.expire(now)
            if window.failures:
                self._draw(window, key, context, now)
        try:
            result = await next(context)
        except Exception as exc:
            if _is_rejection(exc):
                raise  # a policy inside refused it: the dependency was not asked
            handle = self._handle
            failed = (
                context.classifier.failed_exception(exc)
                if handle is None
                else bool(handle(Outcome(exception=exc)))
            )
            window.record(now, failed, False)
            raise
        handle = self._handle
        if handle is None:
            failed = context.classifier.failed_result(result)
        else:
            failed = bool(handle(Outcome(result=result)))
        window.record(now, failed, False)
        return result

    def _draw(self, window: TimeWindow, key: str | None, context: Context, now: float) -> None:
        """Refuse the call with the window's probability for its priority."""
        priority = context.priority
        probability = self._probability(window, self._multipliers[rank(priority)])
        if probability <= 0.0 or self._random() >= probability:
            return
        window.record(now, True, False)  # a refused request is a request not accepted
        requests, accepts = window.total, window.total - window.failures
        self._events.emit(
            context,
            "throttled",
            key=key,
            timestamp=now,
            probability=probability,
            priority=priority,
            requests=requests,
            accepts=accepts,
        )
        where = "the throttle" if key is None else f"the throttle for {key!r}"
        raise ThrottleRejected(
            f"{where} refused the call locally: the dependency accepted "
            f"{accepts} of {requests} requests in the last {self._window:g} s "
            f"(refusing {probability:.0%} of {priority} calls)",
            rejection_rate=probability,
        )
