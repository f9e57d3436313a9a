"""Four processes, each with its own loop, client and limiter, share one limit through Redis."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from . import _worker
from ._server import RedisServer

# Four processes on a shared limit in real time: run alone (see "serial" in noxfile.py).
pytestmark = pytest.mark.serial

RATE = 50.0
BURST = 10
DURATION = 3.0
WORKERS = 4


def test_four_processes_share_one_limit_and_none_starves(redis_server: RedisServer) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    prefix = f"mp-{time.time_ns()}"
    processes = [
        context.Process(
            target=_worker.run,
            args=(
                {
                    "index": index,
                    "port": redis_server.port,
                    "prefix": prefix,
                    "rate": RATE,
                    "burst": BURST,
                    "max_wait": 0.5,
                    "duration": DURATION,
                },
                barrier,
                results,
            ),
        )
        for index in range(WORKERS)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=90) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert all(process.exitcode == 0 for process in processes)

    admitted = sorted(t for _, times, _ in outcomes for t in times)
    window = admitted[-1] - admitted[0]
    bound = BURST + RATE * window
    shares = {index: len(times) for index, times, _ in outcomes}
    print(
        f"\nadmitted {len(admitted)} in {window:.3f} s; bound burst + rate*t = {bound:.1f} "
        f"(+2%: {bound * 1.02:.1f}); per worker {dict(sorted(shares.items()))}"
    )
    assert [events for _, _, events in outcomes] == [[]] * WORKERS  # no Redis failure at all
    # Each worker stops at its own start + DURATION; the workers leave the barrier a few
    # milliseconds apart, so the span of all admissions may overrun DURATION by that much.
    assert DURATION - 0.2 < window < DURATION + 0.2
    # The bar: never more than burst + rate * t, with 2 % for the clocks' granularity...
    assert len(admitted) <= bound * 1.02
    # ...and the limit is used, not merely respected: the callers wanted far more.
    assert len(admitted) >= 0.9 * RATE * window
    # Nobody starves: each worker gets at least half its fair share.
    fair = len(admitted) / WORKERS
    assert min(shares.values()) >= fair / 2
