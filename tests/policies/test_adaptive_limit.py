from __future__ import annotations

import pickle
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from httpx_resilience import (
    AdaptiveLimiter,
    ConcurrencyLimitRejected,
    Context,
    Pipeline,
    ResilienceEvent,
    TimeoutRejected,
)
from httpx_resilience.http._errors import as_httpx_error
from httpx_resilience.policies.adaptive_limit import _overload, _Partition
from httpx_resilience.profiles import AdaptiveLimitOptions, Profile
from httpx_resilience.testing import FakeClock

from ._upstream_sim import simulate

pytestmark = pytest.mark.anyio

K, S = 4, 0.05  # the simulated upstream: 4 workers, 50 ms each (80 requests/s)


def limiter(clock: FakeClock, **options: Any) -> AdaptiveLimiter:
    return AdaptiveLimiter(key=None, clock=clock, **options)


# -- against a simulated queueing upstream ------------------------------------------------------


@pytest.mark.parametrize("load", [3, 10])
async def test_the_limit_converges_to_the_upstreams_concurrency(load: float) -> None:
    clock = FakeClock(autojump=False)
    policy = limiter(clock)
    run = await simulate(policy, clock, servers=K, service=S, load=load, duration=5)
    # From 20 down to a few calls above the 4 workers: the queue the limit keeps is short.
    low, high = run.limit_range(3.0)
    assert low > K
    assert high <= 2 * K + 1
    assert run.goodput(3.0) >= 0.95  # the upstream stays busy
    assert run.p99(3.0) <= 4 * S  # and answers without a long queue
    assert run.p50_fail() < 0.001  # the excess fails at once
    assert run.upstream_requests / (len(run.answers) + len(run.failures)) < 1 / load + 0.05


async def test_the_limit_follows_a_capacity_halving() -> None:
    clock = FakeClock(autojump=False)
    policy = limiter(clock)
    run = await simulate(
        policy, clock, servers=K, service=S, load=3, duration=8, changes=[(4.0, K // 2)]
    )
    assert run.time_to_reach(4.0, K // 2 + 4) <= 1.0
    low, high = run.limit_range(5.0)
    assert low > K // 2
    assert high <= K // 2 + 4
    assert run.goodput(5.0, capacity=K // 2 / S) >= 0.95
    assert run.p99(5.0) <= 4 * S


async def test_at_half_capacity_nothing_is_refused_and_the_limit_stays() -> None:
    clock = FakeClock(autojump=False)
    policy = limiter(clock)
    run = await simulate(policy, clock, servers=K, service=S, load=0.5, duration=3)
    assert run.failures == []
    assert run.limit_range(0.0) == (20, 20)  # never in use: nothing to learn
    assert run.p99() == pytest.approx(S, abs=0.001)  # to the simulator's tick


async def test_the_limit_never_exceeds_max_limit() -> None:
    clock = FakeClock(autojump=False)
    policy = limiter(clock, initial_limit=2, max_limit=6)
    # 40 workers: no queue ever, so the limit wants to grow without end.
    run = await simulate(policy, clock, servers=40, service=S, load=3, duration=3)
    assert max(limit for _, limit in run.limits) == 6
    assert run.goodput() == pytest.approx(6 / S / (40 / S), abs=0.02)


async def test_the_limit_never_drops_below_min_limit() -> None:
    clock = FakeClock(autojump=False)
    policy = limiter(clock, min_limit=5, initial_limit=5, max_queue=0)
    # One worker at 10x: the queue estimate says shrink, all the time.
    run = await simulate(policy, clock, servers=1, service=S, load=10, duration=3)
    assert min(limit for _, limit in run.limits) == 5


async def test_calls_slow_by_nature_are_not_read_as_a_queue() -> None:
    """100 calls a second to a dependency with no queue, one in ten slow by nature (1.5 s, a
    report endpoint) and the rest 5 to 10 ms (a busy machine's jitter). The slow calls hold
    about 15 permits but finish few calls; read as a queue, they and the jitter held the limit
    below what they needed, and calls queued behind them (the demo's slow scenario refused 385
    to 489 of 800). Counting the calls that finish, not the permits held, nothing waits."""
    clock = FakeClock()
    policy = limiter(clock)
    pipeline = Pipeline([policy])
    fast = [0.005, 0.008, 0.006, 0.010, 0.007, 0.009]  # cycled: the fastest round trip is 5 ms
    latencies: list[float] = []
    limits: list[int] = []

    async def call(number: int) -> None:
        await clock.sleep(1.5 if number % 10 == 0 else fast[number % len(fast)])

    async def caller(number: int) -> None:
        began = clock.monotonic()
        await pipeline.execute(lambda: call(number), Context(deadline=began + 30.0))
        if number % 10:
            latencies.append(clock.monotonic() - began)

    async with anyio.create_task_group() as tg:
        for number in range(1000):
            tg.start_soon(caller, number)
            await clock.sleep(0.01)
            limits.append(policy.limit())
    assert max(latencies) == pytest.approx(0.010)  # no fast call waited for a permit
    # In use (at least half of it in flight), it grew: the slow calls never filled it.
    assert min(limits[200:]) >= 20
    assert policy.occupancy() == (0, 0)


async def test_a_limit_cut_below_its_initial_value_grows_back_without_being_filled() -> None:
    """A burst into a busy process makes every round trip ten times the baseline, and the limit
    falls. Afterwards one caller at a time cannot fill even the lower limit, yet its answers,
    back at the baseline, bring the limit back up to its initial value, and no higher."""
    clock = FakeClock()
    policy = limiter(clock, initial_limit=10)
    pipeline = Pipeline([policy])

    async def calls(callers: int, each: int, seconds: float) -> None:
        async def caller() -> None:
            for _ in range(each):
                await pipeline.execute(lambda: clock.sleep(seconds))

        async with anyio.create_task_group() as tg:
            for _ in range(callers):
                tg.start_soon(caller)

    await calls(10, 1, 0.01)  # the baseline: 10 ms
    await calls(10, 3, 0.1)  # the burst: ten times that, the limit in use
    cut = policy.limit()
    assert cut < 10
    await calls(1, 5 * (10 - cut), 0.01)  # one caller: never half the limit in flight
    assert policy.limit() == 10
    await calls(1, 50, 0.01)
    assert policy.limit() == 10  # not in use: no evidence for more


# -- permits, queue and priorities ---------------------------------------------------------------


class Held:
    """Calls that block until released."""

    def __init__(self) -> None:
        self.inside: list[str] = []
        self.release: dict[str, anyio.Event] = {}

    def call(self, name: str, result: Any = "ok") -> Any:
        self.release[name] = anyio.Event()

        async def run() -> Any:
            self.inside.append(name)
            try:
                await self.release[name].wait()
            finally:
                self.inside.remove(name)
            if isinstance(result, BaseException):
                raise result
            return result

        return run


async def settle() -> None:
    for _ in range(10):
        await anyio.lowlevel.checkpoint()


async def test_full_limit_queues_then_rejects_with_an_event() -> None:
    clock = FakeClock(autojump=False)
    events: list[ResilienceEvent] = []
    policy = limiter(clock, initial_limit=2, max_queue=1)
    pipeline = Pipeline.builder(clock=clock, listeners=[events.append]).add(policy).build()
    held = Held()
    async with anyio.create_task_group() as tg:
        for name in "abc":
            tg.start_soon(pipeline.execute, held.call(name))
            await settle()
        assert policy.occupancy() == (2, 1)
        with pytest.raises(ConcurrencyLimitRejected) as caught:
            await pipeline.execute(held.call("d"))
        assert "2 of 2 calls in flight, 1 of 1 queued" in str(caught.value)
        assert caught.value.retry_after is None  # nothing measured yet
        held.release["a"].set()
        await settle()
        assert held.inside == ["b", "c"]  # the permit went to the waiter
        held.release["b"].set()
        held.release["c"].set()
    assert policy.occupancy() == (0, 0)
    (event,) = [e for e in events if e.name == "concurrency_limited"]
    assert event.detail == {
        "reason": "full",
        "priority": "default",
        "limit": 2,
        "in_flight": 2,
        "queued": 1,
    }


async def test_a_burst_of_callers_the_dependency_drains_is_queued_not_refused() -> None:
    """200 callers start at once, each making 3 calls one after the other (a batch job): far
    more than the limit of 4, but the queue does not grow after the burst (each caller waits
    for its call before the next), so every call waits its turn and none is refused."""
    clock = FakeClock()
    policy = limiter(clock, initial_limit=4, max_limit=4)
    pipeline = Pipeline([policy])
    done: list[int] = []

    async def call() -> None:
        await clock.sleep(0.01)

    async def caller(number: int) -> None:
        for _ in range(3):
            await pipeline.execute(call, Context(deadline=clock.monotonic() + 30.0))
            done.append(number)

    async with anyio.create_task_group() as tg:
        for number in range(200):
            tg.start_soon(caller, number)
    assert len(done) == 600
    # 4 at a time, 10 ms each: the queue drained at the limit's pace, to the tick.
    assert clock.monotonic() == pytest.approx(600 / 4 * 0.01)
    assert policy.occupancy() == (0, 0)


async def test_a_burst_offered_before_any_answer_is_not_taken_for_an_overload() -> None:
    """300 calls arrive over 0.75 s, before the first of them has answered (1 s each): every
    window of 0.1 s so far saw calls offered and none completed, hot windows for longer than
    half a second, as when 500 callers start at once on a busy event loop. The queue has not
    moved yet, so it is no overload: every call waits its turn, and all are answered."""
    clock = FakeClock()
    policy = limiter(clock, initial_limit=4, max_limit=4)
    pipeline = Pipeline([policy])
    answered: list[float] = []

    async def call() -> None:
        await clock.sleep(1.0)

    async def caller() -> None:
        await pipeline.execute(call, Context(deadline=clock.monotonic() + 120.0))
        answered.append(clock.monotonic())

    async with anyio.create_task_group() as tg:
        for _ in range(300):
            tg.start_soon(caller)
            await clock.sleep(0.0025)
    assert len(answered) == 300
    # 4 at a time, in chains begun 2.5 ms apart: the last ends 3 x 2.5 ms after 75 rounds.
    assert max(answered) == pytest.approx(300 / 4 * 1.0 + 3 * 0.0025)
    assert policy.occupancy() == (0, 0)


@pytest.mark.parametrize(
    ("hot", "streak", "lag", "cpu", "overloaded"),
    [
        (5, 0.5, 0.004, 0.7, True),  # hot for 0.5 s, a loop that keeps up (4 % of a trip)
        (4, 0.4, 0.004, 0.7, False),  # hot for 0.4 s: a burst that may yet drain
        (1, 0.5, 0.004, 0.7, False),  # the last window was the first hot one
        (5, 0.5, 0.006, 0.7, False),  # the loop takes 6 % of a trip: the process is the bottleneck
        (5, 0.5, -1.0, 0.7, False),  # the queue has not moved yet: no delay measured
        (5, 0.5, 0.004, 0.8, False),  # the process used 0.8 of a CPU over the hot windows: busy
    ],
)
def test_an_overload_needs_hot_windows_for_half_a_second_and_a_process_that_keeps_up(
    hot: int, streak: float, lag: float, cpu: float, overloaded: bool
) -> None:
    clock = FakeClock()
    partition = _Partition(None, 10.0, clock.monotonic, clock.process_time, 0.75)
    partition.hot, partition.lag, partition.last_rtt = hot, lag, 0.1
    partition.window_start = partition.hot_since + streak
    partition.window_cpu = partition.hot_cpu + cpu * streak
    assert _overload(partition) is overloaded


async def test_an_overload_cuts_the_queue_and_refuses_the_excess_at_once() -> None:
    """More calls offered than completed in windows in a row (0.1 s each here) for 0.5 s: the
    queue is cut to half the limit, the newest waiters refused, and new calls beyond it refused
    at once, with the reason in the event. Shorter, it is a burst: nothing is refused."""
    clock = FakeClock(autojump=False)
    events: list[ResilienceEvent] = []
    policy = limiter(clock, initial_limit=2)
    pipeline = Pipeline.builder(clock=clock, listeners=[events.append]).add(policy).build()
    held = Held()
    outcomes: dict[str, str] = {}

    async def offer(name: str) -> None:
        try:
            await pipeline.execute(held.call(name))
        except ConcurrencyLimitRejected as exc:
            outcomes[name] = str(exc)
        else:
            outcomes[name] = "answered"

    async with anyio.create_task_group() as tg:
        for name in "abcdefghi":  # 2 in flight, 7 queued: the first window's burst
            tg.start_soon(offer, name)
            await settle()
        assert policy.occupancy() == (2, 7)
        # a ends (without a round trip: its call took no time on the clock) and c gets its
        # permit: the queue has moved, which also tells how fast this event loop runs a woken
        # task.
        held.release["a"].set()
        await settle()
        assert policy.occupancy() == (2, 6)
        # Three calls offered and none completed in each of the next four windows: hot, but
        # for 0.4 s only, still queued.
        for window, names in enumerate(["jkl", "mno", "pqr", "stu"], start=1):
            clock.advance(0.1)
            for name in names:
                tg.start_soon(offer, name)
                await settle()
            assert policy.occupancy() == (2, 6 + 3 * window)
        assert outcomes == {"a": "answered"}  # nothing refused
        clock.advance(0.1)
        tg.start_soon(offer, "v")  # closes the fifth hot window, 0.5 s in: an overload
        await settle()
        # The queue is cut to 1 (half the limit of 2): d, the oldest waiter, keeps its place.
        assert policy.occupancy() == (2, 1)
        cut = [n for n, o in outcomes.items() if "cut its queue to 1" in o]
        assert sorted(cut) == list("efghijklmnopqrstu")
        assert "more calls come than complete" in outcomes["v"]
        for name in "bcd":
            held.release[name].set()
            await settle()
    assert [outcomes[n] for n in "abcd"] == ["answered"] * 4
    reasons = [e.detail["reason"] for e in events if e.name == "concurrency_limited"]
    # v is refused as it arrives; the waiters cut from the queue as they wake, after it.
    assert reasons == ["full"] + ["overload"] * 17


async def _burst_then_hot_windows(
    clock: FakeClock, windows: list[str], *, quiet: float = 0.0
) -> tuple[tuple[int, int], dict[str, str]]:
    """Nothing offered for ``quiet`` seconds, then a burst of 9 calls at a limit of 2 (2 in
    flight, 7 queued), the first answered (the queue moves), then a window of 0.1 s offering
    the calls named by each of ``windows``. Returns the occupancy at the end and how each call
    had ended ("answered" or "refused"); the calls still held are then cancelled."""
    policy = limiter(clock, initial_limit=2)
    pipeline = Pipeline([policy])
    held = Held()
    outcomes: dict[str, str] = {}

    async def offer(name: str) -> None:
        try:
            await pipeline.execute(held.call(name))
        except ConcurrencyLimitRejected:
            outcomes[name] = "refused"
        else:
            outcomes[name] = "answered"

    async with anyio.create_task_group() as tg:
        clock.advance(quiet)
        for name in "abcdefghi":
            tg.start_soon(offer, name)
            await settle()
        held.release["a"].set()
        await settle()
        for names in windows:
            clock.advance(0.1)
            for name in names:
                tg.start_soon(offer, name)
                await settle()
        occupancy = policy.occupancy()
        tg.cancel_scope.cancel()
    assert policy.occupancy() == (0, 0)  # the cancelled calls hold nothing
    return occupancy, outcomes


async def test_a_quiet_window_ended_by_a_burst_counts_for_its_length_only() -> None:
    """A window lasts until a call queues. Three quiet seconds ended by a burst (the calls a
    pacing gate held, let go at once) are one hot window of a round trip, not three seconds of
    them: two windows later nothing is refused."""
    occupancy, outcomes = await _burst_then_hot_windows(
        FakeClock(autojump=False), ["jkl", "mno"], quiet=3.0
    )
    assert occupancy == (2, 12)
    assert outcomes == {"a": "answered"}


@pytest.mark.parametrize(("share", "refused"), [(0.9, 0), (0.7, 20)])
async def test_a_process_that_uses_most_of_a_cpu_is_not_told_an_overload(
    share: float, refused: int
) -> None:
    """Hot windows for half a second, in a process that used 0.9 of a CPU meanwhile: its own
    delay may be what keeps the calls from completing, so nothing is refused; they wait. At
    0.7 the same run is an overload: 17 waiters cut, and the 3 calls after refused at once."""
    clock = FakeClock(autojump=False)
    clock.cpu_share = share
    _, outcomes = await _burst_then_hot_windows(clock, ["jkl", "mno", "pqr", "stu", "vwx"])
    assert list(outcomes.values()).count("refused") == refused


async def test_a_queued_wait_never_runs_past_the_deadline() -> None:
    clock = FakeClock()
    policy = limiter(clock, initial_limit=2, max_queue=5)
    pipeline = Pipeline([policy])
    held = Held()
    async with anyio.create_task_group() as tg:
        for name in "ab":
            tg.start_soon(pipeline.execute, held.call(name))
        await settle()
        context = Context(deadline=clock.monotonic() + 0.5)
        with pytest.raises(ConcurrencyLimitRejected, match="no free permit in time"):
            await pipeline.execute(held.call("c"), context)
        assert clock.monotonic() == 0.5
        held.release["a"].set()
        held.release["b"].set()
    assert policy.occupancy() == (0, 0)


async def test_sheddable_calls_are_shed_first_and_critical_ones_queue_first() -> None:
    clock = FakeClock(autojump=False)
    policy = limiter(clock, initial_limit=4, max_queue=4, sheddable_share=0.5)
    pipeline = Pipeline([policy])
    held = Held()
    async with anyio.create_task_group() as tg:
        for name in ("a", "b"):
            tg.start_soon(pipeline.execute, held.call(name))
        await settle()
        # Half the limit in flight: sheddable work is refused, default work still gets in.
        with pytest.raises(ConcurrencyLimitRejected, match="sheds sheddable"):
            await pipeline.execute(held.call("s"), priority="sheddable")
        for name in ("c", "d"):
            tg.start_soon(pipeline.execute, held.call(name))
        await settle()
        # Full: default calls queue, a critical one goes ahead of them.
        tg.start_soon(pipeline.execute, held.call("e"))
        await settle()
        tg.start_soon(lambda: pipeline.execute(held.call("crit"), priority="critical"))
        await settle()
        assert policy.occupancy() == (4, 2)
        held.release["a"].set()
        await settle()
        assert held.inside[-1] == "crit"
        for name in ("b", "c", "d", "e", "crit"):
            held.release[name].set()
    assert policy.occupancy() == (0, 0)


async def test_refusals_and_other_failures_leave_the_limit_alone() -> None:
    """A 429 or 503 comes back fast however long the dependency's queue, and a flaky
    dependency's random 503s would cut the limit to nothing: they are neither samples nor
    drops (the pacing gate, the retry and the breaker deal with them); nor is an exception."""
    clock = FakeClock(autojump=False)
    policy = limiter(clock, initial_limit=2)
    pipeline = Pipeline([policy])

    def answer(status: int) -> Any:
        async def call() -> httpx.Response:
            await anyio.lowlevel.checkpoint()
            return httpx.Response(status)

        return call

    for status in (503, 429) * 3:
        async with anyio.create_task_group() as tg:  # two in flight: the limit is in use
            for _ in range(2):
                tg.start_soon(pipeline.execute, answer(status))
    partition = policy.describe()["state"]["partitions"][""]
    assert (partition["limit"], partition["baseline_rtt"]) == (2, None)  # no sample either

    async def refused() -> None:
        raise ConnectionError("refused")

    for _ in range(3):
        with pytest.raises(ConnectionError):
            await pipeline.execute(refused)
    assert policy.limit() == 2
    assert policy.occupancy() == (0, 0)


async def test_an_attempt_timeout_inside_is_a_drop() -> None:
    clock = FakeClock()
    policy = limiter(clock, initial_limit=1, backoff_ratio=0.5, min_limit=1)
    pipeline = Pipeline.builder(clock=clock).add(policy).timeout(0.1).build()

    async def slow() -> None:
        await clock.sleep(1.0)

    # in_use: 1 in flight of a limit of 1.
    with pytest.raises(TimeoutRejected):
        await pipeline.execute(slow)
    assert policy.describe()["state"]["partitions"][""]["limit"] == 1  # held at min_limit
    policy = limiter(clock, initial_limit=4, backoff_ratio=0.5)
    pipeline = Pipeline.builder(clock=clock).add(policy).timeout(0.1).build()

    async def timed_out() -> None:
        with pytest.raises(TimeoutRejected):
            await pipeline.execute(slow)

    async with anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(timed_out)
    # Two timeouts at 2 of 4 in flight, then 1 of 2: 4 -> 2 -> 1.
    assert policy.limit() == 1


# -- the rejection, options, describe, partitions, profiles ---------------------------------------


def test_the_rejection_is_an_httpx_transport_error_and_pickles() -> None:
    exc = ConcurrencyLimitRejected("the adaptive limit is reached", retry_after=0.01)
    converted = as_httpx_error(exc, httpx.Request("GET", "https://a.example/"))
    assert isinstance(converted, ConcurrencyLimitRejected)
    assert httpx.TransportError in type(converted).__mro__
    copy = pickle.loads(pickle.dumps(exc))
    assert (str(copy), copy.retry_after) == ("the adaptive limit is reached", 0.01)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_limit": 0}, "AdaptiveLimiter: min_limit must be"),
        ({"min_limit": 5, "max_limit": 4}, "min_limit must be at most max_limit (4)"),
        ({"initial_limit": 50, "max_limit": 10}, "initial_limit must be between min_limit"),
        ({"max_queue": -1}, "max_queue"),
        ({"backoff_ratio": 2}, "backoff_ratio"),
        ({"key": "origin"}, "key must be a function of the context, got 'origin'"),
    ],
)
def test_bad_options_name_the_option_and_value(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AdaptiveLimiter(**options)


async def test_partitioned_by_origin_by_default_and_described() -> None:
    policy = AdaptiveLimiter()
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    from httpx_resilience import ResilientClient

    async with ResilientClient(pipeline=Pipeline([policy]), transport=transport) as client:
        await client.get("https://a.example/x")
        await client.get("http://b.example:8080/y")
    state = policy.describe()["state"]["partitions"]
    assert set(state) == {"https://a.example:443", "http://b.example:8080"}
    assert state["https://a.example:443"]["limit"] == 20
    assert state["https://a.example:443"]["in_flight"] == 0
    assert policy.describe()["options"]["key"] == "by_origin"


def test_a_profile_builds_an_adaptive_limit_per_origin() -> None:
    profile = Profile(adaptive_limit=AdaptiveLimitOptions(max_limit=50, max_queue=2))
    (policy,) = profile.build().policies
    assert isinstance(policy, AdaptiveLimiter)
    assert policy.describe()["options"]["key"] == "by_origin"
    assert policy.describe()["options"]["max_limit"] == 50


async def test_the_opentelemetry_listener_records_the_limit() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from httpx_resilience.telemetry import OpenTelemetryListener

    reader = InMemoryMetricReader()
    otel = OpenTelemetryListener(meter_provider=MeterProvider(metric_readers=[reader]))
    clock = FakeClock(autojump=False)
    policy = limiter(clock, initial_limit=1, max_queue=0)
    pipeline = Pipeline.builder(clock=clock, listeners=[otel]).add(policy).build()
    held = Held()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.execute, held.call("a"))
        await settle()
        with pytest.raises(ConcurrencyLimitRejected):
            await pipeline.execute(held.call("b"))
        held.release["a"].set()
    points = {
        metric.name: [p.value for p in metric.data.data_points]  # type: ignore[union-attr]
        for resource in reader.get_metrics_data().resource_metrics  # type: ignore[union-attr]
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name.startswith("resilience.httpx.concurrency.")
    }
    assert points["resilience.httpx.concurrency.limit"] == [1]
    assert points["resilience.httpx.concurrency.in_flight"] == [1]
    assert points["resilience.httpx.concurrency.queued"] == [0]


async def test_a_critical_call_takes_the_place_of_the_newest_queued_one() -> None:
    clock = FakeClock(autojump=False)
    policy = limiter(clock, initial_limit=2, max_queue=1)
    pipeline = Pipeline([policy])
    held = Held()
    outcomes: dict[str, str] = {}

    async def run(name: str, priority: Any = "default") -> None:
        try:
            outcomes[name] = await pipeline.execute(held.call(name), priority=priority)
        except ConcurrencyLimitRejected as exc:
            outcomes[name] = str(exc)

    async with anyio.create_task_group() as tg:
        for name in "abc":
            tg.start_soon(run, name)
            await settle()
        tg.start_soon(run, "crit", "critical")
        await settle()
        assert outcomes == {
            "c": "the adaptive limit gave this call's place in its queue to a critical call"
        }
        tg.start_soon(run, "crit2", "critical")  # the queue holds only critical calls: refused
        await settle()
        assert "crit2" in outcomes
        for name in ("a", "b"):
            held.release[name].set()
        await settle()
        held.release["crit"].set()
    assert outcomes["crit"] == "ok"
    assert policy.occupancy() == (0, 0)


async def test_over_http_the_rejection_is_an_httpx_transport_error() -> None:
    release = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "a.example":
            await release.wait()
        return httpx.Response(200)

    from httpx_resilience import ResilientClient

    pipeline = Pipeline([AdaptiveLimiter(initial_limit=1, max_queue=0)])
    transport = httpx.MockTransport(handler)
    async with (
        ResilientClient(pipeline=pipeline, transport=transport) as client,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(client.get, "https://a.example/")
        await settle()
        with pytest.raises(httpx.TransportError) as caught:
            await client.get("https://a.example/")
        assert isinstance(caught.value, ConcurrencyLimitRejected)
        assert caught.value.request.url == "https://a.example/"
        # Another origin has a limit of its own.
        assert (await client.get("https://b.example/")).status_code == 200
        release.set()


async def test_limit_changed_is_emitted_at_most_once_a_second_and_never_lost() -> None:
    clock = FakeClock()
    events: list[ResilienceEvent] = []
    policy = limiter(clock, initial_limit=2)
    pipeline = Pipeline.builder(clock=clock, listeners=[events.append]).add(policy).build()

    async def quick() -> None:
        await clock.sleep(0.1)  # always the baseline round trip: the limit grows while in use

    async def caller(rounds: int) -> None:
        for _ in range(rounds):
            await pipeline.execute(quick)

    async def at_once(callers: int, rounds: int) -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(callers):
                tg.start_soon(caller, rounds)

    # A move per round of 5 samples: 2 -> 4 at 0.3 s, told; 4 callers then fill the limit and
    # move it 4 -> 6 at 0.5 s, held back (less than a second later).
    await at_once(2, 3)
    await at_once(4, 2)
    told = [(round(e.timestamp, 9), e.detail["previous"], e.detail["limit"]) for e in events]
    assert told == [(0.3, 2, 4)]
    assert policy.limit() == 6
    await clock.sleep(1.0)
    await at_once(2, 1)  # the next answer after the interval tells the move held back
    assert [(e.detail["previous"], e.detail["limit"]) for e in events] == [(2, 4), (4, 6)]


async def test_a_waiter_does_not_get_in_past_a_limit_that_shrank() -> None:
    clock = FakeClock(autojump=False)
    policy = limiter(clock, initial_limit=4, max_queue=2, backoff_ratio=0.5)
    pipeline = Pipeline([policy])
    held = Held()

    async def timing_out(name: str) -> None:
        with pytest.raises(TimeoutRejected):
            await pipeline.execute(held.call(name, TimeoutRejected("late", timeout=1.0)))

    async with anyio.create_task_group() as tg:
        for name in "abcdef":
            tg.start_soon(timing_out, name)
            await settle()
        assert policy.occupancy() == (4, 2)
        held.release["a"].set()  # a timeout with the limit in use: 4 -> 2
        await settle()
        assert policy.limit() == 2
        assert policy.occupancy() == (3, 2)  # nobody let in: 3 still in flight of 2
        for name in "bcdef":
            held.release[name].set()
            await settle()
    assert policy.occupancy() == (0, 0)
