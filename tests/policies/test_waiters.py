"""The first-in-first-out queue the bulkhead and the rate limiter share."""

from __future__ import annotations

import anyio
import pytest

from httpx_resilience.policies._waiters import WaitQueue, where
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio


async def test_a_released_place_goes_to_the_longest_waiter() -> None:
    clock = FakeClock(autojump=False)
    queue = WaitQueue(None)
    queue.active = 1  # the one place is held
    served: list[str] = []

    async def wait(name: str) -> None:
        assert await queue.wait(None, clock) is None
        served.append(name)

    async with anyio.create_task_group() as tg:
        for name in "abc":
            tg.start_soon(wait, name)
            await anyio.wait_all_tasks_blocked()
        for expected in (["a"], ["a", "b"], ["a", "b", "c"]):
            queue.release()  # handed over: still one place in use, one waiter fewer
            await anyio.wait_all_tasks_blocked()
            assert served == expected
            assert queue.active == 1
    queue.release()
    assert (queue.active, len(queue.waiters)) == (0, 0)


async def test_a_waiter_out_of_time_leaves_saying_how_many_were_ahead() -> None:
    clock = FakeClock(autojump=False)
    queue = WaitQueue("k")
    queue.active = 1
    results: dict[str, int | None] = {}

    async def wait(name: str, timeout: float) -> None:
        results[name] = await queue.wait(timeout, clock)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait, "a", 10.0)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(wait, "b", 1.0)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.0)
        await anyio.wait_all_tasks_blocked()
        assert results == {"b": 1}
        assert len(queue.waiters) == 1
        queue.release()
    assert results == {"b": 1, "a": None}


def test_where_names_the_partition() -> None:
    assert where("the bulkhead", None) == "the bulkhead"
    assert where("the rate limit", "tenant-a") == "the rate limit for 'tenant-a'"
