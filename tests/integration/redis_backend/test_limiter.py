"""RateLimiter(backend=RedisBackend(...)) against a real redis-server on loopback."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from httpx_resilience import Context, Pipeline, RateLimiter, RateLimitRejected
from httpx_resilience.backends.redis import RedisBackend, bucket_key
from httpx_resilience.testing import FakeClock

# redis.asyncio runs on asyncio only.
# Real-time bounds against a real redis-server: run alone (see "serial" in noxfile.py).
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("anyio_backend", ["asyncio"]),
    pytest.mark.serial,
]

Redis = Any  # redis.asyncio.Redis; the extra may be missing, then conftest skips the module


async def noop() -> None:
    return None


def shared(client: Redis, **options: Any) -> Pipeline:
    backend_options = {
        k: options.pop(k) for k in ("prefix", "failure_mode", "timeout") if k in options
    }
    return Pipeline([RateLimiter(backend=RedisBackend(client, **backend_options), **options)])


async def command_stats(client: Redis) -> dict[str, dict[str, Any]]:
    stats: dict[str, dict[str, Any]] = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): figures for name, figures in stats.items()}


async def test_a_burst_is_admitted_then_calls_are_rejected_with_the_scripts_wait(
    redis_client: Redis,
) -> None:
    pipeline = shared(redis_client, rate=10.0, burst=3)
    for _ in range(3):
        await pipeline.execute(noop)
    context = Context()
    with pytest.raises(RateLimitRejected, match=r"10/s, burst 3, shared\); next token in") as info:
        await pipeline.execute(noop, context)
    # The next token is due 0.1 s after the first take, less the time the takes took.
    assert 0.05 < info.value.retry_after <= 0.1
    [event] = context.report.events
    assert (event.name, event.detail["retry_after"]) == ("rate_limited", info.value.retry_after)
    await anyio.sleep(info.value.retry_after)
    await pipeline.execute(noop)


async def test_every_limiter_on_the_same_key_draws_from_one_bucket(redis_client: Redis) -> None:
    first = shared(redis_client, rate=1.0, burst=2)
    second = shared(redis_client, rate=1.0, burst=2)
    await first.execute(noop)
    await second.execute(noop)
    with pytest.raises(RateLimitRejected):
        await first.execute(noop)
    with pytest.raises(RateLimitRejected):
        await second.execute(noop)


async def test_waiting_calls_are_admitted_at_the_rate_without_polling(
    redis_client: Redis,
) -> None:
    pipeline = shared(redis_client, rate=20.0, burst=2, max_wait=1.0)
    await redis_client.config_resetstat()
    started = time.monotonic()
    admitted: list[float] = []

    async def call() -> None:
        admitted.append(time.monotonic() - started)

    async def worker() -> None:
        for _ in range(3):
            await pipeline.execute(call)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(worker)
    # 2 at once, then one every 50 ms: the twelfth at 0.5 s.
    assert len(admitted) == 12
    assert admitted[1] < 0.05
    assert 0.5 - 0.01 <= admitted[-1] < 0.5 + 0.15
    for i in range(2, 12):
        assert admitted[i] >= (i - 1) * 0.05 - 0.01
    # No polling: the waiters of a process queue behind the first, which sleeps until the time
    # the script names, so each token costs its take plus one refusal (and the four first
    # callers, all in flight at once, each had a refusal of their own): 26, and a little slack.
    calls = (await command_stats(redis_client))["evalsha"]["calls"]
    assert calls <= 12 + 10 + 4 + 4


async def test_a_wait_never_runs_past_max_wait_or_the_deadline(redis_client: Redis) -> None:
    pipeline = shared(redis_client, rate=5.0, burst=1, max_wait=10.0)
    await pipeline.execute(noop)
    started = time.monotonic()
    with pytest.raises(RateLimitRejected) as info:
        await pipeline.execute(noop, Context(deadline=started + 0.1))  # next token in ~0.2 s
    assert time.monotonic() - started < 0.05  # rejected at once, not after sleeping
    assert 0.1 < info.value.retry_after <= 0.2
    await pipeline.execute(noop, Context(deadline=time.monotonic() + 0.5))
    assert 0.15 < time.monotonic() - started < 0.35

    short = shared(redis_client, prefix="other", rate=5.0, burst=1, max_wait=0.1)
    await short.execute(noop)
    with pytest.raises(RateLimitRejected):
        await short.execute(noop)


async def test_zero_max_wait_rejects_without_sleeping(redis_client: Redis) -> None:
    clock = FakeClock(autojump=False)  # any sleep would hang the test
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock, backend=RedisBackend(redis_client))
    pipeline = Pipeline([limiter])
    await pipeline.execute(noop)
    with pytest.raises(RateLimitRejected) as info:
        await pipeline.execute(noop)
    assert 0.9 < info.value.retry_after <= 1.0


async def test_the_bucket_runs_on_the_servers_clock_not_the_clients(redis_client: Redis) -> None:
    # Two clients whose clocks disagree by a billion seconds and never move by themselves.
    behind, ahead = FakeClock(0.0, autojump=False), FakeClock(1e9, autojump=False)
    a = Pipeline(
        [RateLimiter(rate=10.0, burst=1, clock=behind, backend=RedisBackend(redis_client))]
    )
    b = Pipeline([RateLimiter(rate=10.0, burst=1, clock=ahead, backend=RedisBackend(redis_client))])
    await a.execute(noop)
    with pytest.raises(RateLimitRejected):
        await b.execute(noop)
    # Moving a client's clock gives no token...
    behind.advance(3600)
    ahead.advance(3600)
    with pytest.raises(RateLimitRejected):
        await a.execute(noop)
    # ...and real time passing on the server does, with neither client clock moving.
    frozen = (behind.monotonic(), ahead.monotonic())
    await anyio.sleep(0.11)
    await b.execute(noop)
    with pytest.raises(RateLimitRejected):
        await a.execute(noop)
    assert (behind.monotonic(), ahead.monotonic()) == frozen


async def test_profiles_and_partitions_have_their_own_buckets_whatever_their_bytes(
    redis_client: Redis,
) -> None:
    limiter = RateLimiter(
        rate=0.01,
        burst=1,
        key=lambda context: context.properties["tenant"],
        backend=RedisBackend(redis_client),
    )
    pipeline = Pipeline([limiter])

    async def take(profile: str | None, tenant: str) -> bool:
        context = Context(operation_key=profile, properties={"tenant": tenant})
        try:
            await pipeline.execute(noop, context)
        except RateLimitRejected:
            return False
        return True

    # Pairs that a naive "prefix:profile:partition" would map to one key.
    tenants = [("p", "a:b"), ("p", "a%3Ab"), ("p:a", "b"), (None, "x"), ("%none", "x")]
    assert [await take(*t) for t in tenants] == [True] * len(tenants)
    assert [await take(*t) for t in tenants] == [False] * len(tenants)
    keys = {key.decode() for key in await redis_client.keys("httpx-resilience:*")}
    assert keys == {bucket_key("httpx-resilience", *t) for t in tenants}
    assert len(keys) == len(tenants)


async def test_each_acquisition_is_one_evalsha_and_the_script_is_loaded_once(
    redis_client: Redis,
) -> None:
    pipeline = shared(redis_client, rate=1e6, burst=1e6)
    await pipeline.execute(noop)  # NOSCRIPT on this fresh server, SCRIPT LOAD, EVALSHA
    before = await command_stats(redis_client)
    for _ in range(50):
        await pipeline.execute(noop)
    after = await command_stats(redis_client)
    sent = {
        name: after[name]["calls"] - before.get(name, {"calls": 0})["calls"]
        for name in after
        if after[name]["calls"] != before.get(name, {"calls": 0})["calls"]
    }
    # One EVALSHA per acquisition (and the script's own commands inside it); the INFO is ours.
    assert sent == {"evalsha": 50, "time": 50, "hmget": 50, "hset": 50, "pexpire": 50, "info": 1}
    assert after["script|load"]["calls"] == 1
    assert "eval" not in after  # the script's text is never sent with a call

    # A server that forgot its scripts answers NOSCRIPT: the script is loaded again, once.
    await redis_client.script_flush()
    for _ in range(5):
        await pipeline.execute(noop)
    stats = await command_stats(redis_client)
    assert stats["script|load"]["calls"] == 2


async def test_an_idle_bucket_expires_after_twice_its_fill_time(redis_client: Redis) -> None:
    slow = shared(redis_client, prefix="slow", rate=10.0, burst=5)
    await slow.execute(noop)
    ttl = await redis_client.pttl(bucket_key("slow", None, None))
    assert 900 < ttl <= 1000  # fill time 0.5 s
    fast = shared(redis_client, prefix="fast", rate=100.0, burst=5)
    await fast.execute(noop)
    key = bucket_key("fast", None, None)
    assert 0 < await redis_client.pttl(key) <= 100  # fill time 50 ms
    assert await redis_client.hgetall(key)  # a hash: tokens and the time of the last take
    await anyio.sleep(0.2)
    assert not await redis_client.exists(key)
    # A vanished bucket is a full one.
    for _ in range(5):
        await fast.execute(noop)


async def test_a_limiter_with_a_backend_works_in_a_pipeline_builder(redis_client: Redis) -> None:
    pipeline = (
        Pipeline.builder()
        .timeout(1.0)
        .rate_limit(rate=1.0, burst=1, backend=RedisBackend(redis_client, prefix="built"))
        .build()
    )
    await pipeline.execute(noop)
    with pytest.raises(RateLimitRejected):
        await pipeline.execute(noop)
    assert await redis_client.exists(bucket_key("built", None, None))
