"""CircuitBreaker: stop calling a dependency that keeps failing, and probe it now and then.

Closed, the breaker lets calls through and counts their outcomes in a sliding window. When the
share of failures (or of slow calls) in the window reaches its threshold, with enough calls in
the window to judge, it opens: calls are rejected at once with
:class:`~httpx_resilience.BrokenCircuitError`, without touching the dependency. After
``break_duration`` it is half-open: up to ``half_open_max_calls`` probe calls go through at a
time (the rest are still rejected); the first probe to succeed closes it with a fresh window,
the first to fail opens it again, for a break that grows exponentially up to
``break_duration_max`` when that is set. With ``max_wait``, a call the circuit would refuse
waits (that long at most, never past its deadline) for the verdict of a probe due within that
time instead: let through if the probe closes the circuit, refused if it opens it again. So
the calls that come in between the dependency's return and the next probe are not lost, at the
cost of failing later during the outage itself.

The default window is time-based: ``sampling_duration`` split into ten buckets kept in a ring,
so recording a call is O(1) and allocates nothing. ``window="count"`` counts the last
``window_size`` calls instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from .._clock import SYSTEM_CLOCK, Clock, wait_for_event
from .._validate import NON_NEGATIVE, POSITIVE, RATIO, Rule, choice, integer
from ..context import Context
from ..errors import BrokenCircuitError, IsolatedCircuitError
from ..outcome import Outcome, _is_rejection
from ..telemetry import PolicyEvents
from ._options import Options, Problem, option
from ._partitions import DEFAULT_MAX_PARTITIONS, Partitions, described_options
from ._windows import MAX_WINDOW_SIZE, Circuit, CircuitState, CountWindow, TimeWindow

__all__ = ["CircuitBreaker", "CircuitBreakerPolicyOptions", "CircuitState"]

T = TypeVar("T")


_CLOSED, _OPEN, _HALF_OPEN, _ISOLATED = (
    CircuitState.CLOSED,
    CircuitState.OPEN,
    CircuitState.HALF_OPEN,
    CircuitState.ISOLATED,
)


_WINDOW = choice("time", "count")
_SHARE = Rule("a number > 0 and <= 1", lambda v: RATIO.accepts(v) and v > 0, float)
# How the constructor words a refused share: out of [0, 1] first, then 0.
_SHARE_SAID = (RATIO, Rule("greater than 0", lambda v: v > 0))


@dataclass(frozen=True)
class CircuitBreakerPolicyOptions(Options):
    """The plain-data options of a :class:`CircuitBreaker` (see it for each), validated when
    built; a profile's :class:`~httpx_resilience.profiles.CircuitBreakerOptions` adds how it is
    partitioned."""

    failure_ratio: float = option(_SHARE, 0.1, says=_SHARE_SAID)
    minimum_throughput: int = option(integer(1), 100)
    sampling_duration: float = option(POSITIVE, 30.0)
    window: str = option(
        choice("time", "count"),
        "time",
        says=[Rule("'time' or 'count'", choice("time", "count").accepts)],
    )
    window_size: int = option(integer(1, MAX_WINDOW_SIZE), 100)
    break_duration: float = option(POSITIVE, 5.0)
    break_duration_max: float | None = option(POSITIVE, None, optional=True)
    half_open_max_calls: int = option(integer(1), 1)
    max_wait: float = option(NON_NEGATIVE, 0.0)
    slow_call_duration: float | None = option(POSITIVE, None, optional=True)
    slow_call_ratio: float | None = option(_SHARE, None, optional=True, says=_SHARE_SAID)

    def _cross_checks(self) -> list[Problem]:
        problems = []
        if self.break_duration_max is not None and self.break_duration_max < self.break_duration:
            problems.append(
                Problem(
                    "break_duration_max",
                    f"expected a number >= break_duration ({self.break_duration!r}), "
                    f"got {self.break_duration_max!r}",
                    f"must be >= break_duration ({self.break_duration!r}), "
                    f"got {self.break_duration_max!r}",
                )
            )
        if self.slow_call_ratio is not None and self.slow_call_duration is None:
            problems.append(Problem("slow_call_ratio", "needs slow_call_duration to be set"))
        if self.window == "count" and self.minimum_throughput > self.window_size:
            problems.append(
                Problem(
                    "minimum_throughput",
                    f"expected at most window_size ({self.window_size}), "
                    f"got {self.minimum_throughput}",
                    f"({self.minimum_throughput}) can never be reached in a count window of "
                    f"window_size {self.window_size}",
                )
            )
        return problems


def _not_closed(circuit: Circuit) -> bool:
    return circuit.state is not _CLOSED


class CircuitBreaker:
    """Reject calls at once while a dependency keeps failing.

    Args:
        failure_ratio: Share of failed calls in the window (0 < ratio <= 1) that opens it.
        minimum_throughput: Calls the window must hold before the ratio is judged.
        sampling_duration: Length of the time window, in seconds.
        window: ``"time"`` (the last ``sampling_duration`` seconds) or ``"count"`` (the last
            ``window_size`` calls).
        window_size: Calls in a count window.
        break_duration: Seconds it stays open before letting probes through.
        break_duration_max: If set, each failed probe doubles the break, up to this.
        half_open_max_calls: Probe calls allowed at the same time when half-open.
        max_wait: Seconds a call the circuit would refuse may wait, never past the context's
            deadline, for the verdict of a probe that will be let through within that time: it
            goes through if the probe closes the circuit, and is refused if the probe fails (or
            the wait runs out first). 0 (the default): refuse at once.
        slow_call_duration: If set, calls taking at least this long count as slow.
        slow_call_ratio: Share of slow calls in the window that opens it (with
            ``slow_call_duration``; default 1.0, i.e. all of them).
        handle: Which outcomes are failures. Default: what the place's classifier calls
            unhealthy (any exception; over HTTP, transport errors, attempt timeouts and
            408/5xx-transient statuses, but not 429, which is backpressure, and never other
            4xx; ``handle=transient`` counts 429s too). Cancellation never counts.
        key: A function of the :class:`~httpx_resilience.Context` naming the partition, for one
            breaker per host, tenant...; ``None`` for one breaker in all.
        max_partitions: Partitions kept at most. When there are more, the least recently used
            closed circuit is dropped; open, half-open and isolated ones are kept (unless every
            partition is, when the least recently used is dropped all the same).
        clock: The clock (default: the system clock).
    """

    __slots__ = (
        "_break_duration",
        "_break_duration_max",
        "_circuit",
        "_clock",
        "_events",
        "_failure_ratio",
        "_half_open_max_calls",
        "_handle",
        "_isolated",
        "_key",
        "_max_wait",
        "_minimum_throughput",
        "_monotonic",
        "_options",
        "_partitions",
        "_sampling_duration",
        "_slow_call_duration",
        "_slow_call_ratio",
        "_window",
        "_window_size",
    )

    # Kept from the options (see Options._keep).
    _failure_ratio: float
    _minimum_throughput: int
    _sampling_duration: float
    _window: str
    _window_size: int
    _break_duration: float
    _break_duration_max: float | None
    _half_open_max_calls: int
    _max_wait: float
    _slow_call_duration: float | None
    _slow_call_ratio: float | None

    def __init__(
        self,
        *,
        failure_ratio: float = 0.1,
        minimum_throughput: int = 100,
        sampling_duration: float = 30.0,
        window: str = "time",
        window_size: int = 100,
        break_duration: float = 5.0,
        break_duration_max: float | None = None,
        half_open_max_calls: int = 1,
        max_wait: float = 0.0,
        slow_call_duration: float | None = None,
        slow_call_ratio: float | None = None,
        handle: Callable[[Outcome[Any]], bool] | None = None,
        key: Callable[[Context], str] | None = None,
        max_partitions: int = DEFAULT_MAX_PARTITIONS,
        clock: Clock | None = None,
    ) -> None:
        name = "CircuitBreaker"
        if slow_call_ratio is None and slow_call_duration is not None:
            slow_call_ratio = 1.0  # every slow call, unless told otherwise
        self._options = CircuitBreakerPolicyOptions._of_arguments(name, locals())
        self._options._keep(self)  # self._failure_ratio... (read on every call)
        if handle is not None and not callable(handle):
            raise ValueError(f"{name}: handle must be a predicate over outcomes, got {handle!r}")
        if key is not None and not callable(key):
            raise ValueError(f"{name}: key must be a function of the context, got {key!r}")
        self._handle = handle
        self._key = key
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._events = PolicyEvents("circuit_breaker", self._clock)
        self._monotonic = self._clock.monotonic
        self._isolated = False
        self._circuit = self._new_circuit(None)
        # A circuit that is not closed is kept over idle closed ones: evicting an open circuit
        # would forget its break, and the failing host would be hit again at once.
        self._partitions: Partitions[Circuit] = Partitions(
            name, self._new_circuit, max_partitions, keep=_not_closed
        )

    def _new_circuit(self, key: str | None) -> Circuit:
        window: TimeWindow | CountWindow = (
            TimeWindow(self._sampling_duration)
            if self._window == "time"
            else CountWindow(self._window_size)
        )
        return Circuit(key, window, _ISOLATED if self._isolated else _CLOSED)

    def describe(self) -> dict[str, Any]:
        """The breaker's configuration and the state of its circuits, as plain data."""
        partitioned = self._key is not None
        return {
            "policy": "circuit_breaker",
            "options": described_options(self._options, self._key, self._partitions, self._handle),
            "state": {
                "isolated": self._isolated,
                "partitions": {k: str(v) for k, v in self.partitions().items()}
                if partitioned
                else {"": str(self.state)},
            },
        }

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(failure_ratio={self._failure_ratio:g}, "
            f"minimum_throughput={self._minimum_throughput}, window={self._window!r}, "
            f"break_duration={self._break_duration:g}, partitioned={self._key is not None})"
        )

    # -- inspection and manual control ---------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The state of the circuit (of an unpartitioned breaker; see :meth:`state_of`)."""
        return self._observed_state(self._circuit)

    def state_of(self, key: str) -> CircuitState:
        """The state of partition ``key`` (closed if it has never been used)."""
        circuit = self._partitions.peek(key)
        if circuit is None:
            return _ISOLATED if self._isolated else _CLOSED
        return self._observed_state(circuit)

    def partitions(self) -> Mapping[str, CircuitState]:
        """The state of every partition kept, by key."""
        return {key: self._observed_state(c) for key, c in self._partitions.items()}

    def _observed_state(self, circuit: Circuit) -> CircuitState:
        # An open circuit whose break is over is half-open, even before a call notices.
        if circuit.state is _OPEN and self._monotonic() >= circuit.opened_until:
            return _HALF_OPEN
        return circuit.state

    def isolate(self) -> None:
        """Hold every circuit open, rejecting all calls, until :meth:`reset`."""
        self._isolated = True
        for circuit in self._circuits():
            self._move(circuit, _ISOLATED)

    def reset(self) -> None:
        """Close every circuit with a fresh window, ending any isolation and break growth."""
        self._isolated = False
        for circuit in self._circuits():
            self._close(circuit)

    def _circuits(self) -> list[Circuit]:
        return [self._circuit, *(c for _, c in self._partitions.items())]

    # -- execution -----------------------------------------------------------------------------

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        """Run ``next`` if the circuit allows it, and count its outcome."""
        circuit = self._circuit if self._key is None else self._partitions.get(self._key(context))
        probing = False
        if circuit.state is not _CLOSED:
            if self._max_wait:
                probing = await self._admit_in_time(circuit, context)
            else:
                probing = self._admit(circuit, context)
        generation = circuit.generation
        slow_after = self._slow_call_duration
        start = self._monotonic() if slow_after is not None else 0.0
        try:
            result = await next(context)
        except Exception as exc:
            if _is_rejection(exc):
                # Another policy inside refused the call: the dependency was not called, so
                # this is neither a success nor a failure (and decides no probe).
                self._release(circuit, generation, probing)
                raise
            try:
                handle = self._handle
                failed = (
                    context.classifier.unhealthy_exception(exc)
                    if handle is None
                    else bool(handle(Outcome(exception=exc)))
                )
            except BaseException:
                self._release(circuit, generation, probing)  # a broken handle= leaks no slot
                raise
            self._record(circuit, generation, probing, failed, start, context)
            raise
        except BaseException:
            # Cancelled (or interrupted): not an outcome of the dependency. Free the probe slot.
            self._release(circuit, generation, probing)
            raise
        handle = self._handle
        try:
            if handle is None:
                failed = context.classifier.unhealthy_result(result)
            else:
                failed = bool(handle(Outcome(result=result)))
        except BaseException:
            self._release(circuit, generation, probing)
            raise
        window = circuit.window
        if failed or probing or slow_after is not None or window.failures:
            self._record(circuit, generation, probing, failed, start, context)
        elif generation == circuit.generation:
            # The common case: a success in a closed circuit with no failures in the window.
            window.record(self._monotonic(), False, False)
        return result

    @staticmethod
    def _release(circuit: Circuit, generation: int, probing: bool) -> None:
        """Give back the probe slot of a call whose outcome does not count."""
        if probing and circuit.generation == generation:
            circuit.probes -= 1

    def _admit(self, circuit: Circuit, context: Context) -> bool:
        """Let a call through a circuit that is not closed (as a probe) or reject it."""
        now = self._monotonic()
        state = circuit.state
        if state is _ISOLATED:
            raise IsolatedCircuitError(self._describe(circuit, "is isolated"))
        if state is _OPEN:
            if now < circuit.opened_until:
                retry_after = circuit.opened_until - now
                raise BrokenCircuitError(
                    self._describe(circuit, f"is open; retry in {retry_after:.3g} s"),
                    retry_after=retry_after,
                )
            self._move(circuit, _HALF_OPEN)
            self._events.emit(context, "circuit_half_opened", key=circuit.key, timestamp=now)
        if circuit.probes >= self._half_open_max_calls:
            raise BrokenCircuitError(
                self._describe(circuit, "is half-open and its probe calls are in flight"),
                retry_after=0.0,
            )
        circuit.probes += 1
        return True

    async def _admit_in_time(self, circuit: Circuit, context: Context) -> bool:
        """:meth:`_admit`, but a call it refuses waits, up to ``max_wait`` and never past the
        deadline, for the next probe's verdict, and abides by it."""
        monotonic = self._monotonic
        until = monotonic() + self._max_wait
        if context.deadline is not None:
            until = min(until, context.deadline)
        reopened = False
        while True:
            if circuit.state is _CLOSED:
                return False  # a probe closed it while this call waited
            try:
                return self._admit(circuit, context)
            except BrokenCircuitError:
                if reopened or circuit.state is _ISOLATED:
                    raise  # a probe failed, or the circuit is held open by hand
                now = monotonic()
                if circuit.state is _OPEN:
                    # Until the break ends, when a waiter becomes the probe; unless no probe
                    # would start in time.
                    wake = circuit.opened_until
                    if wake > until:
                        raise
                else:
                    wake = until  # half-open: until the probe in flight decides
                if now >= until:
                    raise
                if circuit.verdict is None:
                    circuit.verdict = anyio.Event()
                if await wait_for_event(circuit.verdict, wake - now, self._clock):
                    reopened = circuit.state is _OPEN
                elif wake >= until:
                    raise  # the probe in flight did not decide in time

    def _record(
        self,
        circuit: Circuit,
        generation: int,
        probing: bool,
        failed: bool,
        start: float,
        context: Context,
    ) -> None:
        if generation != circuit.generation:
            return  # the circuit changed state while the call ran: its outcome is stale
        now = self._monotonic()
        slow = self._slow_call_duration is not None and now - start >= self._slow_call_duration
        if probing:
            circuit.probes -= 1
            if failed or slow:
                self._open(circuit, now, context, grow=True)
            else:
                self._close(circuit)
                self._events.emit(context, "circuit_closed", key=circuit.key, timestamp=now)
            return
        window = circuit.window
        window.record(now, failed, slow)
        if (
            (failed or slow or window.failures)
            and window.total >= self._minimum_throughput
            and (
                window.failures / window.total >= self._failure_ratio
                or (
                    self._slow_call_ratio is not None
                    and window.slow / window.total >= self._slow_call_ratio
                )
            )
        ):
            self._open(circuit, now, context, grow=False)

    def _open(self, circuit: Circuit, now: float, context: Context, *, grow: bool) -> None:
        if grow and self._break_duration_max is not None and circuit.break_duration:
            duration = min(circuit.break_duration * 2, self._break_duration_max)
        else:
            duration = self._break_duration
        circuit.break_duration = duration
        circuit.opened_until = now + duration
        self._move(circuit, _OPEN)
        window = circuit.window
        self._events.emit(
            context,
            "circuit_opened",
            key=circuit.key,
            timestamp=now,
            duration=duration,
            failures=window.failures,
            slow=window.slow,
            total=window.total,
        )

    def _close(self, circuit: Circuit) -> None:
        circuit.window.reset()
        circuit.break_duration = 0.0  # the next opening starts again from break_duration
        self._move(circuit, _CLOSED)

    def _move(self, circuit: Circuit, state: CircuitState) -> None:
        circuit.state = state
        circuit.probes = 0
        circuit.generation += 1
        verdict = circuit.verdict
        if verdict is not None:
            circuit.verdict = None
            verdict.set()  # the calls waiting for it look again

    def _describe(self, circuit: Circuit, what: str) -> str:
        where = "the circuit" if circuit.key is None else f"the circuit for {circuit.key!r}"
        return f"{where} {what}"
