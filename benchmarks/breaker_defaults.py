"""How the circuit breaker's settings behave on noise and on an outage: the figures behind the
standard pipeline's breaker numbers (see DESIGN.md, "standard pipeline").

Each case drives a :class:`~httpx_resilience.CircuitBreaker` on a
:class:`~httpx_resilience.testing.FakeClock` with a seeded stream of calls (``--rate`` calls a
second, as 40 loopback callers make), so the figures are exact and repeatable:

- **noise**: the dependency fails a steady share of calls at random (8 %, 20 %) for
  ``--seconds``; the figure is the share of seeds in which the breaker opened at all (it should
  not: retries absorb such a rate, and an open breaker refuses every call for its break);
- **outage**: every call fails from t = 0 until the dependency returns after ``outage`` seconds;
  the figures are the calls it took to open, and how long after the return the first call got
  through again (a fixed break against one that starts short and doubles).

No timing of the machine is measured and nothing asserts: ``--quick`` only checks that it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from dataclasses import dataclass

from httpx_resilience import BrokenCircuitError, CircuitBreaker, Context
from httpx_resilience.testing import FakeClock


@dataclass(frozen=True)
class Setting:
    """One set of breaker numbers."""

    name: str
    failure_ratio: float
    minimum_throughput: int
    break_duration: float
    break_duration_max: float | None = None
    sampling_duration: float = 30.0

    def breaker(self, clock: FakeClock) -> CircuitBreaker:
        return CircuitBreaker(
            failure_ratio=self.failure_ratio,
            minimum_throughput=self.minimum_throughput,
            sampling_duration=self.sampling_duration,
            break_duration=self.break_duration,
            break_duration_max=self.break_duration_max,
            clock=clock,
        )


SETTINGS = (
    Setting("before: 0.1 / 100, break 5 s", 0.1, 100, 5.0),
    Setting("0.25 / 100, break 0.5 s doubling to 5 s", 0.25, 100, 0.5, 5.0),
    Setting("0.3 / 100, break 0.5 s doubling to 5 s", 0.3, 100, 0.5, 5.0),
    Setting("0.3 / 100, break 0.5 s doubling to 1 s", 0.3, 100, 0.5, 1.0),
    Setting("standard: 0.3 / 100, break 0.5 s", 0.3, 100, 0.5),
    Setting("0.5 / 100, break 0.5 s doubling to 30 s", 0.5, 100, 0.5, 30.0),
    Setting("0.5 / 100, window 20 s, break 0.5 s doubling to 5 s", 0.5, 100, 0.5, 5.0, 20.0),
    Setting("0.5 / 100, break 0.5 s doubling to 5 s", 0.5, 100, 0.5, 5.0),
)


class _Failed(Exception):
    pass


async def _succeed() -> None:
    return None


async def _fail() -> None:
    raise _Failed


async def _call(breaker: CircuitBreaker, failing: bool) -> str:
    """One call through ``breaker``: "ok", "failed" or "refused"."""
    try:
        await breaker.execute(lambda _c: _fail() if failing else _succeed(), Context())
    except BrokenCircuitError:
        return "refused"
    except _Failed:
        return "failed"
    return "ok"


async def noise(setting: Setting, share: float, seed: int, rate: float, seconds: float) -> bool:
    """Whether the breaker opened under a steady ``share`` of failures."""
    clock = FakeClock(autojump=False)
    breaker = setting.breaker(clock)
    rng = random.Random(seed)
    for _ in range(int(rate * seconds)):
        clock.advance(1 / rate)
        if await _call(breaker, rng.random() < share) == "refused":
            return True
    return False


async def outage(setting: Setting, length: float, rate: float) -> tuple[int, float | None]:
    """Calls until the breaker opened, and seconds from the return to the first call through."""
    clock = FakeClock(autojump=False)
    breaker = setting.breaker(clock)
    calls_to_open = -1
    n = 0
    while clock.monotonic() < length + 60.0:
        clock.advance(1 / rate)
        n += 1
        now = clock.monotonic()
        result = await _call(breaker, now < length)
        if result == "refused" and calls_to_open < 0:
            calls_to_open = n
        if result == "ok":
            return calls_to_open, now - length
    return calls_to_open, None


async def warm_outage(setting: Setting, rate: float) -> float:
    """Seconds from the start of an outage to the first refusal, after a full window of
    healthy traffic (the breaker of a service that has been running a while)."""
    clock = FakeClock(autojump=False)
    breaker = setting.breaker(clock)
    for _ in range(int(rate * setting.sampling_duration)):
        clock.advance(1 / rate)
        await _call(breaker, False)
    start = clock.monotonic()
    while await _call(breaker, True) != "refused":
        clock.advance(1 / rate)
    return clock.monotonic() - start


async def main(args: argparse.Namespace) -> None:
    seeds = range(args.seeds)
    print(
        f"noise: {args.rate:g} calls/s for {args.seconds:g} s, {args.seeds} seeds; "
        f"outage: {args.rate:g} calls/s"
    )
    for setting in SETTINGS:
        print(f"\n{setting.name}")
        for share in (0.08, 0.2, 0.3):
            opened = [await noise(setting, share, s, args.rate, args.seconds) for s in seeds]
            print(f"  steady {share:.0%} failures: opened in {sum(opened)} of {len(opened)} seeds")
        print(
            f"  outage after {setting.sampling_duration:g} s of health: opened after "
            f"{await warm_outage(setting, args.rate):.2f} s"
        )
        for length in (3.0, 10.0, 60.0):
            calls, back = await outage(setting, length, args.rate)
            after = "never" if back is None else f"{back:.2f} s"
            print(
                f"  {length:g} s outage: opened after {calls} calls, "
                f"first call through {after} after the return"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1700.0, help="calls a second")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of a noise run")
    parser.add_argument("--seeds", type=int, default=20, help="noise runs per case")
    parser.add_argument("--quick", action="store_true", help="a tiny run: checks it works")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.rate, arguments.seconds, arguments.seeds = 200.0, 1.0, 2
    asyncio.run(main(arguments))
