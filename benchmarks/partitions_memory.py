"""Memory of a partitioned circuit breaker under a flood of distinct keys.

The bar: with 10,000 distinct keys per second for 10 s, the resident memory of a breaker
partitioned per key stays bounded by ``max_partitions`` (default 10,000). This feeds a breaker
(on a fake clock, so the ten seconds take as long as the calls do) one new key per call, 10,000
per simulated second, and prints after each second: the partitions kept, the memory Python has
allocated (tracemalloc) and the process's resident set size. After the first second the cache
is full, and both figures must stay flat.

Run: python benchmarks/partitions_memory.py [--seconds 10] [--rate 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import tracemalloc
from collections.abc import Sequence

from httpx_resilience import CircuitBreaker, Context, Pipeline
from httpx_resilience.testing import FakeClock


def rss_mib() -> float:
    """The resident set size now, in MiB (from /proc; the peak where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:  # pragma: no cover - not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def flood(
    seconds: int, rate: int, max_partitions: int
) -> list[tuple[int, int, float, float]]:
    """Feed ``rate`` new keys per simulated second for ``seconds``; one row per second."""
    clock = FakeClock(autojump=False)
    breaker = CircuitBreaker(
        key=lambda context: context.operation_key or "",
        max_partitions=max_partitions,
        clock=clock,
    )
    pipeline = Pipeline([breaker])

    async def call() -> None:
        return None

    rows = []
    tracemalloc.start()
    key = 0
    for second in range(1, seconds + 1):
        for _ in range(rate):
            key += 1
            await pipeline.execute(call, Context(operation_key=f"tenant-{key}"))
        clock.advance(1.0)
        gc.collect()
        current, _ = tracemalloc.get_traced_memory()
        rows.append((second, len(breaker.partitions()), current / 2**20, rss_mib()))
    tracemalloc.stop()
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """Run the flood and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=10_000, help="new keys per second")
    parser.add_argument("--max-partitions", type=int, default=10_000)
    args = parser.parse_args(argv)
    rows = asyncio.run(flood(args.seconds, args.rate, args.max_partitions))
    print(
        f"{args.rate} new keys per second for {args.seconds} s, max_partitions "
        f"{args.max_partitions}"
    )
    print(f"{'second':>6}  {'partitions':>10}  {'traced MiB':>10}  {'RSS MiB':>8}")
    for second, partitions, traced, rss in rows:
        print(f"{second:>6}  {partitions:>10}  {traced:>10.2f}  {rss:>8.1f}")
    first, last = rows[0], rows[-1]
    print(
        f"traced memory from second 1 to second {last[0]}: {first[2]:.2f} -> {last[2]:.2f} MiB "
        f"({last[2] / first[2]:.2f}x); partitions at most {max(r[1] for r in rows)}"
    )


if __name__ == "__main__":
    main()
