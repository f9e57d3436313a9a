"""The ways the upstreams misbehave: each :class:`Scenario` and the :data:`SCENARIOS` by name.

Everything that decides an upstream's answers comes from the ``random.Random`` a scenario's
``make_fate`` is given, so two upstreams given the same seed see the same sequence of faults.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ..._loopback import Reply
from .options import DemoOptions

__all__ = ["SCENARIOS", "Fate", "Scenario"]

# A body long enough that a reset after its first part is a reset in the middle of it.
_BODY = b'{"status": "ok", "padding": "' + b"x" * 2000 + b'"}'
_RESET_AFTER = 512

#: How an upstream answers a request that arrives ``elapsed`` seconds after the load began.
Fate = Callable[[float], Reply]


@dataclass(frozen=True)
class Scenario:
    """One way for the upstreams to misbehave.

    Attributes:
        name: The ``--scenario`` value.
        describe: What the upstream does, for the header of the output.
        make_fate: A new upstream's answering function, drawing from the given random source.
        note: What the standard pipeline can and cannot do about it, ending the takeaway.
        recovers_at: When the upstream is healthy again after an outage (seconds into the
            load), for the scenarios that have one: the demo reports how soon after it each
            client's first success came.
        deadline: How long each caller waits for its answer, in seconds, the same for both
            clients (``None``: as long as the client's own timeouts let it).
    """

    name: str
    describe: Callable[[DemoOptions], str]
    make_fate: Callable[[random.Random, DemoOptions], Fate]
    note: str
    recovers_at: Callable[[DemoOptions], float] | None = None
    deadline: float | None = None


def _jitter(rng: random.Random) -> float:
    return rng.uniform(0.001, 0.006)


def _ok(rng: random.Random) -> Reply:
    return Reply(200, body=_BODY, delay=_jitter(rng))


_FLAKY_UNAVAILABLE = 0.03
_FLAKY_RESETS = 0.01


def _flaky_fate(rng: random.Random, options: DemoOptions) -> Fate:
    def fate(elapsed: float) -> Reply:
        # A few percent of tries fail, as a dependency having a bad day does: enough to hurt
        # every caller of plain httpx, below the 10% at which the standard breaker opens.
        roll = rng.random()
        if roll < _FLAKY_RESETS:
            return Reply(200, body=_BODY, delay=_jitter(rng), reset_after=_RESET_AFTER)
        if roll < _FLAKY_RESETS + _FLAKY_UNAVAILABLE:
            # One 503 in five asks for a pause, as an overloaded server behind a proxy does.
            headers = [("retry-after", "1")] if rng.random() < 0.2 else []
            return Reply(503, headers=headers, body=b"unavailable", delay=_jitter(rng))
        return _ok(rng)

    return fate


def _outage_window(options: DemoOptions) -> tuple[float, float]:
    return 0.3 * options.duration, 0.7 * options.duration


def _outage_fate(rng: random.Random, options: DemoOptions) -> Fate:
    begins, ends = _outage_window(options)

    def fate(elapsed: float) -> Reply:
        if begins <= elapsed < ends:
            return Reply(503, body=b"unavailable", delay=_jitter(rng))
        return _ok(rng)

    return fate


_SLOW_SHARE = 0.10
_SLOW_DELAY = 1.5


def _slow_fate(rng: random.Random, options: DemoOptions) -> Fate:
    def fate(elapsed: float) -> Reply:
        if rng.random() < _SLOW_SHARE:
            return Reply(200, body=_BODY, delay=_SLOW_DELAY)
        return _ok(rng)

    return fate


def _rate_limit(options: DemoOptions) -> int:
    # Below the offered load, so that a client sending as asked is over the limit.
    return max(1, round(0.6 * options.offered_rate))


def _rate_limited_fate(rng: random.Random, options: DemoOptions) -> Fate:
    limit = _rate_limit(options)
    window, used = -1, 0

    def fate(elapsed: float) -> Reply:
        # Fixed one-second windows, the commonest API limit; calls run on the server's single
        # thread, so this state needs no lock.
        nonlocal window, used
        if int(elapsed) != window:
            window, used = int(elapsed), 0
        used += 1
        if used > limit:
            return Reply(429, headers=[("retry-after", "1")], body=b"slow down")
        return _ok(rng)

    return fate


def _outage_end(options: DemoOptions) -> float:
    return _outage_window(options)[1]


_OVERLOAD_WORKERS = 4
_OVERLOAD_SHARE = 0.5
# An overload outlasts the patience of the callers: each waits 1 s for its answer, as in
# benchmarks/overload.py. Without one, a run of 8 s let plain httpx answer every call in the end
# (in 2.4 s at the median, after the load had stopped), which no overload that lasts does.
_OVERLOAD_DEADLINE = 1.0


def _overload_service(options: DemoOptions) -> float:
    # Serving half of what the users offer: twice as many calls arrive as the upstream can take.
    return _OVERLOAD_WORKERS / (_OVERLOAD_SHARE * options.offered_rate)


def _overloaded_fate(rng: random.Random, options: DemoOptions) -> Fate:
    service = _overload_service(options)
    free_at = [0.0] * _OVERLOAD_WORKERS

    def fate(elapsed: float) -> Reply:
        # K workers and a first-come-first-served queue of any length: a request arriving now
        # starts when the first worker is free and occupies it for the service time, whether or
        # not its caller is still waiting by then (the server never notices one who left).
        # Requests arrive one at a time on the server's single thread, so this needs no lock.
        worker = min(range(_OVERLOAD_WORKERS), key=free_at.__getitem__)
        done = max(elapsed, free_at[worker]) + service
        free_at[worker] = done
        return Reply(200, body=_BODY, delay=done - elapsed)

    return fate


def _describe_overloaded(options: DemoOptions) -> str:
    service = _overload_service(options)
    return (
        f"serves {_OVERLOAD_WORKERS} requests at a time, {service * 1000:.0f} ms each "
        f"({_OVERLOAD_WORKERS / service:.0f}/s), first come first served, queueing the rest "
        f"without limit: offered {options.offered_rate:.0f} calls/s, twice what it can take, "
        f"by callers who wait {_OVERLOAD_DEADLINE:g} s for an answer"
    )


def _describe_outage(options: DemoOptions) -> str:
    begins, ends = _outage_window(options)
    return (
        f"healthy, then every request answered 503 from {begins:.1f} s to {ends:.1f} s, "
        "then healthy again"
    )


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "flaky",
            lambda options: (
                f"~{_FLAKY_UNAVAILABLE:.0%} of requests answered 503 (one in five with "
                f"Retry-After: 1), ~{_FLAKY_RESETS:.0%} reset mid-body, 1-6 ms latency"
            ),
            _flaky_fate,
            "",
        ),
        Scenario(
            "outage",
            _describe_outage,
            _outage_fate,
            "In a total outage no retry can succeed until it ends (the calls saved straddled its "
            "edges); what counts is how little extra load the client puts on the dead upstream, "
            "where three attempts per call would triple it.",
            _outage_end,
        ),
        Scenario(
            "slow",
            lambda options: (
                f"~{_SLOW_SHARE:.0%} of requests take {_SLOW_DELAY:g} s, the rest 1-6 ms"
            ),
            _slow_fate,
            "Retries act on failures, and a slow answer is not one: the standard pipeline's "
            "10 s attempt timeout never fires, so the slow tail stays as slow as with plain "
            "httpx. Hedging (a parallel attempt after a delay) is the policy for this; it is "
            "not in the standard pipeline yet.",
        ),
        Scenario(
            "rate-limited",
            lambda options: (
                f"allows {_rate_limit(options)} requests/s (fixed one-second windows), "
                "answers 429 with Retry-After: 1 beyond"
            ),
            _rate_limited_fate,
            "Honouring Retry-After slows the caller down to what the server accepts: calls "
            "succeed later instead of failing now.",
        ),
        Scenario(
            "overloaded",
            _describe_overloaded,
            _overloaded_fate,
            "Past its capacity an upstream only queues: each call it accepts waits behind the "
            "others, and a call retried after a timeout joins the queue again. What helps is to "
            "send it no more than it can serve and to fail the rest at once.",
            deadline=_OVERLOAD_DEADLINE,
        ),
    )
}
