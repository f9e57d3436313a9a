"""Stateful test of CircuitBreaker: random calls, outcomes and clock moves against a model."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from fractions import Fraction

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from httpx_resilience import BrokenCircuitError, CircuitBreaker, CircuitState, Pipeline
from httpx_resilience.testing import FakeClock

from ._stateful import HeldCall, LoopDriver, Status, step_failed, task_error

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN

# Sampling durations, breaks and clock steps are dyadic fractions with few bits, so the
# breaker's float arithmetic on times (bucket ends, break ends) is exact and so is the model.
STEPS = [0.0, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0]


class _CountWindow:
    """The last ``size`` recorded outcomes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.outcomes: list[bool] = []  # failed?

    def reset(self) -> None:
        self.outcomes.clear()

    def record(self, now: float, failed: bool) -> None:
        self.outcomes = [*self.outcomes, failed][-self.size :]

    def counts(self) -> tuple[int, int]:
        return sum(self.outcomes), len(self.outcomes)


class _TimeWindow:
    """Ten buckets of ``duration / 10`` seconds, anchored at the first outcome recorded.

    Bucket ``k`` covers ``[anchor + k * length, anchor + (k + 1) * length)``; recording in
    bucket ``k`` drops the outcomes of buckets ``k - 10`` and older. When a whole window has
    passed since the end of the last bucket used (ten buckets or more), the anchor moves to the
    time of the new outcome.
    """

    def __init__(self, duration: float) -> None:
        self.length = Fraction(duration) / 10
        self.anchor: Fraction | None = None
        self.current = 0
        self.outcomes: list[tuple[int, bool]] = []  # (bucket, failed?)

    def reset(self) -> None:
        self.anchor = None
        self.outcomes.clear()

    def record(self, now: float, failed: bool) -> None:
        t = Fraction(now)
        if self.anchor is not None:
            bucket = math.floor((t - self.anchor) / self.length)
            if bucket >= self.current + 10:
                event("the time window re-anchored")
                self.anchor = None
            else:
                if any(b <= bucket - 10 for b, _ in self.outcomes):
                    event("outcomes left the time window")
                self.current = bucket
                self.outcomes = [(b, f) for b, f in self.outcomes if b > bucket - 10]
        if self.anchor is None:
            self.anchor, self.current, self.outcomes = t, 0, []
        self.outcomes.append((self.current, failed))

    def counts(self) -> tuple[int, int]:
        return sum(f for _, f in self.outcomes), len(self.outcomes)


@dataclass
class _Call:
    held: HeldCall
    task: asyncio.Task[int]
    status: Status
    generation: int = 0  # the model's generation when it was admitted
    probe: bool = False
    retry_after: float | None = None  # for a rejection


class CircuitBreakerMachine(RuleBasedStateMachine):
    """A ``CircuitBreaker`` (count or time window) on a fake clock, with held calls.

    The model follows the breaker's definition. Closed: calls go through; each outcome of a
    call admitted in the current state is recorded in the window (the last ``window_size``
    outcomes, or the time window's buckets), and it opens when the window holds at least
    ``minimum_throughput`` outcomes with failures / total >= ``failure_ratio``. Open: calls are
    rejected with ``retry_after`` = time left of the break; once the break is over the next call
    turns it half-open. Half-open: up to ``half_open_max_calls`` probes at a time (more are
    rejected with ``retry_after`` 0); the first probe outcome closes it (fresh window, break
    back to ``break_duration``) or opens it again (for twice the last break, up to
    ``break_duration_max``, when that is set). Every state change starts a new generation:
    outcomes of calls admitted in an older one do not count. Cancellations never count; a
    cancelled probe frees its slot.
    """

    def __init__(self) -> None:
        super().__init__()
        self.driver = LoopDriver()
        self.clock = FakeClock(autojump=False)
        self.now = 0.0
        self.calls: list[_Call] = []
        self.unsettled: set[int] = set()  # calls not yet seen in a final state
        self.running: list[int] = []
        # The breaker's state as the model sees it.
        self.state = CLOSED
        self.generation = 0
        self.opened_until = 0.0
        self.break_in_force = 0.0  # 0: no opening since the last close
        self.probes = 0

    @initialize(
        window=st.sampled_from(["count", "time"]),
        failure_ratio=st.sampled_from([0.1, 0.25, 1 / 3, 0.5, 2 / 3, 1.0]),
        minimum_throughput=st.integers(1, 4),
        extra_window_size=st.integers(0, 3),
        sampling_duration=st.sampled_from([2.5, 5.0]),
        break_duration=st.sampled_from([0.5, 1.0, 1.5]),
        break_growth=st.sampled_from([None, 1.0, 2.0, 4.0]),
        half_open_max_calls=st.integers(1, 3),
    )
    def build(
        self,
        window: str,
        failure_ratio: float,
        minimum_throughput: int,
        extra_window_size: int,
        sampling_duration: float,
        break_duration: float,
        break_growth: float | None,
        half_open_max_calls: int,
    ) -> None:
        self._build(
            window=window,
            failure_ratio=failure_ratio,
            minimum_throughput=minimum_throughput,
            window_size=minimum_throughput + extra_window_size,
            sampling_duration=sampling_duration,
            break_duration=break_duration,
            break_duration_max=None if break_growth is None else break_duration * break_growth,
            half_open_max_calls=half_open_max_calls,
        )

    def _build(
        self,
        *,
        window: str,
        failure_ratio: float,
        minimum_throughput: int,
        window_size: int,
        sampling_duration: float,
        break_duration: float,
        break_duration_max: float | None,
        half_open_max_calls: int,
    ) -> None:
        self.failure_ratio = failure_ratio
        self.minimum_throughput = minimum_throughput
        self.break_duration = break_duration
        self.break_duration_max = break_duration_max
        self.half_open_max_calls = half_open_max_calls
        self.window: _CountWindow | _TimeWindow = (
            _CountWindow(window_size) if window == "count" else _TimeWindow(sampling_duration)
        )
        self.breaker = CircuitBreaker(
            failure_ratio=failure_ratio,
            minimum_throughput=minimum_throughput,
            window=window,
            window_size=window_size,
            sampling_duration=sampling_duration,
            break_duration=break_duration,
            break_duration_max=break_duration_max,
            half_open_max_calls=half_open_max_calls,
            clock=self.clock,
        )
        self.pipeline = Pipeline([self.breaker])

    # -- the model ------------------------------------------------------------------------------

    def _move(self, state: CircuitState) -> None:
        self.state = state
        self.probes = 0
        self.generation += 1

    def _open(self, *, grow: bool) -> None:
        if grow and self.break_duration_max is not None and self.break_in_force:
            duration = min(self.break_in_force * 2, self.break_duration_max)
            event("the break grew")
        else:
            duration = self.break_duration
        self.break_in_force = duration
        self.opened_until = self.now + duration
        self._move(OPEN)

    def _close(self) -> None:
        self.window.reset()
        self.break_in_force = 0.0
        self._move(CLOSED)

    def _observed_state(self) -> CircuitState:
        if self.state is OPEN and self.now >= self.opened_until:
            return HALF_OPEN
        return self.state

    def _outcome(self, call: _Call, failed: bool) -> None:
        if call.generation != self.generation:
            event("outcome of a past state")
            return  # admitted under a state that has passed
        if call.probe:
            event(f"probe {'failed' if failed else 'succeeded'}")
            self.probes -= 1
            if failed:
                self._open(grow=True)
            else:
                self._close()
            return
        self.window.record(self.now, failed)
        failures, total = self.window.counts()
        if total >= self.minimum_throughput and failures / total >= self.failure_ratio:
            event("opened by the window")
            self._open(grow=False)

    def _cancelled(self, call: _Call) -> None:
        if call.probe and call.generation == self.generation:
            self.probes -= 1

    # -- driving the breaker --------------------------------------------------------------------

    def _start(self) -> _Call:
        ident = len(self.calls)
        held = HeldCall(self.driver.loop, ident)
        call = _Call(held, self.driver.spawn(self.pipeline.execute(held)), Status.RUNNING)
        self.calls.append(call)
        self.unsettled.add(ident)
        if self.state is OPEN:
            if self.now < self.opened_until:
                call.status, call.retry_after = Status.REJECTED, self.opened_until - self.now
                return call
            self._move(HALF_OPEN)
        if self.state is HALF_OPEN:
            if self.probes >= self.half_open_max_calls:
                event("rejected: probes in flight")
                call.status, call.retry_after = Status.REJECTED, 0.0
                return call
            self.probes += 1
            call.probe = True
        call.generation = self.generation
        self.running.append(ident)
        return call

    @rule()
    def start_call(self) -> None:
        self._start()
        self.driver.settle()

    @rule(ok=st.booleans())
    def quick_call(self, ok: bool) -> None:
        """A call that answers at once (if it gets through)."""
        call = self._start()
        if call.status is Status.RUNNING:
            self._finish(len(self.calls) - 1, ok)
        self.driver.settle()

    @precondition(lambda self: self.running)
    @rule(index=st.integers(0, 5), ok=st.booleans())
    def finish_call(self, index: int, ok: bool) -> None:
        self._finish(self.running[index % len(self.running)], ok)
        self.driver.settle()

    def _finish(self, ident: int, ok: bool) -> None:
        self.running.remove(ident)
        call = self.calls[ident]
        call.held.resolve(ok)
        call.status = Status.SUCCEEDED if ok else Status.FAILED
        self._outcome(call, failed=not ok)

    @precondition(lambda self: self.running)
    @rule(index=st.integers(0, 5))
    def cancel_call(self, index: int) -> None:
        ident = self.running.pop(index % len(self.running))
        call = self.calls[ident]
        call.task.cancel()
        call.status = Status.CANCELLED
        self._cancelled(call)
        self.driver.settle()

    @precondition(lambda self: len(self.running) > 1)
    @rule()
    def cancel_every_call(self) -> None:
        self._cancel_all()

    def _cancel_all(self) -> None:
        for ident in self.running:
            call = self.calls[ident]
            call.task.cancel()
            call.status = Status.CANCELLED
            self._cancelled(call)
        self.running.clear()
        self.driver.settle()

    @precondition(lambda self: self.calls)  # before any call, time changes nothing
    @rule(dt=st.sampled_from(STEPS))
    def advance_clock(self, dt: float) -> None:
        self._advance(dt)

    def _advance(self, dt: float) -> None:
        self.clock.advance(dt)
        self.now += dt
        self.driver.settle()

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def state_matches_the_model(self) -> None:
        assert self.clock.monotonic() == self.now
        assert self.breaker.state is self._observed_state()

    @invariant()
    def probes_in_flight_within_the_limit(self) -> None:
        probes = [
            i
            for i in self.running
            if self.calls[i].probe and self.calls[i].generation == self.generation
        ]
        assert len(probes) == self.probes <= self.half_open_max_calls
        assert not probes or self.state is HALF_OPEN

    @invariant()
    def every_call_is_where_the_model_says(self) -> None:
        for ident in sorted(self.unsettled):
            call = self.calls[ident]
            if call.status.final:
                self.unsettled.discard(ident)  # checked once over, it stays so
            task, held = call.task, call.held
            where = f"call {ident} should be {call.status.value}"
            if call.status is Status.RUNNING:
                assert held.started, where
                assert not held.ended, where
                assert not task.done(), where
            elif call.status is Status.CANCELLED:
                assert held.started, where
                assert task.cancelled(), where
            elif call.status is Status.SUCCEEDED:
                assert task_error(task, where) is None, where
                assert task.result() == ident, where
            elif call.status is Status.FAILED:
                assert isinstance(task_error(task, where), ConnectionError), where
            else:
                error = task_error(task, where)
                assert isinstance(error, BrokenCircuitError), f"{where}, got {error!r}"
                assert not held.started, "a rejected call reached the dependency"
                assert error.retry_after == call.retry_after, where

    def teardown(self) -> None:
        try:
            if hasattr(self, "breaker") and not step_failed():
                # With every held call over, a half-open breaker admits a probe: no slot leaked.
                self._cancel_all()
                if self._observed_state() is OPEN:
                    self.clock.advance(self.opened_until - self.now)
                    self.now = self.opened_until
                assert self.breaker.state is self._observed_state()
                probe = self._start()
                assert probe.status is Status.RUNNING
                self.driver.settle()
                assert probe.held.started, "no call admitted: a probe slot leaked"
        finally:
            self.driver.close()


class TimeWindowMachine(CircuitBreakerMachine):
    """The same model, focused on the time window: which outcomes it still holds.

    A window of 2.5 s (ten buckets of 0.25 s) and clock steps from an eighth of a bucket to a
    whole window, so that outcomes leave the window bucket by bucket, at bucket boundaries and
    between them, and the window re-anchors after idle spells; thresholds high enough that it
    stays closed for a while.
    """

    @initialize(
        failure_ratio=st.sampled_from([0.5, 2 / 3, 1.0]),
        minimum_throughput=st.integers(2, 6),
        break_duration=st.sampled_from([0.5, 1.0]),
        half_open_max_calls=st.integers(1, 2),
    )
    def build(
        self,
        failure_ratio: float,
        minimum_throughput: int,
        break_duration: float,
        half_open_max_calls: int,
    ) -> None:
        self._build(
            window="time",
            failure_ratio=failure_ratio,
            minimum_throughput=minimum_throughput,
            window_size=100,
            sampling_duration=2.5,
            break_duration=break_duration,
            break_duration_max=None,
            half_open_max_calls=half_open_max_calls,
        )

    @precondition(lambda self: self.calls)
    @rule(dt=st.sampled_from([0.03125, 0.125, 0.375, 1.0, 2.25, 2.375, 2.5, 2.625]))
    def advance_clock(self, dt: float) -> None:
        self._advance(dt)


TestCircuitBreakerStateful = CircuitBreakerMachine.TestCase
TestCircuitBreakerStateful.settings = settings(
    max_examples=200, stateful_step_count=60, deadline=None
)

TestTimeWindowStateful = TimeWindowMachine.TestCase
TestTimeWindowStateful.settings = settings(max_examples=200, stateful_step_count=100, deadline=None)
