"""Clients against an upstream of fixed capacity offered more than it can take: who keeps it busy
with work that still counts, and who fails the rest fast.

The upstream (``overload_upstream.py``) runs in a process of its own: it serves K requests at a
time, S seconds each, from an unbounded FIFO queue, and does the work even for callers who gave
up. Callers arrive open loop (Poisson arrivals from a seeded random source; each call starts on
time whether or not earlier ones finished) at 0.5x, 1x, 3x and 10x its capacity, each with a
deadline (the call is cancelled there). For each client (plain httpx, the by-hand tenacity stack
of ``overhead.py``, ``ResilientClient()``, and a client whose pipeline of its own has the adaptive
limit and nothing else between two timeouts) it prints goodput within the deadline as a share of
capacity, p50/p99 latency of the answers, p50 time to fail, and upstream requests per call. Then
the capacity halves in the middle of a run, and it prints how long each client's goodput took to
get back above 0.8 of the new capacity. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import functools
import json
import math
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio
import httpx

from httpx_resilience import Pipeline, ResilientClient

sys.path.insert(0, str(Path(__file__).parent))
from overhead import by_hand_stack, import_peers

Get = Callable[[], Awaitable[httpx.Response]]
#: A client under test: opened per run (fresh state), yielding "make one call".
ClientFactory = Callable[[str], contextlib.AbstractAsyncContextManager[Get]]

LOADS = (0.5, 1.0, 3.0, 10.0)
NOT_STARTED = "not started"  # the failure of a call the loop reached after its deadline
ABANDONED = "abandoned"  # the failure of a call still running when its run was cut short
#: A run is cut short this long after its last arrival's deadline: a client whose event loop is
#: starved (httpcore's pool with many waiters, encode/httpx#3215) would otherwise take minutes
#: to get through its calls. What it did not get through counts as failed.
CUT_SHORT = 2.0
BIN = 0.1  # seconds per bin of the goodput timeline
RECOVERED = 0.8  # share of the new capacity that counts as recovered
ROLLING_BINS = 10  # the timeline is read over a rolling second
# Fork where there is one: the client process then starts with everything imported.
_PROCESSES = multiprocessing.get_context(
    "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
)
anyio_time = time.monotonic  # what anyio.current_time() reads on asyncio, from any thread


# --------------------------------------------------------------------------------------------
# The upstream process
# --------------------------------------------------------------------------------------------


class UpstreamProcess:
    """``overload_upstream.py`` in a child process, started afresh for each run: its queue, the
    work of callers who gave up included, goes with it, so that no run inherits a backlog."""

    def __init__(self, workers: int, service: float) -> None:
        script = Path(__file__).with_name("overload_upstream.py")
        self._process = subprocess.Popen(
            [sys.executable, str(script), "--workers", str(workers), "--service", str(service)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().split()
        if len(line) != 2 or line[0] != "port":
            self.close()
            raise RuntimeError(f"the upstream did not start (it said {line!r})")
        self.url = f"http://127.0.0.1:{line[1]}"

    def requests(self) -> int:
        """``/work`` requests the upstream has received."""
        # urllib, not httpx: a new httpx client loads the system's certificates first.
        with urllib.request.urlopen(f"{self.url}/control/stats", timeout=10) as response:
            return int(json.load(response)["requests"])

    def close(self) -> None:
        """Stop the process."""
        self._process.terminate()
        self._process.wait(timeout=10)


async def set_workers(url: str, workers: int) -> None:
    """Make the upstream at ``url`` serve ``workers`` at a time from now on."""
    async with httpx.AsyncClient() as control:
        await control.get(f"{url}/control/workers", params={"k": workers})


# --------------------------------------------------------------------------------------------
# The clients
# --------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def plain_httpx(url: str) -> AsyncIterator[Get]:
    """A bare ``httpx.AsyncClient``."""
    async with httpx.AsyncClient() as client:
        yield functools.partial(client.get, url)


@contextlib.asynccontextmanager
async def by_hand_tenacity(url: str) -> AsyncIterator[Get]:
    """The by-hand stack of ``overhead.py`` (timeout + tenacity + aiobreaker + Semaphore +
    aiolimiter + timeout) around a bare client's GET."""
    peers, _ = import_peers()
    async with httpx.AsyncClient() as client:
        yield by_hand_stack(peers, "tenacity", functools.partial(client.get, url))


@contextlib.asynccontextmanager
async def resilient_default(url: str) -> AsyncIterator[Get]:
    """``ResilientClient()``: whatever the standard pipeline is today."""
    async with ResilientClient() as client:
        yield functools.partial(client.get, url)


def limit_only_pipeline() -> Pipeline:
    """The adaptive limit alone, between the standard total and attempt timeouts: what it does
    without the retry, the breaker and the pacing gate around it (``ResilientClient()`` has it
    with them)."""
    return Pipeline.builder().timeout(30.0).adaptive_limit().timeout(10.0).build()


@contextlib.asynccontextmanager
async def resilient_limit_only(url: str) -> AsyncIterator[Get]:
    """``ResilientClient(pipeline=...)`` with the adaptive limit alone."""
    async with ResilientClient(pipeline=limit_only_pipeline()) as client:
        yield functools.partial(client.get, url)


def clients() -> tuple[dict[str, ClientFactory], list[str]]:
    """The clients to measure, and notes on those left out."""
    chosen: dict[str, ClientFactory] = {"httpx.AsyncClient": plain_httpx}
    notes: list[str] = []
    peers, _ = import_peers()
    if "aiobreaker" in peers and "aiolimiter" in peers:
        chosen["by hand (tenacity)"] = by_hand_tenacity
    else:
        notes.append("by hand (tenacity) skipped: it needs aiobreaker and aiolimiter")
    chosen["ResilientClient()"] = resilient_default
    chosen["ResilientClient(limit only)"] = resilient_limit_only
    return chosen, notes


# --------------------------------------------------------------------------------------------
# One open-loop run
# --------------------------------------------------------------------------------------------


def arrivals(rate: float, seconds: float, seed: int) -> Iterator[float]:
    """Poisson arrival times (seconds from the start) below ``seconds``: the same for every
    client given the same rate and seed."""
    rng = random.Random(seed)
    at = rng.expovariate(rate)
    while at < seconds:
        yield at
        at += rng.expovariate(rate)


@dataclass
class Run:
    """What one client did in one open-loop run. Figures marked *measured* count only calls
    scheduled after the warm-up; the timeline counts every success, by when it arrived."""

    seconds: float
    warmup: float
    calls: int = 0
    measured: int = 0
    successes: int = 0  # measured
    answers: list[float] = field(default_factory=list)  # measured, latency from schedule
    failures: list[float] = field(default_factory=list)  # measured, time to fail
    failure_kinds: dict[str, int] = field(default_factory=dict)  # measured
    upstream_requests: int = 0
    timeline: list[int] = field(default_factory=list)  # successes per BIN
    running: dict[int, float] = field(default_factory=dict)  # calls under way: id -> at

    def record(self, at: float, took: float, failure: str | None) -> None:
        """One finished call, scheduled ``at`` seconds into the run, ``took`` seconds later."""
        if failure is None:
            index = int((at + took) / BIN)
            if index < len(self.timeline):
                self.timeline[index] += 1
        if at < self.warmup:
            return
        if failure is None:
            self.successes += 1
            self.answers.append(took)
        else:
            self.failures.append(took)
            self.failure_kinds[failure] = self.failure_kinds.get(failure, 0) + 1

    def start(self, at: float, warmup: float) -> None:
        """One more call reached by the schedule."""
        self.calls += 1
        self.measured += at >= warmup

    def cut(self, schedule: Sequence[float], elapsed: float) -> Run:
        """A copy of the run cut short ``elapsed`` seconds in: the calls still under way are
        abandoned, those the schedule had not reached are not started; both count as failed."""
        cut = copy.deepcopy(self)
        for at in cut.running.values():
            cut.record(at, elapsed - at, ABANDONED)
        cut.running.clear()
        for at in schedule[cut.calls :]:
            cut.start(at, cut.warmup)
            cut.record(at, elapsed - at, NOT_STARTED)
        return cut


async def _one_call(get: Get, run: Run, at: float, start: float, deadline: float) -> None:
    scheduled = start + at
    failure: str | None = None
    token = id(asyncio.current_task())
    run.running[token] = at
    try:
        # The deadline counts from the scheduled arrival: a call that starts late because the
        # client's own event loop is behind has spent part of its time already.
        with anyio.fail_after(max(0.0, scheduled + deadline - anyio.current_time())):
            response = await get()
        if response.status_code != 200:
            failure = f"HTTP {response.status_code}"
    except TimeoutError:
        failure = "deadline"
    except Exception as exc:  # every failure is a figure here
        failure = type(exc).__name__
    finally:
        del run.running[token]
    took = anyio.current_time() - scheduled
    if failure is None and took > deadline:
        # Answered, but after the deadline (a busy loop ran the cancellation late): the caller
        # would have given up, so it is not goodput.
        failure = "deadline"
    run.record(at, took, failure)


async def _open_loop(
    factory: ClientFactory,
    url: str,
    schedule: Sequence[float],
    run: Run,
    args: argparse.Namespace,
    change: tuple[float, int] | None,
    cut: Callable[[float], None],
) -> None:
    async with factory(f"{url}/work") as get, anyio.create_task_group() as calls:
        start = anyio.current_time()
        # A thread, not a task: a starved event loop would run a task late, if at all.
        timer = threading.Timer(
            run.seconds + args.deadline + CUT_SHORT, lambda: cut(anyio_time() - start)
        )
        timer.daemon = True
        timer.start()
        for at in schedule:
            if change is not None and at >= change[0]:
                await set_workers(url, change[1])
                change = None
            delay = start + at - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
            run.start(at, args.warmup)
            late = anyio.current_time() - (start + at)
            if late >= args.deadline:
                # The client's event loop got here after the call's deadline (it is starved):
                # the caller has given up already, so the call is not made. Making it anyway
                # would only feed the starvation (httpcore does work per queued request).
                run.record(at, late, NOT_STARTED)
                continue
            # Only the running calls are kept (by the task group): nothing grows with the run.
            calls.start_soon(_one_call, get, run, at, start, args.deadline)
    timer.cancel()


def _client_process(
    factory: ClientFactory,
    url: str,
    rate: float,
    seconds: float,
    args: argparse.Namespace,
    change: tuple[float, int] | None,
    report: Connection,
) -> None:
    # One run of one client, in a process of its own: cutting a starved client short is then
    # one os._exit, where cancelling its calls would cost httpcore minutes.
    schedule = list(arrivals(rate, seconds, args.seed))
    run = Run(seconds, args.warmup, timeline=[0] * math.ceil((seconds + args.deadline) / BIN))
    reported = threading.Lock()

    def send(result: Run) -> None:
        if reported.acquire(blocking=False):
            report.send(result)

    def cut(elapsed: float) -> None:
        # Keep the event loop's thread from running while the figures are copied, then leave.
        sys.setswitchinterval(1e6)
        send(run.cut(schedule, elapsed))
        report.close()
        os._exit(0)

    anyio.run(_open_loop, factory, url, schedule, run, args, change, cut, backend="asyncio")
    send(run)
    report.close()


def open_loop(
    factory: ClientFactory,
    rate: float,
    args: argparse.Namespace,
    seconds: float,
    change: tuple[float, int] | None = None,
) -> Run:
    """Offer ``rate`` calls a second for ``seconds`` through a fresh client (in a process of its
    own) to a fresh upstream; ``change`` = (at, workers) sets the upstream's concurrency ``at``
    seconds in."""
    upstream = UpstreamProcess(args.workers, args.service)
    try:
        before = upstream.requests()
        receive, report = _PROCESSES.Pipe(duplex=False)
        process = _PROCESSES.Process(
            target=_client_process,
            args=(factory, upstream.url, rate, seconds, args, change, report),
        )
        process.start()
        report.close()
        if not receive.poll(seconds + args.deadline + CUT_SHORT + 60):
            process.kill()
            raise RuntimeError("the client process neither finished nor cut its run short")
        run: Run = receive.recv()
        process.join(10)
        if process.is_alive():
            process.kill()
        run.upstream_requests = upstream.requests() - before
        return run
    finally:
        upstream.close()


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile, ``None`` when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def ms(seconds: float | None) -> str:
    """Milliseconds, or ``-``."""
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def load_row(run: Run, capacity: float) -> dict[str, Any]:
    """The figures of one client at one load."""
    # Goodput by when the answers arrived, inside the measured window: what the upstream's
    # capacity delivered, never more than it (calls scheduled near the end finish after it).
    counted = run.timeline[round(run.warmup / BIN) : round(run.seconds / BIN)]
    return {
        "goodput": sum(counted) / (len(counted) * BIN * capacity),
        "answered": run.successes / run.measured if run.measured else 0.0,
        "p50_ms": ms(percentile(run.answers, 0.50)),
        "p99_ms": ms(percentile(run.answers, 0.99)),
        "p50_fail_ms": ms(percentile(run.failures, 0.50)),
        "starved": (
            (run.failure_kinds.get(NOT_STARTED, 0) + run.failure_kinds.get(ABANDONED, 0))
            / run.measured
            if run.measured
            else 0.0
        ),
        "upstream_per_call": run.upstream_requests / run.calls if run.calls else 0.0,
        "failures": dict(sorted(run.failure_kinds.items(), key=lambda kv: -kv[1])),
    }


def recovery(run: Run, change_at: float, new_capacity: float) -> float | None:
    """Seconds from the change until the goodput over a rolling second is back above
    ``RECOVERED`` of the new capacity and stays there to the end of the run (``None``: never)."""
    bins = run.timeline[: int(run.seconds / BIN)]
    first = round(change_at / BIN)
    enough = RECOVERED * new_capacity * ROLLING_BINS * BIN
    found: int | None = None
    for index in range(first, len(bins) - ROLLING_BINS + 1):
        if sum(bins[index : index + ROLLING_BINS]) >= enough:
            found = index if found is None else found
        else:
            found = None
    return None if found is None else (found - first) * BIN


def print_table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns aligned, first left, the rest right."""
    widths = [max(len(row[i]) for row in [headings, *rows]) for i in range(len(headings))]
    for row in [headings, *rows]:
        rest = zip(row[1:], widths[1:], strict=True)
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in rest]
        print("  ".join(cells).rstrip())


# --------------------------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4, help="upstream concurrency K (4)")
    parser.add_argument("--service", type=float, default=0.05, help="upstream seconds S (0.05)")
    parser.add_argument("--deadline", type=float, help="per-call deadline, seconds (1)")
    parser.add_argument("--seconds", type=float, help="seconds of load per run (4)")
    parser.add_argument("--warmup", type=float, help="first seconds left out of the figures (1)")
    parser.add_argument("--loads", type=float, nargs="+", help="offered loads, x capacity")
    parser.add_argument("--change-load", type=float, default=3.0, help="load of the halving run")
    parser.add_argument("--change-seconds", type=float, help="length of the halving run (9)")
    parser.add_argument("--seed", type=int, default=13, help="seed of the arrivals (13)")
    parser.add_argument("--quick", action="store_true", help="tiny run: a smoke test, seconds")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    quick = args.quick
    args.deadline = args.deadline or (0.5 if quick else 1.0)
    args.seconds = args.seconds or (0.6 if quick else 4.0)
    args.warmup = args.warmup if args.warmup is not None else (0.1 if quick else 1.0)
    args.loads = args.loads or ([0.5, 3.0] if quick else list(LOADS))
    args.change_seconds = args.change_seconds or (1.5 if quick else 9.0)
    for name in ("workers", "service", "deadline", "seconds", "change_load", "change_seconds"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if not 0 <= args.warmup < args.seconds:
        parser.error(f"--warmup must be in [0, --seconds), got {args.warmup}")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every client at every load, then through a halving of the capacity."""
    capacity = args.workers / args.service
    chosen, notes = clients()
    print(
        f"httpx-resilience overload benchmark: Python {platform.python_version()}, asyncio, "
        f"{os.cpu_count()} cores, shared: each run starts a fresh upstream process and a fresh "
        "client process (every call of the run in that one process), and the two compete for "
        "the cores"
    )
    print(
        f"upstream: {args.workers} at a time, {args.service * 1000:g} ms each (capacity "
        f"{capacity:g}/s), unbounded FIFO queue, does the work of callers who gave up"
    )
    print(
        f"callers: open loop, Poisson arrivals (seed {args.seed}), deadline {args.deadline:g} s "
        f"per call; {args.seconds:g} s per run, the first {args.warmup:g} s left out"
    )
    for note in notes:
        print(f"note: {note}")
    report: dict[str, Any] = {"capacity": capacity, "loads": {}, "halving": {}, "notes": notes}
    for load in args.loads:
        rows = []
        for name, factory in chosen.items():
            row = load_row(open_loop(factory, load * capacity, args, args.seconds), capacity)
            report["loads"].setdefault(str(load), {})[name] = row
            rows.append(
                [
                    name,
                    f"{row['goodput']:.2f}",
                    f"{row['answered']:.1%}",
                    row["p50_ms"],
                    row["p99_ms"],
                    row["p50_fail_ms"],
                    f"{row['starved']:.1%}",
                    f"{row['upstream_per_call']:.2f}",
                ]
            )
        schedule = arrivals(load * capacity, args.seconds, args.seed)
        measured = sum(args.warmup <= at for at in schedule)
        actual = measured / (args.seconds - args.warmup) / capacity
        print(
            f"\noffered {load:g}x capacity ({load * capacity:g} calls/s; the seeded Poisson "
            f"schedule brings {actual:.2f}x in the measured window)"
        )
        headings = ["client", "goodput", "answered", "p50 ms", "p99 ms", "p50 fail ms"]
        print_table([*headings, "starved", "up/call"], rows)
    report["halving"] = halving(chosen, capacity, args)
    return report


def halving(
    chosen: dict[str, ClientFactory], capacity: float, args: argparse.Namespace
) -> dict[str, Any]:
    """The capacity halves a third of the way into a run: how long until goodput follows."""
    change_at = args.change_seconds / 3
    workers = max(1, args.workers // 2)
    new_capacity = workers / args.service
    rate = args.change_load * capacity
    print(
        f"\ncapacity halves: {rate:g} calls/s for {args.change_seconds:g} s, the upstream goes "
        f"from {args.workers} to {workers} at a time at {change_at:.1f} s; recovered = goodput "
        f"over a rolling second back above {RECOVERED:g} x {new_capacity:g}/s and staying there"
    )
    rows, figures = [], {}
    for name, factory in chosen.items():
        result = open_loop(factory, rate, args, args.change_seconds, (change_at, workers))
        took = recovery(result, change_at, new_capacity)
        bins = result.timeline[: int(args.change_seconds / BIN)]
        first = round(change_at / BIN)
        before = sum(bins[:first]) / (first * BIN) / capacity if first else 0.0
        last = bins[len(bins) - len(bins) // 3 :]
        after = sum(last) / (len(last) * BIN) / new_capacity if last else 0.0
        figures[name] = {"recovery_s": took, "goodput_before": before, "goodput_after": after}
        rows.append(
            [name, f"{before:.2f}", f"{after:.2f}", "never" if took is None else f"{took:.1f}"]
        )
    print_table(["client", "goodput before", "last third", "recovered after s"], rows)
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: ``python benchmarks/overload.py [--quick] [--json PATH] ...``."""
    args = parse_args(argv)
    started = time.perf_counter()
    report = run(args)
    print(f"\n(run took {time.perf_counter() - started:.1f} s)")
    print(
        "goodput: answers arrived within their deadline per second, over the measured window, "
        "/ capacity (halving: before / the old capacity, last third / the new one); answered: "
        "share of calls answered within the deadline; p50/p99: latency of those answers from "
        "the scheduled arrival; p50 fail: time from the scheduled arrival to a failure; starved: "
        "calls this process's event loop reached only after their deadline (not made), or still "
        f"running {CUT_SHORT:g} s after the last deadline (the run is cut short), counted as "
        "failed; up/call: requests the upstream received per call"
    )
    if args.json:
        report["options"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
