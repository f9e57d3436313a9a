from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest
import tenacity

from httpx_resilience import Pipeline, ResilientClient, SystemClock, TimeoutRejected
from httpx_resilience.testing import FakeClock, LoopbackServer, ReceivedRequest, Reply

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


# -- autojump: only when every task is blocked and no loopback I/O is in flight ----------------


async def test_time_does_not_move_while_another_task_can_still_run() -> None:
    # A task with work left (each step a checkpoint) is not waiting: the sleeper wakes only once
    # it has finished, however many steps that takes.
    clock = FakeClock()
    steps = 0

    async def busy() -> None:
        nonlocal steps
        for _ in range(200):
            await anyio.lowlevel.checkpoint()
            steps += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(busy)
        await clock.sleep(1.0)
        assert steps == 200
    assert clock.monotonic() == 1.0


def _working(seconds: float) -> Callable[[ReceivedRequest], Reply]:
    def handler(request: ReceivedRequest) -> Reply:
        time.sleep(seconds)  # the server's thread is busy: real work, not a wait
        return Reply(200, body=b"worked")

    return handler


@pytest.mark.parametrize(
    "handler",
    [lambda request: Reply(200, body=b"late", delay=0.05), _working(0.05)],
    ids=["answers-late", "works-before-answering"],
)
async def test_time_does_not_move_while_a_loopback_request_is_in_flight(
    handler: Callable[[ReceivedRequest], Reply],
) -> None:
    # The FakeClock's timeout of 1 s must not fire while the loopback server takes 50 ms of real
    # time to answer: the client's task waits on its socket, which is not waiting on the clock.
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).timeout(1.0).build()
    with LoopbackServer(handler) as server:
        async with ResilientClient(pipeline=pipeline, base_url=server.url) as client:
            for _ in range(3):
                response = await client.get("/work")
                assert response.status_code == 200
    assert clock.monotonic() == 0.0


async def test_time_moves_between_loopback_requests_not_during_them() -> None:
    clock = FakeClock()
    pipeline = (
        Pipeline.builder(clock=clock)
        .retry(max_attempts=3, backoff=tenacity.wait_fixed(0.5))
        .timeout(1.0)  # each attempt's, on the fake clock too
        .build()
    )
    with LoopbackServer() as server:
        server.script(Reply(503, delay=0.02), Reply(503, chunks=4, chunk_delay=0.01), Reply(200))
        async with ResilientClient(pipeline=pipeline, base_url=server.url) as client:
            response = await client.get("/flaky")
    assert response.status_code == 200
    assert clock.monotonic() == 1.0  # the two waits of 0.5 s, and not a moment of the I/O


@pytest.mark.parametrize(
    "stall",
    [Reply(hang=True), Reply(endless=True, chunk_delay=0.01)],
    ids=["never-answers", "body-never-ends"],
)
async def test_a_server_that_deliberately_stalls_lets_a_fake_timeout_fire(stall: Reply) -> None:
    # A reply that never finishes holds nothing: the FakeClock moves to the timeout while the
    # client waits on it.
    clock = FakeClock()
    pipeline = Pipeline.builder(clock=clock).timeout(1.0).build()
    with LoopbackServer() as server:
        server.script(stall)
        async with ResilientClient(pipeline=pipeline, base_url=server.url) as client:
            with anyio.fail_after(5), pytest.raises(TimeoutRejected):  # real time: no hang
                await client.get("/stall")
    assert clock.monotonic() == 1.0


async def test_a_response_left_unread_does_not_hold_the_clock() -> None:
    clock = FakeClock()
    with LoopbackServer() as server:
        server.script(Reply(200, body=b"x" * 10_000, chunks=4, chunk_delay=0.01))
        async with (
            ResilientClient(base_url=server.url) as client,
            client.stream("GET", "/report") as response,
        ):
            with anyio.fail_after(5):  # real time: no hang
                await clock.sleep(5.0)  # the body is all sent, and waits in the socket
            assert len(await response.aread()) == 10_000
    assert clock.monotonic() == 5.0


def test_process_time_is_the_cpu_share_of_the_time_that_passed() -> None:
    clock = FakeClock(autojump=False)
    assert clock.process_time() == 0.0
    assert clock.cpu_share == 0.0
    clock.advance(2.0)
    assert clock.process_time() == 0.0
    clock.cpu_share = 0.5
    clock.advance(2.0)
    assert clock.process_time() == 1.0
    clock.cpu_share = 1.0  # from now on: what passed before keeps its own share
    clock.advance(0.5)
    assert clock.process_time() == 1.5
    with pytest.raises(ValueError, match=r"^FakeClock.cpu_share must be >= 0, got -0.1$"):
        clock.cpu_share = -0.1
    assert clock.cpu_share == 1.0


def test_the_system_clock_reads_the_process_cpu_time() -> None:
    assert SystemClock.process_time is time.process_time
