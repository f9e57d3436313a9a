from __future__ import annotations

import anyio
import pytest

from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio


async def test_sleep_jumps_to_the_wake_up_time() -> None:
    clock = FakeClock(start=100.0)
    await clock.sleep(2.5)
    assert clock.monotonic() == 102.5
    await clock.sleep(0)
    assert clock.monotonic() == 102.5


async def test_concurrent_sleepers_wake_in_order_at_their_own_times() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, "slow", 5.0)
        tg.start_soon(sleeper, "fast", 1.0)
        tg.start_soon(sleeper, "middle", 3.0)
    assert woke == [("fast", 1.0), ("middle", 3.0), ("slow", 5.0)]


async def test_a_sleeper_that_sleeps_again_is_woken_before_later_ones() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def twice() -> None:
        await clock.sleep(1.0)
        await clock.sleep(1.0)
        woke.append(("twice", clock.monotonic()))

    async def once() -> None:
        await clock.sleep(3.0)
        woke.append(("once", clock.monotonic()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(once)
        tg.start_soon(twice)
    assert woke == [("twice", 2.0), ("once", 3.0)]


async def test_a_cancelled_sleeper_leaves_no_timer_behind() -> None:
    clock = FakeClock(autojump=False)
    with anyio.move_on_after(0.01):
        await clock.sleep(10)
    assert clock.sleepers == 0
    assert clock.monotonic() == 0.0


async def test_advance_wakes_due_sleepers_when_autojump_is_off() -> None:
    clock = FakeClock(autojump=False)
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.monotonic())

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, 1.0)
        tg.start_soon(sleeper, 4.0)
        await anyio.wait_all_tasks_blocked()
        assert clock.sleepers == 2
        clock.advance(2.0)
        await anyio.wait_all_tasks_blocked()
        # advance() is synchronous: the woken sleeper reads the time after the whole advance.
        assert woke == [2.0]
        assert clock.sleepers == 1
        clock.advance(2.0)
    assert woke == [2.0, 4.0]


def test_advance_rejects_going_backwards() -> None:
    with pytest.raises(ValueError, match="seconds must be >= 0, got -1"):
        FakeClock().advance(-1)


# -- timers: what timeouts and bounded waits run on ---------------------------------------------


async def test_a_timer_runs_when_time_reaches_it_and_not_once_cancelled() -> None:
    clock = FakeClock(autojump=False)
    fired: list[tuple[str, float]] = []
    clock.call_at(2.0, lambda: fired.append(("a", clock.monotonic())))
    cancelled = clock.call_at(1.0, lambda: fired.append(("cancelled", clock.monotonic())))
    clock.call_at(1.5, lambda: fired.append(("b", clock.monotonic())))
    assert clock.sleepers == 3
    cancelled.cancel()
    cancelled.cancel()  # a second cancel is harmless
    clock.advance(1.7)
    assert fired == [("b", 1.5)]
    clock.advance(1.0)
    assert fired == [("b", 1.5), ("a", 2.0)]
    assert clock.sleepers == 0


async def test_a_timer_already_due_runs_at_once() -> None:
    clock = FakeClock(start=5.0)
    fired: list[float] = []
    clock.call_at(5.0, lambda: fired.append(clock.monotonic())).cancel()
    assert fired == [5.0]
    assert clock.sleepers == 0


async def test_with_autojump_a_pending_timer_moves_time_when_every_task_waits() -> None:
    # Nobody sleeps on the clock: only the timer can make the event happen.
    clock = FakeClock()
    done = anyio.Event()
    clock.call_at(30.0, done.set)
    with anyio.fail_after(5):  # real time: a hang fails, it does not block the suite
        await done.wait()
    assert clock.monotonic() == 30.0
    assert clock.sleepers == 0


def test_a_timer_set_outside_any_event_loop_runs_on_advance() -> None:
    # A test stepping an event loop by hand advances the clock while the loop is stopped, and a
    # timeout's timer may be set again from there: there is then nothing to drive, only advance.
    clock = FakeClock()
    fired: list[float] = []
    clock.call_at(1.0, lambda: fired.append(clock.monotonic()))
    clock.advance(1.0)
    assert fired == [1.0]
