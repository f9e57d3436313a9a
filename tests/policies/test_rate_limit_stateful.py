"""Stateful test of RateLimiter: random arrivals, cancellations and clock moves against a model."""

from __future__ import annotations

import asyncio
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

from httpx_resilience import Pipeline, RateLimiter, RateLimitRejected
from httpx_resilience.testing import FakeClock

from ._stateful import LoopDriver, Status, step_failed, task_error

# Every rate, burst, max_wait and clock step is a dyadic fraction with few bits (or, for the
# rate, 3), so the limiter's float arithmetic on token counts and times is exact and the model
# can use exact fractions: no decision of the model sits within a rounding error of a boundary.
RATES = [0.5, 1.0, 2.0, 3.0, 4.0]
BURSTS = [1.0, 1.5, 2.0, 3.0]
MAX_WAITS = [0.0, 0.25, 0.5, 1.0, 2.0]
STEPS = [0.0, 0.125, 0.25, 0.5, 1.0, 2.0]


@dataclass
class _Call:
    task: asyncio.Task[None]
    status: Status
    retry_after: Fraction | None = None  # for a rejection


class RateLimiterMachine(RuleBasedStateMachine):
    """A ``RateLimiter(rate, burst, max_wait)`` on a fake clock, with instant inner calls.

    The model is a token bucket in exact arithmetic: ``tokens`` starts at ``burst`` and grows by
    ``rate`` per second of clock time, capped at ``burst``. A new call takes a token at once if
    there is one and nobody waits. Else its wait is ``(waiters ahead + 1 - tokens) / rate``: over
    ``max_wait`` it is rejected at once with that ``retry_after``, else it joins the queue.
    Whenever tokens are there (after a clock move, or when a waiter leaves), waiters take them
    first come first served. A cancelled waiter leaves the queue without a token.

    Admissions are recorded (call, virtual time) as the inner call sees them and compared with
    the model's; independently of the model, every interval of admission times must respect
    ``burst + rate * length``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.driver = LoopDriver()
        self.clock = FakeClock(autojump=False)
        self.calls: list[_Call] = []
        self.unsettled: set[int] = set()  # calls not yet seen in a final state
        # The model.
        self.now = Fraction(0)
        self.queue: list[int] = []
        self.expected_admissions: list[tuple[int, Fraction]] = []
        # What the inner calls saw.
        self.admissions: list[tuple[int, float]] = []
        self.intervals_checked = 0  # admissions already checked as the end of an interval

    @initialize(
        rate=st.sampled_from(RATES),
        burst=st.sampled_from(BURSTS),
        max_wait=st.sampled_from(MAX_WAITS),
    )
    def build(self, rate: float, burst: float, max_wait: float) -> None:
        self.rate, self.burst, self.max_wait = Fraction(rate), Fraction(burst), Fraction(max_wait)
        self.tokens = self.burst
        self.limiter = RateLimiter(rate=rate, burst=burst, max_wait=max_wait, clock=self.clock)
        self.pipeline = Pipeline([self.limiter])

    # -- the model ------------------------------------------------------------------------------

    def _admit(self, ident: int) -> None:
        assert self.tokens >= 1
        self.tokens -= 1
        self.calls[ident].status = Status.SUCCEEDED
        self.expected_admissions.append((ident, self.now))

    def _serve_waiters(self) -> None:
        while self.queue and self.tokens >= 1:
            event("a waiter admitted")
            self._admit(self.queue.pop(0))

    # -- driving the limiter --------------------------------------------------------------------

    async def _through_limiter(self, ident: int) -> None:
        async def call() -> None:
            self.admissions.append((ident, self.clock.monotonic()))

        await self.pipeline.execute(call)

    def _arrive(self) -> None:
        """Start an acquisition, decided as of the clock's time when it runs."""
        ident = len(self.calls)
        self._arrive_spawned(ident, self.driver.spawn(self._through_limiter(ident)))

    def _arrive_spawned(self, ident: int, task: asyncio.Task[None]) -> None:
        call = _Call(task, Status.QUEUED)
        self.calls.append(call)
        self.unsettled.add(ident)
        if self.tokens >= 1 and not self.queue:
            self._admit(ident)
        else:
            wait = (len(self.queue) + 1 - self.tokens) / self.rate
            if wait > self.max_wait:
                event("rejected")
                call.status, call.retry_after = Status.REJECTED, wait
            else:
                self.queue.append(ident)

    @rule()
    def acquire(self) -> None:
        self._arrive()
        self.driver.settle()

    @rule(count=st.integers(2, 4))
    def acquire_several_at_once(self, count: int) -> None:
        """Several acquisitions arrive before any of them runs (they run in arrival order)."""
        for _ in range(count):
            self._arrive()
        self.driver.settle()

    @precondition(lambda self: self.queue)
    @rule(index=st.integers(0, 5))
    def cancel_waiting_acquisition(self, index: int) -> None:
        ident = self.queue.pop(index % len(self.queue))
        self.calls[ident].task.cancel()
        self.calls[ident].status = Status.CANCELLED
        self._serve_waiters()
        self.driver.settle()

    def _advance(self, dt: float) -> None:
        self.clock.advance(dt)
        self.now += Fraction(dt)
        self.tokens = min(self.burst, self.tokens + self.rate * Fraction(dt))

    @precondition(lambda self: self.calls)  # before any call, time changes nothing
    @rule(dt=st.sampled_from(STEPS))
    def advance_clock(self, dt: float) -> None:
        self._advance(dt)
        self._serve_waiters()
        self.driver.settle()

    @precondition(lambda self: self.queue)
    @rule(dt=st.sampled_from(STEPS))
    def advance_clock_and_cancel_the_first_waiter(self, dt: float) -> None:
        """Cancel the first waiter right after the clock moved, before it wakes up.

        Even if its token was due, it leaves without one, and the next waiter is served.
        """
        self._advance(dt)
        ident = self.queue.pop(0)
        self.calls[ident].task.cancel()
        self.calls[ident].status = Status.CANCELLED
        self._serve_waiters()
        self.driver.settle()

    @precondition(lambda self: self.queue)
    @rule(dt=st.sampled_from(STEPS))
    def acquire_as_the_clock_moves(self, dt: float) -> None:
        """Start an acquisition, then move the clock before it runs.

        The new call runs before the waiters the clock woke up: it finds tokens while others
        wait, and must neither take one ahead of them nor misjudge its wait.
        """
        ident = len(self.calls)
        task = self.driver.spawn(self._through_limiter(ident))
        self._advance(dt)
        self._arrive_spawned(ident, task)
        self._serve_waiters()
        self.driver.settle()

    @rule()
    def observe_available_tokens(self) -> None:
        """Read the bucket and compare it with the model.

        A rule rather than an invariant: reading refills the bucket, which must not matter,
        but a bug that only shows when nobody reads the bucket should be findable too.
        """
        available = self.limiter.available()
        assert 0 <= available <= self.burst
        assert Fraction(available) == self.tokens

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def time_and_tokens_match_the_model(self) -> None:
        assert Fraction(self.clock.monotonic()) == self.now
        assert not self.queue or self.tokens < 1, "the model let a token sit idle"

    @invariant()
    def admissions_match_the_model_in_order_and_time(self) -> None:
        assert [(i, Fraction(t)) for i, t in self.admissions] == self.expected_admissions

    @invariant()
    def no_interval_admits_more_than_the_bucket_allows(self) -> None:
        # Admission times never decrease, so checking each new admission as the end of an
        # interval (with every earlier admission time as its start) covers every interval.
        times = [t for _, t in self.admissions]
        assert times == sorted(times)
        rate, burst = float(self.rate), float(self.burst)
        for end in range(self.intervals_checked, len(times)):
            for start in range(end + 1):
                if start and times[start - 1] == times[start]:
                    continue  # counted with the first admission at the same time
                count = end - start + 1
                assert count <= burst + rate * (times[end] - times[start]) + 1e-9, (
                    f"{count} admissions in [{times[start]}, {times[end]}]"
                )
        self.intervals_checked = len(times)

    @invariant()
    def every_call_is_where_the_model_says(self) -> None:
        for ident in sorted(self.unsettled):
            call = self.calls[ident]
            if call.status.final:
                self.unsettled.discard(ident)  # checked once over, it stays so
            task = call.task
            where = f"call {ident} should be {call.status.value}"
            if call.status is Status.QUEUED:
                assert not task.done(), where
            elif call.status is Status.CANCELLED:
                assert task.cancelled(), where
            elif call.status is Status.SUCCEEDED:
                assert task_error(task, where) is None, where
            else:
                error = task_error(task, where)
                assert isinstance(error, RateLimitRejected), f"{where}, got {error!r}"
                assert call.retry_after is not None
                assert abs(error.retry_after - float(call.retry_after)) <= 1e-9, where
        assert self.clock.sleepers == min(len(self.queue), 1)

    def teardown(self) -> None:
        try:
            if hasattr(self, "limiter") and not step_failed():
                for ident in self.queue:
                    self.calls[ident].task.cancel()
                self.queue.clear()
                self.driver.settle()
                assert self.clock.sleepers == 0
                self.clock.advance(float(self.burst / self.rate))
                assert abs(self.limiter.available() - float(self.burst)) <= 1e-9, "tokens leaked"
        finally:
            self.driver.close()


TestRateLimiterStateful = RateLimiterMachine.TestCase
TestRateLimiterStateful.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)
