"""Helpers for testing code that uses httpx-resilience.

:class:`FakeClock` replaces the system clock in any policy (``clock=``) or builder
(``Pipeline.builder(clock=...)``): time only moves when something sleeps on it or a timer waits
on it (a timeout, a bounded wait), and then jumps straight to the next wake-up, so a test of a
30-second retry schedule runs in microseconds and every time it reads is exact.

:class:`LoopbackServer` is a real HTTP/1.1 server on 127.0.0.1 whose answers you script with
:class:`Reply`: late answers, trickled bodies, connection resets in the middle of a body, servers
that never answer, bodies that never end. What a mocked transport cannot do, for testing your
client's configuration against the failures it is meant to survive.

:class:`FaultInjectionTransport` wraps any transport and makes a share of requests slow, fail
or answer with an error status, and can take the dependency down for a while: chaos for your own
test suite, repeatable with a ``seed``. With the pytest plugin installed alongside the package,
the ``fake_clock`` fixture gives each test a fresh :class:`FakeClock`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel
import httpx

from ._blocked import all_blocked
from ._clock import SYSTEM_CLOCK, Clock, Timer, spawn
from ._loopback import LoopbackServer, ReceivedRequest, Reply, quiet
from ._validate import NON_NEGATIVE, POSITIVE, RATIO

__all__ = [
    "Error",
    "FakeClock",
    "FaultInjectionTransport",
    "Latency",
    "LoopbackServer",
    "Outage",
    "ReceivedRequest",
    "Reply",
    "Status",
]

# Real seconds between two looks at loopback I/O in flight: the clock waits for it to land.
_IO_POLL = 0.001


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _current_loop() -> object:
    """The running asyncio loop, trio's run, or None outside both (a test stepping a loop by
    hand calls advance() while it is stopped)."""
    loop = _asyncio_loop()
    if loop is not None:
        return loop
    try:
        import trio

        return trio.lowlevel.current_trio_token()
    except (ImportError, RuntimeError):
        return None


class _FakeTimer:
    """A callback in a FakeClock's heap, ordered by time, then by arrival."""

    __slots__ = ("callback", "clock", "counted", "key", "loop")

    def __init__(
        self,
        clock: FakeClock | None,
        key: tuple[float, int],
        callback: Callable[[], object],
        counted: bool,
    ) -> None:
        self.clock = clock  # None once run or cancelled
        self.key = key
        self.callback = callback
        self.counted = counted  # a timer from call_at (not a sleeper's wake-up)
        # The asyncio loop it was set on: advance() may run while that loop is stopped (a test
        # stepping the loop by hand), and then the callback waits for the loop to run.
        self.loop = _asyncio_loop() if counted else None

    def __lt__(self, other: _FakeTimer) -> bool:
        return self.key < other.key

    def cancel(self) -> None:
        """Do not run the callback (nothing happens if it already ran)."""
        clock = self.clock
        if clock is not None:
            self.clock = None
            clock._timers.remove(self)
            heapq.heapify(clock._timers)


class FakeClock:
    """A clock that runs on virtual time.

    Args:
        start: The initial :meth:`monotonic` reading.
        autojump: When true (the default), once every task is blocked and no request to a
            :class:`LoopbackServer` is in flight, time moves straight to the earliest wake-up
            of a task that sleeps or a timer that waits (such as a
            :class:`~httpx_resilience.Timeout`'s). When false, time only moves when the test
            calls :meth:`advance`.

    Works on asyncio and trio.
    """

    def __init__(self, start: float = 0.0, *, autojump: bool = True) -> None:
        self._now = float(start)
        self._timers: list[_FakeTimer] = []
        self._order = itertools.count()
        self._jumps = 0
        self._driving: object = None  # the event loop the task moving time runs on
        self.autojump = autojump
        self._cpu_share = 0.0
        self._cpu_base = 0.0  # process_time() when cpu_share was last set
        self._cpu_from = self._now  # and the virtual time it was set at

    def monotonic(self) -> float:
        """The current virtual time."""
        return self._now

    def process_time(self) -> float:
        """CPU seconds the process has used, as this clock tells it: ``cpu_share`` of the
        virtual time that passed (none unless a test sets it). The adaptive limiter reads it to
        tell a busy process from an overloaded dependency."""
        return self._cpu_base + self._cpu_share * (self._now - self._cpu_from)

    @property
    def cpu_share(self) -> float:
        """The share of a CPU the process uses from now on, as :meth:`process_time` tells it:
        0 (the default) for an idle process, 1 for one whose event loop never rests."""
        return self._cpu_share

    @cpu_share.setter
    def cpu_share(self, share: float) -> None:
        if not share >= 0:  # NaN too
            raise ValueError(f"FakeClock.cpu_share must be >= 0, got {share!r}")
        self._cpu_base = self.process_time()
        self._cpu_from = self._now
        self._cpu_share = share

    @property
    def sleepers(self) -> int:
        """How many tasks are sleeping on this clock, and timers waiting on it (a timeout in
        progress, a bounded wait for a bulkhead's slot or a rate limiter's turn)."""
        return len(self._timers)

    async def sleep(self, seconds: float) -> None:
        """Suspend until virtual time has advanced by ``seconds``."""
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        woken = anyio.Event()
        entry = self._push(self._now + seconds, woken.set, counted=False)
        try:
            self._drive_soon()
            await woken.wait()
        finally:
            if not woken.is_set():
                entry.cancel()

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback()`` when virtual time reaches ``when`` (at once if it has).

        This is the timer the library's timeouts and waits run on, as they run on the event
        loop's with the system clock.
        """
        if when <= self._now:
            callback()
            return _FakeTimer(None, (when, -1), callback, counted=False)
        timer = self._push(when, callback, counted=True)
        self._drive_soon()
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper due by then, in order.

        The woken tasks run after this returns, so they read the time at the end of the
        advance; use several smaller advances to observe intermediate times.
        """
        if seconds < 0:
            raise ValueError(f"FakeClock.advance: seconds must be >= 0, got {seconds!r}")
        target = self._now + seconds
        while self._timers and self._timers[0].key[0] <= target:
            self._wake_next()
        self._now = target

    def _push(self, when: float, callback: Callable[[], object], counted: bool) -> _FakeTimer:
        timer = _FakeTimer(self, (when, next(self._order)), callback, counted)
        heapq.heappush(self._timers, timer)
        return timer

    async def _settle(self) -> None:
        """Wait until every task is blocked and no loopback I/O is in flight; if nothing moved
        time meanwhile, move it to the next wake-up."""
        jumps = self._jumps
        while True:
            await all_blocked()
            if self._jumps != jumps:
                return
            mark = quiet()
            if mark is None:
                await anyio.sleep(_IO_POLL)  # real time: the I/O lands on its own
                continue
            if not mark:
                break
            # A server went quiet: what it wrote last must reach our tasks before time moves.
            await all_blocked()
            if self._jumps != jumps:
                return
            if quiet() == mark:
                break
        if self._timers:
            self._wake_next()

    def _drive_soon(self) -> None:
        """With autojump, make sure a task of this event loop moves time for what waits."""
        if self.autojump and self._driving is not (loop := _current_loop()) and loop is not None:
            self._driving = loop
            spawn(self._drive)

    async def _drive(self) -> None:
        # One task per clock and loop moves time, for the sleepers and the timers alike: the
        # waiters themselves just wait, so only one task looks for the moment all are blocked.
        try:
            while self._timers and self.autojump:
                await self._settle()
        finally:
            if self._driving is _current_loop():
                self._driving = None

    def _wake_next(self) -> None:
        when = self._timers[0].key[0]
        self._now = max(self._now, when)
        while self._timers and self._timers[0].key[0] <= when:
            timer = heapq.heappop(self._timers)
            timer.clock = None
            if timer.loop is not None and timer.loop is not _asyncio_loop():
                timer.loop.call_soon(timer.callback)
            else:
                timer.callback()
        self._jumps += 1

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, sleepers={len(self._timers)})"


# -- fault injection -------------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """Delay a share of requests by ``seconds`` (on the transport's clock) before sending them.

    Attributes:
        seconds: How long.
        rate: The share of requests delayed, from 0 to 1.
    """

    seconds: float
    rate: float = 1.0

    def __post_init__(self) -> None:
        NON_NEGATIVE("Latency", "seconds", self.seconds)
        RATIO("Latency", "rate", self.rate)


@dataclass(frozen=True)
class Error:
    """Fail a share of requests with an exception instead of sending them.

    Attributes:
        exception: An exception class (httpx's get the request and a message), or a function of
            the request returning the exception to raise.
        rate: The share of requests failed, from 0 to 1.
    """

    exception: type[Exception] | Callable[[httpx.Request], Exception] = httpx.ConnectError
    rate: float = 1.0

    def __post_init__(self) -> None:
        if not callable(self.exception):
            raise ValueError(
                f"Error: exception must be an exception class or a function, got {self.exception!r}"
            )
        RATIO("Error", "rate", self.rate)

    def make(self, request: httpx.Request) -> Exception:
        """The exception for ``request``."""
        made = self.exception
        message = "fault injected by FaultInjectionTransport"
        if isinstance(made, type) and issubclass(made, httpx.RequestError):
            return made(message, request=request)
        if isinstance(made, type):
            plain: Exception = made(message)
            return plain
        exception: Exception = made(request)
        return exception


@dataclass(frozen=True)
class Status:
    """Answer a share of requests with ``code`` instead of sending them.

    Attributes:
        code: The status code (503, 429...).
        rate: The share of requests answered so, from 0 to 1.
        headers: Headers of the answer (``{"Retry-After": "2"}``).
    """

    code: int
    rate: float = 1.0
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.code, int) or not 100 <= self.code <= 599:
            raise ValueError(f"Status: code must be an HTTP status code, got {self.code!r}")
        RATIO("Status", "rate", self.rate)


@dataclass(frozen=True)
class Outage:
    """Take the dependency down from ``start`` for ``duration`` seconds, counted on the
    transport's clock from its creation: every request fails meanwhile.

    Attributes:
        start: Seconds after the transport was made.
        duration: How long it lasts.
        status: Answer with this status code instead of failing to connect.
    """

    start: float
    duration: float
    status: int | None = None

    def __post_init__(self) -> None:
        NON_NEGATIVE("Outage", "start", self.start)
        POSITIVE("Outage", "duration", self.duration)

    def covers(self, elapsed: float) -> bool:
        """Whether the dependency is down ``elapsed`` seconds after the transport was made."""
        return self.start <= elapsed < self.start + self.duration


Fault = Latency | Error | Status | Outage


class FaultInjectionTransport(httpx.AsyncBaseTransport):
    """Make a dependency misbehave on purpose, repeatably.

    Each request meets the faults in order: an :class:`Outage` in progress fails it; a
    :class:`Latency` may delay it; an :class:`Error` or a :class:`Status` may answer in its place.
    Whatever no fault answered goes to ``inner``.

    Args:
        inner: The transport that really sends (default: a new
            :class:`httpx.AsyncHTTPTransport`); a :class:`httpx.MockTransport` for tests that
            need no server.
        faults: The faults, in the order requests meet them.
        seed: Seed of the random draws, so that a run can be repeated exactly: the faults', and
            the retry jitter of a pipeline given :attr:`rng` (``.retry(rng=chaos.rng)``).
        clock: The clock of latencies and outages (a :class:`FakeClock` in tests).

    Attributes:
        rng: A :class:`random.Random` seeded from ``seed`` for the pipeline under test
            (``Retry(rng=...)``), so that its jitter repeats with the faults. It is a stream of
            its own: how many waits the pipeline draws changes none of the faults.
        injected: What happened to each request so far, in order: ``"outage"``, ``"latency"``,
            ``"error"``, ``"status"``, ``"passed"`` (a delayed request counts as latency and
            then as what else happened to it).
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        faults: Sequence[Fault] = (),
        seed: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        for fault in faults:
            if not isinstance(fault, (Latency, Error, Status, Outage)):
                raise ValueError(
                    "FaultInjectionTransport: faults must be Latency, Error, Status or Outage, "
                    f"got {fault!r}"
                )
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()
        self._faults = tuple(faults)
        self._random = random.Random(seed)
        self.rng = random.Random(None if seed is None else f"{seed}:jitter")
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._started = self._clock.monotonic()
        self.injected: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Misbehave as the faults say, or send ``request`` on."""
        elapsed = self._clock.monotonic() - self._started
        for fault in self._faults:
            if isinstance(fault, Outage):
                if fault.covers(elapsed):
                    self.injected.append("outage")
                    if fault.status is not None:
                        return httpx.Response(fault.status, request=request)
                    raise httpx.ConnectError(
                        "outage injected by FaultInjectionTransport", request=request
                    )
                continue
            if self._random.random() >= fault.rate:
                continue
            if isinstance(fault, Latency):
                self.injected.append("latency")
                await self._clock.sleep(fault.seconds)
            elif isinstance(fault, Error):
                self.injected.append("error")
                raise fault.make(request)
            else:
                self.injected.append("status")
                return httpx.Response(fault.code, headers=dict(fault.headers), request=request)
        self.injected.append("passed")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()
