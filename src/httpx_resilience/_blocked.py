"""Waiting until every task of the event loop is blocked: when a FakeClock may move time.

trio's ``wait_all_tasks_blocked`` is exactly that. anyio's, on asyncio, sleeps 0.1 s of real time
whenever a task can still run (a suite of fake-clock tests would crawl), so asyncio gets the
same rule here, read from the same task attribute anyio reads.
"""

from __future__ import annotations

import asyncio

__all__ = ["all_blocked"]

# asyncio: the tasks inside all_blocked, which count as blocked for each other.
_SETTLING: set[object] = set()


async def all_blocked() -> None:
    """Return once every other task is blocked and the event loop has polled its I/O since.

    On asyncio a task is blocked when it waits on a future that is not done and no callback is
    due that could wake it. Two turns of the loop come first, so that the callbacks of its
    latest poll of the sockets have run and woken their tasks.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # anyio runs on asyncio or trio: no asyncio loop means trio
        import trio.testing

        await trio.testing.wait_all_tasks_blocked()
        return
    me = asyncio.current_task()
    _SETTLING.add(me)
    try:
        await asyncio.sleep(0)
        while True:
            await asyncio.sleep(0)
            if _nothing_ready(loop):
                return
    finally:
        _SETTLING.discard(me)


def _nothing_ready(loop: asyncio.AbstractEventLoop) -> bool:
    # A task that can run has its step in the loop's ready queue (a future's result, a socket's
    # data and a new task all wake a task through call_soon), so an empty queue means every task
    # is blocked, in O(ready) rather than O(tasks); the turns of the other tasks in all_blocked
    # do not count. A loop without that queue (uvloop) gets the scan of every task.
    ready = getattr(loop, "_ready", None)
    if ready is None:
        return all(map(_blocked, asyncio.all_tasks(loop)))
    return all(getattr(handle._callback, "__self__", None) in _SETTLING for handle in ready)


def _blocked(task: asyncio.Task[object]) -> bool:
    if task in _SETTLING:
        return True
    waiter = getattr(task, "_fut_waiter", None)  # what the task awaits (anyio reads it too)
    return waiter is not None and not waiter.done()
