"""AdaptiveThrottler: the SRE book's client-side throttling, on a FakeClock with seeded draws."""

from __future__ import annotations

import itertools
import pickle
import random
from typing import Any

import anyio
import httpx
import pytest

from httpx_resilience import (
    AdaptiveThrottler,
    BulkheadRejected,
    Context,
    Pipeline,
    Profile,
    ResilienceError,
    ResilienceEvent,
    ResilientClient,
    ThrottleRejected,
    by_origin,
)
from httpx_resilience.http._errors import as_httpx_error
from httpx_resilience.priority import Priority
from httpx_resilience.profiles import AdaptiveThrottleOptions, Registry
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio


class Upstream:
    """A dependency that accepts at most ``capacity`` calls in each second of virtual time and
    fails the rest (as a server answering 503 or 429 beyond what it can serve)."""

    def __init__(self, clock: FakeClock, capacity: int | None) -> None:
        self.clock = clock
        self.capacity = capacity
        self.received: dict[int, int] = {}
        self.accepted: dict[int, int] = {}

    async def __call__(self) -> str:
        second = int(self.clock.monotonic())
        self.received[second] = self.received.get(second, 0) + 1
        if self.capacity is not None and self.accepted.get(second, 0) >= self.capacity:
            raise ConnectionError("overloaded")
        self.accepted[second] = self.accepted.get(second, 0) + 1
        return "ok"


async def offer(
    pipeline: Pipeline,
    upstream: Upstream,
    clock: FakeClock,
    seconds: float,
    rate: int,
    priority: Priority = "default",
) -> dict[int, int]:
    """Make ``rate`` calls a second, evenly spaced, for ``seconds``; the refusals per second."""
    refused: dict[int, int] = {}
    for _ in range(int(seconds * rate)):
        clock.advance(1 / rate)
        try:
            await pipeline.execute(upstream, priority=priority)
        except ThrottleRejected:
            second = int(clock.monotonic())
            refused[second] = refused.get(second, 0) + 1
        except ConnectionError:
            pass
    return refused


class CountingRandom(random.Random):
    """A seeded generator that counts its draws."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return super().random()


def throttled(
    clock: FakeClock, seed: int = 1, **options: Any
) -> tuple[AdaptiveThrottler, Pipeline]:
    throttler = AdaptiveThrottler(clock=clock, rng=random.Random(seed), **options)
    return throttler, Pipeline([throttler])


async def test_a_healthy_dependency_is_never_throttled_and_nothing_is_drawn() -> None:
    clock = FakeClock(autojump=False)
    rng = CountingRandom(1)
    throttler = AdaptiveThrottler(clock=clock, rng=rng)
    upstream = Upstream(clock, None)
    refused = await offer(Pipeline([throttler]), upstream, clock, 5, 100)
    assert refused == {}
    assert rng.draws == 0  # the happy path draws nothing
    assert throttler.rejection_rate() == 0.0
    assert sum(upstream.received.values()) == 500


async def test_the_probability_is_the_sre_formula_over_the_window() -> None:
    clock = FakeClock(autojump=False)
    throttler, _ = throttled(clock, min_requests=0)
    window = throttler._window_of  # 30 accepted, 70 not: requests 100, accepts 30
    for failed in [False] * 30 + [True] * 70:
        window.record(clock.monotonic(), failed, False)
    assert throttler.rejection_rate() == pytest.approx((100 - 2 * 30) / 101)
    assert throttler.rejection_rate(priority="critical") == 0.0  # 100 - 4 * 30 < 0
    assert throttler.rejection_rate(priority="sheddable") == pytest.approx((100 - 1.5 * 30) / 101)
    described = throttler.describe()["state"]["partitions"][""]
    assert described == {
        "requests": 100,
        "accepts": 30,
        "rejection_rate": pytest.approx(40 / 101),
    }
    # The window slides: ten seconds later the counts are gone.
    clock.advance(10.0)
    assert throttler.rejection_rate() == 0.0
    assert throttler.describe()["state"]["partitions"][""]["requests"] == 0


async def test_the_rate_is_capped_and_waits_for_min_requests() -> None:
    clock = FakeClock(autojump=False)
    throttler, _ = throttled(clock, min_requests=20, max_rejection_rate=0.5)
    window = throttler._window_of
    for _ in range(19):
        window.record(0.0, True, False)
    assert throttler.rejection_rate() == 0.0  # 19 requests: too few to judge
    window.record(0.0, True, False)
    assert throttler.rejection_rate() == 0.5  # 20 of 20 failed: 20/21, capped


async def test_it_sheds_only_the_share_the_dependency_cannot_take() -> None:
    # 100 calls a second against a dependency that can take 25: after the first window the
    # throttler sends it about k = 2 times what it accepts and refuses the rest locally, and
    # the dependency keeps serving its full capacity.
    clock = FakeClock(autojump=False)
    _, pipeline = throttled(clock, seed=7)
    upstream = Upstream(clock, 25)
    refused = await offer(pipeline, upstream, clock, 30, 100)
    steady = range(15, 30)
    received = [upstream.received[s] for s in steady]
    assert all(upstream.accepted[s] == 25 for s in steady)  # capacity used in full
    assert min(received) >= 35, received
    assert max(received) <= 65, received
    assert sum(refused[s] for s in steady) / (100 * len(steady)) == pytest.approx(0.5, abs=0.02)
    # Without the throttler the dependency would have received all 100 a second.
    assert sum(received) / len(received) == pytest.approx(50, abs=2)


async def test_it_sees_the_end_of_an_overload_at_once() -> None:
    clock = FakeClock(autojump=False)
    throttler, pipeline = throttled(clock, seed=3)
    upstream = Upstream(clock, 25)
    await offer(pipeline, upstream, clock, 15, 100)
    assert throttler.rejection_rate() > 0.4
    upstream.capacity = None  # the overload ends at t = 15
    refused = await offer(pipeline, upstream, clock, 10, 100)
    # Calls kept reaching the dependency (a breaker would have refused them all), and each one
    # it accepts lowers the refusals: they fall every second, to none within four seconds (the
    # 5 s window has not even slid past the overload).
    received = [upstream.received[s] for s in range(15, 25)]
    per_second = [refused.get(s, 0) for s in range(15, 25)]
    assert min(received) >= 40, received
    assert all(a > b for a, b in itertools.pairwise(per_second[:5])), per_second
    assert per_second[4:] == [0] * 6, per_second
    assert throttler.rejection_rate() == 0.0


async def test_sheddable_calls_are_shed_first_and_critical_ones_last() -> None:
    clock = FakeClock(autojump=False)
    throttler, pipeline = throttled(clock, seed=11)
    upstream = Upstream(clock, 30)
    await offer(pipeline, upstream, clock, 12, 100)
    rates = {p: throttler.rejection_rate(priority=p) for p in ("critical", "default", "sheddable")}
    assert rates["critical"] < rates["default"] < rates["sheddable"], rates
    # Now each priority in turn for a second, from the same state.
    refused = {}
    for priority in ("critical", "default", "sheddable"):
        refusals = await offer(pipeline, upstream, clock, 1, 100, priority=priority)
        refused[priority] = sum(refusals.values())
    assert refused["critical"] < refused["default"] < refused["sheddable"], refused


async def test_a_critical_call_is_refused_only_below_a_quarter_accepted() -> None:
    clock = FakeClock(autojump=False)
    throttler, _ = throttled(clock, min_requests=0)  # k = 2: critical judged with 4
    window = throttler._window_of
    for failed in [False] * 26 + [True] * 74:
        window.record(0.0, failed, False)
    assert throttler.rejection_rate(priority="critical") == 0.0  # 26 % accepted
    for _ in range(10):
        window.record(0.0, True, False)
    assert throttler.rejection_rate(priority="critical") > 0.0  # 26 of 110: below a quarter


async def test_a_refusal_is_an_event_and_says_why() -> None:
    clock = FakeClock(autojump=False)
    events: list[ResilienceEvent] = []
    throttler = AdaptiveThrottler(clock=clock, rng=random.Random(5), min_requests=0)
    pipeline = Pipeline([throttler], listeners=[events.append])
    for _ in range(10):
        throttler._window_of.record(0.0, True, False)
    with pytest.raises(ThrottleRejected) as info:
        await pipeline.execute(Upstream(clock, None))
    assert info.value.rejection_rate == 0.9  # 10 / 11, capped by max_rejection_rate
    assert "the throttle refused the call locally" in str(info.value)
    assert "accepted 0 of 11 requests in the last 5 s" in str(info.value)
    (event,) = events
    assert (event.name, event.policy) == ("throttled", "adaptive_throttle")
    assert event.detail["priority"] == "default"
    assert event.detail["requests"] == 11


async def test_cancelled_calls_and_rejections_inside_are_not_counted() -> None:
    clock = FakeClock()
    throttler = AdaptiveThrottler(clock=clock)
    pipeline = Pipeline.builder(clock=clock).add(throttler).bulkhead(max_concurrent=1).build()
    entered, release = anyio.Event(), anyio.Event()

    async def held() -> str:
        entered.set()
        await release.wait()
        return "ok"

    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.execute, held)
        await entered.wait()
        for _ in range(30):  # refused by the full bulkhead: the dependency was not asked
            with pytest.raises(BulkheadRejected):
                await pipeline.execute(held)
        tg.cancel_scope.cancel()  # and the call in flight is cancelled: no outcome either
    assert throttler.describe()["state"]["partitions"][""]["requests"] == 0


async def test_handle_says_what_is_not_accepted() -> None:
    clock = FakeClock(autojump=False)
    throttler = AdaptiveThrottler(
        clock=clock, handle=lambda outcome: outcome.result == "busy", min_requests=0
    )

    async def busy() -> str:
        return "busy"

    await Pipeline([throttler]).execute(busy)
    counts = throttler.describe()["state"]["partitions"][""]
    assert (counts["requests"], counts["accepts"]) == (1, 0)
    assert throttler.describe()["options"]["handle"].endswith("<lambda>")


async def test_partitions_are_throttled_apart() -> None:
    clock = FakeClock(autojump=False)
    throttler = AdaptiveThrottler(clock=clock, key=by_origin, min_requests=0)
    pipeline = Pipeline([throttler])

    async def fail() -> str:
        raise ConnectionError("down")

    down = Context(request=httpx.Request("GET", "https://down.test/x"))
    with pytest.raises(ConnectionError):
        await pipeline.execute(fail, down)
    assert throttler.rejection_rate("https://down.test:443") > 0
    assert throttler.rejection_rate("https://up.test:443") == 0.0
    assert set(throttler.describe()["state"]["partitions"]) == {"https://down.test:443"}


def test_bad_options_name_the_option_and_the_value() -> None:
    with pytest.raises(
        ValueError, match=r"AdaptiveThrottler: k must be a finite number >= 1, got 0\.5"
    ):
        AdaptiveThrottler(k=0.5)
    with pytest.raises(
        ValueError, match=r"max_rejection_rate must be a number > 0 and <= 1, got 0"
    ):
        AdaptiveThrottler(max_rejection_rate=0)
    with pytest.raises(ValueError, match=r"window must be a finite number > 0, got -1"):
        AdaptiveThrottler(window=-1)
    with pytest.raises(ValueError, match=r"min_requests must be an integer >= 0, got 1\.5"):
        AdaptiveThrottler(min_requests=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"window must be at least 1e-280 .*, got 1e-300"):
        AdaptiveThrottler(window=1e-300)
    with pytest.raises(ValueError, match=r"rng must be a random\.Random, got 3"):
        AdaptiveThrottler(rng=3)  # type: ignore[arg-type]


def test_a_profile_builds_it_partitioned_per_origin() -> None:
    registry = Registry.from_mapping(
        {"profiles": {"api": {"adaptive_throttle": {"k": 1.5, "window": 5.0}}}}
    )
    profile = registry.profile("api")
    assert profile is not None
    assert profile.adaptive_throttle == AdaptiveThrottleOptions(k=1.5, window=5.0)
    (throttler,) = Profile(adaptive_throttle=profile.adaptive_throttle).build().policies
    assert isinstance(throttler, AdaptiveThrottler)
    options = throttler.describe()["options"]
    assert (options["k"], options["window"], options["key"]) == (1.5, 5.0, "by_origin")
    with pytest.raises(
        Exception,
        match=r"profiles\.api\.adaptive_throttle\.k: expected a finite number >= 1, got 0",
    ):
        Registry.from_mapping({"profiles": {"api": {"adaptive_throttle": {"k": 0}}}})


def test_the_builder_adds_it_with_its_clock() -> None:
    clock = FakeClock()
    (throttler,) = Pipeline.builder(clock=clock).adaptive_throttle(k=3).build().policies
    assert isinstance(throttler, AdaptiveThrottler)
    assert throttler._clock is clock
    assert repr(throttler) == (
        "AdaptiveThrottler(k=3, window=5, max_rejection_rate=0.9, partitioned=False)"
    )


def test_the_rejection_is_an_httpx_error_in_the_http_layer_and_pickles() -> None:
    request = httpx.Request("GET", "https://api.test/")
    rejection: ResilienceError = ThrottleRejected("refused", rejection_rate=0.5)
    converted = as_httpx_error(rejection, request)
    assert isinstance(converted, httpx.TransportError)
    assert isinstance(converted, type(rejection))
    assert type(converted).__name__ == "ThrottleRejected"
    for exc in (rejection, converted):
        copy: ThrottleRejected = pickle.loads(pickle.dumps(exc))
        assert type(copy) is type(exc)
        assert copy.rejection_rate == 0.5


async def test_through_the_http_layer_429s_throttle_by_priority_and_refusals_are_httpx_errors() -> (
    None
):
    clock = FakeClock(autojump=False)
    throttler = AdaptiveThrottler(clock=clock, rng=_AlwaysRefuse(), min_requests=0)
    pipeline = Pipeline.builder(clock=clock).add(throttler).build()
    answers = iter([200, 429, 429])  # a 429 is a call the dependency did not accept

    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers, 200))

    async with ResilientClient(
        pipeline=pipeline, transport=httpx.MockTransport(upstream), base_url="https://api.test"
    ) as client:
        for _ in range(3):
            await client.get("/")
        # 1 of 3 accepted: a default call (k = 2) is refused with (3 - 2) / 4, a critical one
        # (judged with 4) is not.
        assert throttler.rejection_rate() == 0.25
        assert throttler.rejection_rate(priority="critical") == 0.0
        critical = await client.get("/", extensions={"resilience.priority": "critical"})
        assert critical.status_code == 200
        with pytest.raises(httpx.TransportError) as info:
            await client.get("/", extensions={"resilience.priority": "sheddable"})
    assert isinstance(info.value, ThrottleRejected)
    assert info.value.rejection_rate == pytest.approx((4 - 1.5 * 2) / 5)  # sheddable: 1.5


class _AlwaysRefuse(random.Random):
    """Draws that fall in the refused share whatever its size."""

    def random(self) -> float:
        return 0.0
