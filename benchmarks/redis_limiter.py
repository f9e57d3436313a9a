"""The Redis rate limiter against a bare Redis round trip and the in-memory bucket, in one run.

It starts a ``redis-server`` of its own on a free loopback port (or uses ``--url``) and times,
from one process on asyncio, interleaved round by round:

- ``bare await noop()``: the call itself, the baseline of the in-memory figures;
- ``RateLimiter (in memory)``: a pipeline holding the in-memory limiter;
- ``redis PING``: one bare round trip through the same ``redis.asyncio`` client, the floor of
  anything done in Redis;
- ``EVALSHA (script by hand)``: the limiter's script called directly, without the library;
- ``RateLimiter + RedisBackend``: a pipeline holding the limiter with the Redis backend.

Rate and burst are huge, so every call is admitted: this is the happy path, one round trip per
acquisition. The aim is an acquisition within 1.2 x a bare PING. Then the same client under
``--concurrency`` tasks at once, PING against acquisitions, for throughput. Nothing here
asserts on timings; only the figures of one run compare.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from httpx_resilience import Pipeline, RateLimiter
from httpx_resilience.backends import redis as redis_backend
from httpx_resilience.backends.redis import RedisBackend

Call = Callable[[], Awaitable[Any]]

RATE = BURST = 1e9  # every call admitted: the happy path only
AIM = 1.2


@dataclass
class Case:
    """One timed call, and its microseconds per call, one sample per round."""

    name: str
    call: Call
    samples: list[float] = field(default_factory=list)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway ``redis-server`` on loopback (persistence off); yields its URL."""
    executable = shutil.which("redis-server")
    assert executable is not None  # main() checked
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            [
                *(executable, "--port", str(port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                        sock.sendall(b"PING\r\n")
                        if sock.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit("redis-server did not start")
                time.sleep(0.01)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


async def run_batch(call: Call, n: int) -> float:
    """Await ``call()`` ``n`` times back to back; return microseconds per call."""
    start = time.perf_counter_ns()
    for _ in range(n):
        await call()
    return (time.perf_counter_ns() - start) / n / 1000.0


async def run_concurrent(call: Call, tasks: int, n: int) -> float:
    """``tasks`` tasks each awaiting ``call()`` ``n`` times; return calls per second."""

    async def worker() -> None:
        for _ in range(n):
            await call()

    start = time.perf_counter_ns()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return tasks * n / ((time.perf_counter_ns() - start) / 1e9)


async def settle() -> None:
    """Collect garbage between batches, outside the timed window."""
    await asyncio.sleep(0)
    gc.collect()


async def noop() -> None:
    return None


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Time every case; return the figures."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        info = await client.info("server")
        prefix = f"bench-{time.time_ns()}"
        backend = RedisBackend(client, prefix=prefix)
        memory = Pipeline([RateLimiter(rate=RATE, burst=BURST)])
        shared = Pipeline([RateLimiter(rate=RATE, burst=BURST, backend=backend)])
        store = backend.token_store(rate=RATE, burst=BURST)
        key = store.bucket_name("by-hand", None)
        script_args = store._args
        await client.script_load(redis_backend._SCRIPT)

        async def evalsha() -> Any:
            return await client.execute_command(
                "EVALSHA", redis_backend._SHA, b"1", key, *script_args
            )

        async def acquire() -> None:
            await shared.execute(noop)

        cases = [
            Case("bare await noop()", noop),
            Case("RateLimiter (in memory)", lambda: memory.execute(noop)),
            Case("redis PING", client.ping),
            Case("EVALSHA (script by hand)", evalsha),
            Case("RateLimiter + RedisBackend", acquire),
        ]
        for case in cases:
            await run_batch(case.call, args.warmup)
            await settle()
        for r in range(args.rounds):
            shift = r % len(cases)
            for case in cases[shift:] + cases[:shift]:
                case.samples.append(await run_batch(case.call, args.calls))
                await settle()

        concurrent: dict[str, list[float]] = {"redis PING": [], "RateLimiter + RedisBackend": []}
        for _ in range(max(1, args.rounds // 4)):
            concurrent["redis PING"].append(
                await run_concurrent(client.ping, args.concurrency, args.calls)
            )
            await settle()
            concurrent["RateLimiter + RedisBackend"].append(
                await run_concurrent(acquire, args.concurrency, args.calls)
            )
            await settle()
    finally:
        await client.aclose()

    by_name = {case.name: case for case in cases}
    ping = by_name["redis PING"].samples
    bare = by_name["bare await noop()"].samples

    def paired(name: str, base: list[float], how: Callable[[float, float], float]) -> float:
        # Per-round pairs: the rounds ran back to back, so pairing removes a noisy machine's
        # drift from the comparison.
        return statistics.median(
            how(s, b) for s, b in zip(by_name[name].samples, base, strict=True)
        )

    rows = []
    for case in cases:
        median = statistics.median(case.samples)
        rows.append(
            {
                "case": case.name,
                "median_us": median,
                "min_us": min(case.samples),
                "calls_per_s": 1e6 / median,
                "vs_ping": paired(case.name, ping, lambda s, b: s / b),
                "added_us": paired(case.name, bare, lambda s, b: s - b),
            }
        )
    return {
        "python": platform.python_version(),
        "redis_py": redis.__version__,
        "redis_server": info.get("redis_version"),
        "rounds": args.rounds,
        "calls": args.calls,
        "cases": rows,
        "ratio_acquisition_to_ping": paired("RateLimiter + RedisBackend", ping, lambda s, b: s / b),
        "ratio_evalsha_to_ping": paired("EVALSHA (script by hand)", ping, lambda s, b: s / b),
        "concurrency": args.concurrency,
        "concurrent_calls_per_s": {k: statistics.median(v) for k, v in concurrent.items()},
    }


def report(figures: dict[str, Any]) -> None:
    """Print the table."""
    print(
        f"Python {figures['python']}, redis-py {figures['redis_py']}, "
        f"redis-server {figures['redis_server']} on loopback; {figures['rounds']} rounds x "
        f"{figures['calls']} calls per case, one after another (medians)"
    )
    print()
    print(f"{'case':<30} {'calls/s':>10} {'µs/call':>9} {'min µs':>8} {'x PING':>7} {'+µs':>8}")
    for row in figures["cases"]:
        print(
            f"{row['case']:<30} {row['calls_per_s']:>10,.0f} {row['median_us']:>9.1f} "
            f"{row['min_us']:>8.1f} {row['vs_ping']:>7.3f} {row['added_us']:>8.1f}"
        )
    print("  (+µs: added to a bare await noop(), i.e. the latency the policy adds to a call)")
    print()
    ratio = figures["ratio_acquisition_to_ping"]
    verdict = "within" if ratio <= AIM else "above"
    print(
        f"Redis acquisition / bare PING round trip: {ratio:.3f} ({verdict} the {AIM}x aim); "
        f"the script by hand: {figures['ratio_evalsha_to_ping']:.3f}"
    )
    print()
    print(f"{figures['concurrency']} tasks at once, one client:")
    for name, rate in figures["concurrent_calls_per_s"].items():
        print(f"  {name:<28} {rate:>10,.0f} calls/s")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run: a smoke test, seconds")
    parser.add_argument("--url", help="a running Redis to use instead of starting one")
    parser.add_argument("--rounds", type=int, help="rounds of interleaved batches (default 20)")
    parser.add_argument("--calls", type=int, help="calls per case per round (default 1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="tasks at once (default 16)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 2 if args.quick else 20
    if args.calls is None:
        args.calls = 50 if args.quick else 1000
    args.warmup = args.calls
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print (and optionally save) the figures."""
    args = parse_args(argv)
    if not args.url and shutil.which("redis-server") is None:
        # Like a missing peer in overhead.py: a note, not a failure of `nox -s bench`.
        print(
            "redis_limiter.py skipped: redis-server is not on PATH; install it "
            "(apt-get install redis-server, brew install redis) or pass --url of a running server"
        )
        return
    if args.url:
        figures = asyncio.run(run(args, args.url))
    else:
        with redis_server() as url:
            figures = asyncio.run(run(args, url))
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
