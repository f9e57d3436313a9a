"""Helpers for the Hypothesis state machines that drive the policies from synchronous rules.

Each machine owns an asyncio event loop (:class:`LoopDriver`). Calls in flight are tasks on that
loop; they only advance while the loop runs, i.e. inside :meth:`LoopDriver.run` and
:meth:`LoopDriver.settle`, so a rule can change several things (resolve a call, cancel a task,
move the clock) and then let the loop run until every task is blocked again before the
invariants are checked.
"""

from __future__ import annotations

import asyncio
import enum
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["HeldCall", "LoopDriver", "Status", "step_failed", "task_error"]

# Rounds of the loop a settle may take before it counts as a livelock.
_MAX_SETTLE_ROUNDS = 1_000
# Rounds a settle runs when the loop does not expose its ready queue (not CPython's loop).
_BLIND_SETTLE_ROUNDS = 50
# Real seconds the tasks left at the end get to finish once cancelled.
_CLOSE_TIMEOUT = 1.0


class Status(enum.Enum):
    """Where a call stands, in a machine's model."""

    QUEUED = "queued"  # waiting inside the policy; the dependency not called yet
    RUNNING = "running"  # the dependency was called and has not answered
    REJECTED = "rejected"  # the policy refused it; the dependency never called
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """Whether the call is over (its status cannot change any more)."""
        return self not in (Status.QUEUED, Status.RUNNING)


class LoopDriver:
    """An asyncio event loop owned by one state machine, run a step at a time."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.tasks: list[asyncio.Task[Any]] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion (other tasks advance meanwhile)."""
        return self.loop.run_until_complete(coro)

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start ``coro`` as a task; it runs at the next :meth:`settle`."""
        task = self.loop.create_task(coro)
        self.tasks.append(task)
        return task

    def settle(self) -> None:
        """Let every task run until all of them are blocked (nothing ready to run)."""
        self.run(_settle())

    def close(self) -> None:
        """Cancel whatever still runs, and close the loop."""
        try:
            pending = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
            for task in pending:
                task.cancel()
            stuck: set[asyncio.Task[Any]] = set()
            if pending:
                # Nothing here waits on real time, so this only waits if a task ignores its
                # cancellation (swallows it and blocks again): fail rather than hang.
                _, stuck = self.run(asyncio.wait(pending, timeout=_CLOSE_TIMEOUT))
            for task in self.tasks:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved, so asyncio does not log it
            self.run(self.loop.shutdown_asyncgens())
            if stuck and not step_failed():
                raise AssertionError(f"{len(stuck)} task(s) ignored their cancellation: {stuck}")
        finally:
            self.loop.close()


async def _settle() -> None:
    loop = asyncio.get_running_loop()
    # CPython's loop keeps the callbacks due to run in ``_ready``. Seen empty from here (between
    # two of our own yields), no other task has anything to do: they all wait on futures that
    # only the machine (or the fake clock, which the machine moves) can resolve.
    ready = getattr(loop, "_ready", None)
    if ready is None:
        for _ in range(_BLIND_SETTLE_ROUNDS):
            await asyncio.sleep(0)
        return
    for _ in range(_MAX_SETTLE_ROUNDS):
        await asyncio.sleep(0)
        if not ready:
            return
    raise AssertionError(f"the event loop did not settle in {_MAX_SETTLE_ROUNDS} rounds")


class HeldCall:
    """A dependency call that waits until the machine resolves its future.

    ``started`` says whether the policy called it; ``ended`` whether it has returned or raised
    (cancellation included).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, ident: int) -> None:
        self.ident = ident
        self.future: asyncio.Future[int] = loop.create_future()
        self.started = False
        self.ended = False

    async def __call__(self) -> int:
        self.started = True
        try:
            return await self.future
        finally:
            self.ended = True

    def resolve(self, ok: bool) -> None:
        """Make the call return its ident, or raise :class:`ConnectionError` (a failure)."""
        if ok:
            self.future.set_result(self.ident)
        else:
            self.future.set_exception(ConnectionError(f"call {self.ident} failed"))
            # Marked as retrieved: if a (faulty) policy never called the dependency, asyncio
            # would log the unawaited exception on top of the test's own failure.
            self.future.exception()


def task_error(task: asyncio.Task[Any], where: str = "") -> BaseException | None:
    """The exception a finished, not cancelled task raised (``None`` if it returned)."""
    assert task.done(), f"{where}: the task is still running"
    assert not task.cancelled(), f"{where}: the task was cancelled"
    return task.exception()


def step_failed() -> bool:
    """Whether a rule or invariant has just failed, seen from a machine's ``teardown``.

    Hypothesis calls ``teardown`` in a ``finally`` clause, so a failure is still being raised
    then. A teardown check that failed too would replace it in the report (and make Hypothesis
    shrink towards a different error), so checks at teardown run only on a run that passed.
    """
    return sys.exc_info()[1] is not None
