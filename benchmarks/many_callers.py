"""Many closed-loop callers against a fast upstream: does the standard pipeline do harm?

500 callers start at once and each makes 4 GETs one after the other (closed loop: the next call
starts when the last one ended) against a fast upstream in its own process
(``overload_upstream.py`` with as many workers as callers and no service time), through a
client with httpx's default pool (``max_connections=100``). It prints, for plain httpx and
``ResilientClient()`` in one run, the calls answered and failed, how long the run took, the
goodput (answers per second) and the p50/p99 latency of the answers. This is the no-harm bar of
issue 13: the adaptive limit and the pacing gate of the standard pipeline must not refuse the
calls of a burst that a fast upstream serves. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx

from httpx_resilience import ResilientClient

sys.path.insert(0, str(Path(__file__).parent))
from overload import UpstreamProcess, print_table


async def _callers(client: httpx.AsyncClient, url: str, callers: int, calls: int) -> dict[str, Any]:
    latencies: list[float] = []
    failures: dict[str, int] = {}

    async def caller() -> None:
        for _ in range(calls):
            start = time.perf_counter()
            try:
                response = await client.get(url)
            except Exception as exc:  # a failed call is a figure, not an error of the benchmark
                name = type(exc).__name__
                failures[name] = failures.get(name, 0) + 1
                continue
            if response.status_code == 200:
                latencies.append(time.perf_counter() - start)
            else:
                name = f"HTTP {response.status_code}"
                failures[name] = failures.get(name, 0) + 1

    start = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(callers):
            group.start_soon(caller)
    seconds = time.perf_counter() - start
    latencies.sort()

    def percentile(q: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

    return {
        "answered": len(latencies),
        "failed": sum(failures.values()),
        "failures": failures,
        "seconds": seconds,
        "goodput": len(latencies) / seconds,
        "p50": percentile(0.5),
        "p99": percentile(0.99),
    }


CLIENTS = ("httpx.AsyncClient", "ResilientClient()")


async def _measure(name: str, url: str, callers: int, calls: int) -> dict[str, Any]:
    # No httpx timeouts: a batch that would rather wait than fail (with httpx's 5 s pool
    # timeout, plain httpx's own pool fails most of the calls; see encode/httpx#3215).
    timeout = httpx.Timeout(None)
    client: httpx.AsyncClient
    if name == "httpx.AsyncClient":
        client = httpx.AsyncClient(timeout=timeout)
    else:
        client = ResilientClient(timeout=timeout)
    async with client:
        return await _callers(client, url, callers, calls)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Each client against a fresh upstream process, one after the other."""
    print(
        f"httpx-resilience many-callers benchmark: Python {platform.python_version()}, asyncio, "
        f"{os.cpu_count()} cores (shared: figures vary from run to run); {args.callers} "
        f"closed-loop callers x {args.calls} GETs, httpx's default pool (100 connections), "
        "a fast upstream in its own process"
    )
    figures: dict[str, Any] = {}
    for name in CLIENTS:
        upstream = UpstreamProcess(args.callers, 0.0)
        try:
            figures[name] = anyio.run(
                _measure, name, f"{upstream.url}/work", args.callers, args.calls
            )
            figures[name]["upstream_requests"] = upstream.requests()
        finally:
            upstream.close()

    def ms(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds * 1000:.0f} ms"

    print_table(
        ["client", "answered", "failed", "seconds", "goodput/s", "p50", "p99", "upstream reqs"],
        [
            [
                name,
                str(row["answered"]),
                str(row["failed"]),
                f"{row['seconds']:.2f}",
                f"{row['goodput']:.0f}",
                ms(row["p50"]),
                ms(row["p99"]),
                str(row["upstream_requests"]),
            ]
            for name, row in figures.items()
        ],
    )
    for name, row in figures.items():
        if row["failures"]:
            print(f"{name} failures: {row['failures']}")
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    """Run from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=500, help="concurrent callers (500)")
    parser.add_argument("--calls", type=int, default=4, help="GETs per caller, one by one (4)")
    parser.add_argument("--quick", action="store_true", help="50 callers x 2: a smoke test")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.callers, args.calls = 50, 2
    for name in ("callers", "calls"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    figures = run(args)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
