"""The load: two loopback upstreams, one open-loop schedule of calls driving both clients, and
:func:`run_demo`, which runs it all on a fresh event loop."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TextIO

import anyio

from ..._loopback import LoopbackServer, ReceivedRequest, Reply
from ...context import ExecutionReport
from ...http import _flavour
from ...http._extensions import TIMEOUT
from .display import Display, make_display
from .figures import DemoSummary, Lane, client_gauges
from .options import PLAIN_NAME, RESILIENT_NAME, DemoOptions
from .scenarios import SCENARIOS, Fate
from .takeaway import takeaway

__all__ = ["LoadClock", "run_demo", "schedule"]

_REFRESH_SECONDS = 0.25


class LoadClock:
    """Seconds since the load began, shared by the users and the upstreams' threads."""

    def __init__(self) -> None:
        self.began = time.monotonic()

    def start(self) -> None:
        """Start counting now."""
        self.began = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since :meth:`start`."""
        return time.monotonic() - self.began


def _handler(fate: Fate, clock: LoadClock, lane: Lane) -> Callable[[ReceivedRequest], Reply]:
    def handle(request: ReceivedRequest) -> Reply:
        reply = fate(clock.elapsed())
        if reply.status == 429:
            lane.upstream_429 += 1
        return reply

    return handle


_DEADLINE = "deadline"


async def _call(lane: Lane, url: str, clock: LoadClock, deadline: float | None) -> None:
    began = time.perf_counter()
    try:
        if deadline is None:
            response = await lane.client.get(url)
        else:
            # The caller gives up after its deadline, whatever the client. The extension tells
            # ResilientClient's pipeline too, so that it plans within it (plain httpx ignores it).
            with anyio.fail_after(deadline):
                response = await lane.client.get(url, extensions={TIMEOUT: deadline})
    except TimeoutError:
        lane.record(time.perf_counter() - began, _DEADLINE, None, clock.elapsed())
        return
    except _flavour.HTTP_ERRORS as exc:  # httpx's or httpx2's
        lane.record(time.perf_counter() - began, type(exc).__name__, None, clock.elapsed())
        return
    latency = time.perf_counter() - began
    report = response.extensions.get("resilience")
    failure = None if response.is_success else f"HTTP {response.status_code}"
    lane.record(
        latency,
        failure,
        report if isinstance(report, ExecutionReport) else None,
        clock.elapsed(),
    )


def schedule(options: DemoOptions) -> Iterator[float]:
    """When each call starts (seconds into the load): every user starts a call each
    ``interval``, the users spread evenly over it so the load is even from the start."""
    step = options.interval / options.users
    for index in itertools.count():
        at = index * step
        if options.requests is not None:
            if index >= options.requests:
                return
        elif at >= options.duration:
            return
        yield at


async def _open_loop(lanes: Sequence[Lane], options: DemoOptions, clock: LoadClock) -> float:
    # Open loop, as real traffic is: each call starts on time whether or not the earlier ones
    # have finished, and both clients get the same calls at the same moments, so their counts
    # compare. Only the calls still running are kept (by the task group).
    urls = [f"{lane.upstream.url}/item" for lane in lanes]
    deadline = SCENARIOS[options.scenario].deadline
    late = 0.0
    async with anyio.create_task_group() as calls:
        for at in schedule(options):
            await anyio.sleep(max(0.0, at - clock.elapsed()))
            # A busy machine can keep this loop from starting calls on time: say so at the end.
            late = max(late, clock.elapsed() - at)
            for lane, url in zip(lanes, urls, strict=True):
                lane.started += 1
                calls.start_soon(_call, lane, url, clock, deadline)
    return late


async def _refresh(lanes: Sequence[Lane], display: Display, clock: LoadClock) -> None:
    while True:
        elapsed = clock.elapsed()
        for lane in lanes:
            lane.sample(elapsed)
        display.update(elapsed, [lane.figures() for lane in lanes])
        await anyio.sleep(_REFRESH_SECONDS)


async def _drive(
    lanes: Sequence[Lane], options: DemoOptions, display: Display
) -> tuple[float, float]:
    clock = LoadClock()
    for lane in lanes:
        fate = SCENARIOS[options.scenario].make_fate(random.Random(options.seed), options)
        lane.upstream.set_handler(_handler(fate, clock, lane))
    clock.start()
    async with anyio.create_task_group() as refresher:
        refresher.start_soon(_refresh, lanes, display, clock)
        late = await _open_loop(lanes, options, clock)
        elapsed = clock.elapsed()
        refresher.cancel_scope.cancel()
    for lane in lanes:
        lane.sample(elapsed)
    return elapsed, late


async def _run(options: DemoOptions, display: Display) -> DemoSummary:
    scenario = SCENARIOS[options.scenario]
    recovers_at = scenario.recovers_at(options) if scenario.recovers_at is not None else None
    with LoopbackServer() as plain_upstream, LoopbackServer() as resilient_upstream:
        plain_client, resilient_client = options.client_classes()
        async with plain_client() as plain, resilient_client() as resilient:
            lanes = [
                Lane(PLAIN_NAME, plain, plain_upstream, recovers_at=recovers_at),
                Lane(
                    RESILIENT_NAME,
                    resilient,
                    resilient_upstream,
                    client_gauges(resilient),
                    recovers_at=recovers_at,
                ),
            ]
            elapsed, late = await _drive(lanes, options, display)
    plain_figures, resilient_figures = (lane.figures() for lane in lanes)
    return DemoSummary(
        options=options,
        elapsed=elapsed,
        clients=(plain_figures, resilient_figures),
        late=late,
        takeaway=takeaway(scenario, plain_figures, resilient_figures),
    )


def run_demo(options: DemoOptions, *, out: TextIO | None = None) -> DemoSummary:
    """Run the demo on a fresh asyncio event loop, show it, and return its figures.

    Args:
        options: What to run.
        out: Where to write (default: standard output).
    """
    if options.scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {options.scenario!r}; choose from {sorted(SCENARIOS)}")
    display = make_display(options, out)
    summary: DemoSummary | None = None
    display.begin(options)
    try:
        summary = anyio.run(_run, options, display, backend="asyncio")
    finally:
        display.end(summary)
    return summary
