"""The load: two loopback upstreams, the virtual users driving each client, and
:func:`run_demo`, which runs it all on a fresh event loop."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import TextIO

import anyio

from ..._loopback import LoopbackServer, ReceivedRequest, Reply
from ...context import ExecutionReport
from ...http import _flavour
from .display import Display, make_display
from .figures import DemoSummary, Lane, client_gauges
from .options import PLAIN_NAME, RESILIENT_NAME, DemoOptions
from .scenarios import SCENARIOS, Fate
from .takeaway import takeaway

__all__ = ["LoadClock", "run_demo"]

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


def _handler(fate: Fate, clock: LoadClock) -> Callable[[ReceivedRequest], Reply]:
    def handle(request: ReceivedRequest) -> Reply:
        return fate(clock.elapsed())

    return handle


async def _call(lane: Lane, url: str) -> None:
    began = time.perf_counter()
    try:
        response = await lane.client.get(url)
    except _flavour.HTTP_ERRORS as exc:  # httpx's or httpx2's
        lane.record(time.perf_counter() - began, type(exc).__name__, None)
        return
    latency = time.perf_counter() - began
    report = response.extensions.get("resilience")
    failure = None if response.is_success else f"HTTP {response.status_code}"
    lane.record(latency, failure, report if isinstance(report, ExecutionReport) else None)


async def _virtual_user(lane: Lane, offset: float, options: DemoOptions, clock: LoadClock) -> None:
    url = f"{lane.upstream.url}/item"
    next_start = offset
    while True:
        await anyio.sleep(max(0.0, next_start - clock.elapsed()))
        if options.requests is not None:
            if lane.started >= options.requests:
                return
        elif clock.elapsed() >= options.duration:
            return
        lane.started += 1
        await _call(lane, url)
        # Keep the pace, but a user whose call overran its slot goes on at once rather than
        # making up for the calls it missed.
        next_start = max(next_start + options.interval, clock.elapsed())


async def _refresh(lanes: Sequence[Lane], display: Display, clock: LoadClock) -> None:
    while True:
        elapsed = clock.elapsed()
        for lane in lanes:
            lane.sample(elapsed)
        display.update(elapsed, [lane.figures() for lane in lanes])
        await anyio.sleep(_REFRESH_SECONDS)


async def _drive(lanes: Sequence[Lane], options: DemoOptions, display: Display) -> float:
    clock = LoadClock()
    for lane in lanes:
        fate = SCENARIOS[options.scenario].make_fate(random.Random(options.seed), options)
        lane.upstream.set_handler(_handler(fate, clock))
    clock.start()
    async with anyio.create_task_group() as refresher:
        refresher.start_soon(_refresh, lanes, display, clock)
        async with anyio.create_task_group() as users:
            for lane in lanes:
                for index in range(options.users):
                    # Spread the users over one interval so the load is even from the start.
                    offset = index * options.interval / options.users
                    users.start_soon(_virtual_user, lane, offset, options, clock)
        elapsed = clock.elapsed()
        refresher.cancel_scope.cancel()
    for lane in lanes:
        lane.sample(elapsed)
    return elapsed


async def _run(options: DemoOptions, display: Display) -> DemoSummary:
    scenario = SCENARIOS[options.scenario]
    with LoopbackServer() as plain_upstream, LoopbackServer() as resilient_upstream:
        plain_client, resilient_client = options.client_classes()
        async with plain_client() as plain, resilient_client() as resilient:
            lanes = [
                Lane(PLAIN_NAME, plain, plain_upstream),
                Lane(RESILIENT_NAME, resilient, resilient_upstream, client_gauges(resilient)),
            ]
            elapsed = await _drive(lanes, options, display)
    plain_figures, resilient_figures = (lane.figures() for lane in lanes)
    return DemoSummary(
        options=options,
        elapsed=elapsed,
        clients=(plain_figures, resilient_figures),
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
