"""RateLimiter: a client-side token bucket, so we never send a dependency more than it allows.

The bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; each call takes
one. Over any interval of ``t`` seconds at most ``burst + rate * t`` calls get through. When the
bucket is empty, a call may wait for a token, first come first served, up to ``max_wait`` seconds
(and never past ``context.deadline``); otherwise it is rejected at once with
:class:`~httpx_resilience.RateLimitRejected`, whose ``retry_after`` says exactly when a token
would have been free.

With ``backend=`` (a :class:`~httpx_resilience.backends.redis.RedisBackend`), the buckets live in
a store that every process shares instead, so that N replicas of a service send no more than one
limit in total; without it, they stay in memory, on the fast path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import cachetools

from .._clock import SYSTEM_CLOCK, Clock, wait_for_event
from .._names import callable_name
from ..backends import RateLimitBackend, StoreUnavailable, TokenStore
from ..context import Context
from ..errors import RateLimitRejected
from ..telemetry import emit
from ._partitions import DEFAULT_MAX_PARTITIONS, Partitions
from ._validate import derived, positive, rate_problem

__all__ = ["RateLimiter"]

T = TypeVar("T")

_EPSILON = 1e-9


class _Bucket:
    """The tokens and the queue of one partition."""

    __slots__ = ("__weakref__", "key", "tokens", "updated", "waiters")

    def __init__(self, key: str | None, tokens: float, now: float) -> None:
        self.key = key
        self.tokens = tokens
        self.updated = now
        # Waiting calls in arrival order; the first one sleeps until the next token, the others
        # until they are first.
        self.waiters: deque[anyio.Event] = deque()


class RateLimiter:
    """Admit at most ``rate`` calls per second on average, ``burst`` at once.

    Args:
        rate: Tokens added per second.
        burst: Size of the bucket: calls allowed at once after a quiet spell (default: the rate
            rounded up, i.e. one second's worth).
        max_wait: Longest a call waits for a token, in seconds (0: reject at once).
        key: A function of the :class:`~httpx_resilience.Context` naming the partition (one
            bucket per key: per tenant; per API key with :func:`~httpx_resilience.by_header`
            or :func:`~httpx_resilience.hashed`, which show it only as a digest); ``None`` for
            one in all.
        max_partitions: Partitions kept at most.
        clock: The clock (default: the system clock).
        backend: Where the buckets live: ``None`` (the default) for this process's memory, or
            a shared store such as :class:`~httpx_resilience.backends.redis.RedisBackend`, whose
            bucket per operation key (profile) and partition every process draws from. The
            store's clock, not ``clock``, then decides when tokens come back; ``clock`` still
            measures ``max_wait`` and the deadline. When the store fails, the backend's
            ``failure_mode`` applies: ``"open"`` falls back to this limiter's in-memory bucket
            (same rate and burst), ``"closed"`` rejects.
    """

    __slots__ = (
        "_bucket",
        "_burst",
        "_clock",
        "_key",
        "_max_wait",
        "_monotonic",
        "_partitions",
        "_rate",
        "_shared",
    )

    def __new__(cls, *args: Any, backend: Any = None, **options: Any) -> RateLimiter:
        # A limiter with a backend is a _SharedRateLimiter, whose execute() goes to the store:
        # the in-memory execute() below stays as it is, without even a test of the backend.
        if backend is not None and cls is RateLimiter:
            cls = _SharedRateLimiter
        return object.__new__(cls)

    def __init__(
        self,
        *,
        rate: float,
        burst: float | None = None,
        max_wait: float = 0.0,
        key: Callable[[Context], str] | None = None,
        max_partitions: int = DEFAULT_MAX_PARTITIONS,
        clock: Clock | None = None,
        backend: RateLimitBackend | None = None,
    ) -> None:
        self._rate = positive("RateLimiter", "rate", rate)
        derived("RateLimiter", "rate", rate_problem(self._rate))
        if burst is None:
            burst = max(1.0, float(-(-self._rate // 1)))
        self._burst = positive("RateLimiter", "burst", burst)
        if self._burst < 1:
            raise ValueError(f"RateLimiter: burst must be at least 1, got {burst!r}")
        self._max_wait = positive("RateLimiter", "max_wait", max_wait, allow_zero=True)
        if key is not None and not callable(key):
            raise ValueError(f"RateLimiter: key must be a function of the context, got {key!r}")
        self._key = key
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._monotonic = self._clock.monotonic
        self._bucket = _Bucket(None, self._burst, self._monotonic())
        self._partitions: Partitions[_Bucket] = Partitions(
            "RateLimiter", self._new_bucket, max_partitions
        )
        self._shared: _SharedBuckets | None = None
        if backend is not None:
            if not isinstance(backend, RateLimitBackend):
                raise ValueError(
                    "RateLimiter: backend must be None or a rate-limit backend such as "
                    f"RedisBackend, got {backend!r}"
                )
            if not isinstance(self, _SharedRateLimiter):
                # A subclass of RateLimiter keeps the in-memory execute(): it would ignore the
                # backend without a word.
                raise TypeError(
                    f"{type(self).__name__}: a subclass of RateLimiter cannot take backend=; "
                    "use RateLimiter itself"
                )
            store = backend.token_store(rate=self._rate, burst=self._burst)
            self._shared = _SharedBuckets(store, max_partitions)

    def _new_bucket(self, key: str) -> _Bucket:
        return _Bucket(key, self._burst, self._monotonic())

    def __repr__(self) -> str:
        shared = "" if self._shared is None else ", shared=True"
        return (
            f"RateLimiter(rate={self._rate:g}, burst={self._burst:g}, "
            f"max_wait={self._max_wait:g}, partitioned={self._key is not None}{shared})"
        )

    def describe(self) -> dict[str, Any]:
        """The limiter's configuration and the tokens in its (in-memory) buckets, as plain
        data."""
        if self._key is None:
            tokens = {"": self.available()}
        else:
            now = self._monotonic()
            tokens = {k: self._refill(b, now) for k, b in self._partitions.items()}
        return {
            "policy": "rate_limit",
            "options": {
                "rate": self._rate,
                "burst": self._burst,
                "max_wait": self._max_wait,
                "key": None if self._key is None else callable_name(self._key),
                "max_partitions": self._partitions.max_partitions,
                "backend": None if self._shared is None else "shared",
            },
            "state": {"tokens": tokens},
        }

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> float:
        """Size of the bucket."""
        return self._burst

    def available(self, key: str | None = None) -> float:
        """Tokens in the bucket now (of partition ``key``); negative never, fractional often.

        For a limiter with a ``backend``, the in-memory bucket that stands in when the store
        fails (``failure_mode="open"``); the shared bucket is the store's.
        """
        bucket = self._bucket if key is None else self._partitions.peek(key)
        if bucket is None:
            return self._burst
        return self._refill(bucket, self._monotonic())

    def _refill(self, bucket: _Bucket, now: float) -> float:
        tokens = bucket.tokens + (now - bucket.updated) * self._rate
        if tokens > self._burst:
            tokens = self._burst
        bucket.tokens = tokens
        bucket.updated = now
        return tokens

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        """Take a token (waiting for one if allowed), then run ``next``."""
        bucket = self._bucket if self._key is None else self._partitions.get(self._key(context))
        now = self._monotonic()
        tokens = bucket.tokens + (now - bucket.updated) * self._rate
        bucket.updated = now
        if tokens >= 1 and not bucket.waiters:
            bucket.tokens = (self._burst if tokens > self._burst else tokens) - 1
        else:
            bucket.tokens = self._burst if tokens > self._burst else tokens
            await self._wait(bucket, now, context)
        return await next(context)

    async def _wait(self, bucket: _Bucket, now: float, context: Context) -> None:
        ahead = len(bucket.waiters)
        # Time until a token is free for this call if everybody ahead is served first.
        wait = (ahead + 1 - bucket.tokens) / self._rate
        limit = self._max_wait
        if context.deadline is not None:
            limit = min(limit, context.deadline - now)
        if wait > limit:
            emit(
                context,
                "rate_limited",
                "rate_limit",
                key=bucket.key,
                timestamp=now,
                retry_after=wait,
            )
            where = "the rate limit" if bucket.key is None else f"the rate limit for {bucket.key!r}"
            raise RateLimitRejected(
                f"{where} is reached ({self._rate:g}/s, burst {self._burst:g}); "
                f"next token in {wait:.3g} s",
                retry_after=wait,
            )
        turn = anyio.Event()
        bucket.waiters.append(turn)
        try:
            if ahead:
                await turn.wait()
            while True:
                tokens = self._refill(bucket, self._monotonic())
                if tokens >= 1 - _EPSILON:  # a sleep of (1 - t) / rate may refill 0.9999999...
                    bucket.tokens = max(0.0, tokens - 1)
                    return
                await self._clock.sleep((1 - tokens) / self._rate)
        finally:
            if bucket.waiters[0] is turn:
                bucket.waiters.popleft()
                if bucket.waiters:
                    bucket.waiters[0].set()  # the next in line becomes first
            else:
                bucket.waiters.remove(turn)


class _SharedBucket:
    """What this process knows of one bucket in a shared store: its name there, its queue."""

    __slots__ = ("name", "partition", "profile", "waiters")

    def __init__(self, name: Any, profile: str | None, partition: str | None) -> None:
        self.name = name
        self.profile = profile
        self.partition = partition
        # This process's calls waiting for a token of the bucket, in arrival order. Only the
        # first asks the store (once per answer, sleeping until the time it names); the others
        # wait for their turn, so k waiters cost the store one call per token rather than k.
        self.waiters: deque[anyio.Event] = deque()


class _SharedBuckets:
    """The shared store of a limiter, and what this process knows of its buckets."""

    __slots__ = ("cache", "last", "store")

    def __init__(self, store: TokenStore, max_partitions: int) -> None:
        self.store = store
        # By (operation key, partition); bounded like the in-memory partitions. A bucket that
        # falls out only loses its local queue: its tokens are in the store.
        self.cache: cachetools.LRUCache[tuple[str | None, str | None], _SharedBucket] = (
            cachetools.LRUCache(max_partitions)
        )
        # The bucket of the previous call: most calls of a limiter go to the same one, and
        # comparing two keys is cheaper than an LRU lookup.
        self.last: _SharedBucket | None = None

    def get(self, profile: str | None, partition: str | None) -> _SharedBucket:
        """The bucket of ``profile`` and ``partition``, made on first use."""
        index = (profile, partition)
        bucket = self.cache.get(index)
        if bucket is None:
            name = self.store.bucket_name(profile, partition)
            bucket = self.cache[index] = _SharedBucket(name, profile, partition)
        self.last = bucket
        return bucket


class _SharedRateLimiter(RateLimiter):
    """A :class:`RateLimiter` made with ``backend=``: its buckets live in a shared store.

    ``RateLimiter(..., backend=...)`` makes one; it is still a ``RateLimiter`` in every way but
    where its tokens come from.
    """

    __slots__ = ()

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        """Take a token from the shared bucket (waiting for one if allowed), then run ``next``.

        When the store fails, the backend's failure mode decides: ``"open"`` takes the token
        from this limiter's in-memory bucket instead, ``"closed"`` rejects.
        """
        partition = None if self._key is None else self._key(context)
        shared = self._shared
        assert shared is not None
        profile = context.operation_key
        bucket = shared.last
        if bucket is None or bucket.partition != partition or bucket.profile != profile:
            bucket = shared.get(profile, partition)
        store = shared.store
        try:
            if bucket.waiters:
                await self._wait_shared(store, bucket, 0.0, context)
            else:
                # The happy path, inline: one call to the store, which has a token.
                wait = await store.take(bucket.name)
                if wait:
                    await self._wait_shared(store, bucket, wait, context)
        except StoreUnavailable as exc:
            self._store_failed(exc, store.failure_mode, partition, context)
            # "open": this process's own bucket of the same rate and burst stands guard.
            return await RateLimiter.execute(self, next, context)
        return await next(context)

    def _store_failed(
        self, exc: StoreUnavailable, mode: str, partition: str | None, context: Context
    ) -> None:
        emit(
            context,
            "rate_limit_backend_failed",
            "rate_limit",
            key=partition,
            timestamp=self._monotonic(),
            failure_mode=mode,
            error=exc.error,
        )
        if mode == "closed":
            where = "the rate limit" if partition is None else f"the rate limit for {partition!r}"
            # Not chained: the cause may name the store's address.
            raise RateLimitRejected(
                f"{where} cannot be checked: its shared store failed ({exc.error}) and "
                "failure_mode is 'closed'",
                retry_after=exc.retry_after,
            ) from None

    async def _wait_shared(
        self, store: TokenStore, bucket: _SharedBucket, wait: float, context: Context
    ) -> None:
        # ``wait``: the store's answer (seconds to the next token), or 0.0 if this call did not
        # ask because calls of this process were already waiting.
        partition = bucket.partition
        waiters = bucket.waiters
        # Calls of this process already waiting (some may have come while this one asked the
        # store) take the next tokens first: queue behind them, and reject now if even that
        # shortest wait, one token interval each after the next token, is too long.
        ahead = len(waiters)
        if ahead:
            wait += ahead / self._rate
        now = self._monotonic()
        end = now + self._max_wait
        deadline = context.deadline
        if deadline is not None and deadline < end:
            end = deadline
        if now + wait > end:
            self._reject_shared(context, partition, now, wait)
        turn = anyio.Event()
        waiters.append(turn)
        try:
            if ahead:
                if not await wait_for_event(turn, end - now, self._clock):
                    now = self._monotonic()
                    # At least one token interval per call still ahead of this one.
                    self._reject_shared(context, partition, now, waiters.index(turn) / self._rate)
                wait = await store.take(bucket.name)
            while wait:
                # The store said when the next token will be free: sleep until then (if that is
                # within max_wait and the deadline) and ask again. Another process may take it
                # first; then the store names the next one. Never a tight loop.
                now = self._monotonic()
                if now + wait > end:
                    self._reject_shared(context, partition, now, wait)
                await self._clock.sleep(wait)
                wait = await store.take(bucket.name)
        finally:
            if waiters[0] is turn:
                waiters.popleft()
                if waiters:
                    waiters[0].set()  # the next in line becomes first
            else:
                waiters.remove(turn)

    def _reject_shared(
        self, context: Context, partition: str | None, now: float, wait: float
    ) -> None:
        emit(context, "rate_limited", "rate_limit", key=partition, timestamp=now, retry_after=wait)
        where = "the rate limit" if partition is None else f"the rate limit for {partition!r}"
        raise RateLimitRejected(
            f"{where} is reached ({self._rate:g}/s, burst {self._burst:g}, shared); "
            f"next token in {wait:.3g} s",
            retry_after=wait,
        )
