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

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import cachetools

from .._clock import SYSTEM_CLOCK, Clock
from .._validate import NON_NEGATIVE, POSITIVE, Rule, rate_problem
from ..backends import RateLimitBackend, StoreUnavailable, TokenStore
from ..context import Context
from ..errors import RateLimitRejected
from ..telemetry import PolicyEvents
from ._options import Options, Problem, option
from ._partitions import DEFAULT_MAX_PARTITIONS, Partitions, described_options
from ._waiters import WaitQueue, where

__all__ = ["RateLimiter", "RateLimiterPolicyOptions"]

T = TypeVar("T")

_EPSILON = 1e-9


class _Bucket(WaitQueue):
    """The tokens and the queue of one partition.

    Its one place (``active``) is the turn to take the next token: the call holding it sleeps
    until the token is there, the others wait for their turn.
    """

    __slots__ = ("tokens", "updated")

    def __init__(self, key: str | None, tokens: float, now: float) -> None:
        super().__init__(key)
        self.tokens = tokens
        self.updated = now


@dataclass(frozen=True)
class RateLimiterPolicyOptions(Options):
    """The plain-data options of a :class:`RateLimiter` (see it for each), validated when
    built; a profile's :class:`~httpx_resilience.profiles.RateLimitOptions` adds how it is
    partitioned and its backend."""

    rate: float = option(POSITIVE)
    burst: float | None = option(
        Rule("a finite number >= 1", lambda v: POSITIVE.accepts(v) and v >= 1, float),
        None,
        optional=True,
        says=[POSITIVE, Rule("at least 1", lambda v: v >= 1)],
    )
    max_wait: float = option(NON_NEGATIVE, 0.0)

    def _cross_checks(self) -> list[Problem]:
        if not POSITIVE.accepts(self.rate):
            return []  # already refused (a shadow of invalid options)
        problem = rate_problem(self.rate)
        return [] if problem is None else [Problem.bound("rate", problem)]


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
        "_events",
        "_key",
        "_max_wait",
        "_monotonic",
        "_options",
        "_partitions",
        "_rate",
        "_shared",
    )

    # Kept from the options (see Options._keep).
    _rate: float
    _burst: float
    _max_wait: float

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
        if burst is None and POSITIVE.accepts(rate):
            burst = max(1.0, float(-(-rate // 1)))  # the rate, rounded up: a second's calls
        self._options = RateLimiterPolicyOptions._of_arguments("RateLimiter", locals())
        self._options._keep(self)  # self._rate, self._burst (never None here), self._max_wait
        if key is not None and not callable(key):
            raise ValueError(f"RateLimiter: key must be a function of the context, got {key!r}")
        self._key = key
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._events = PolicyEvents("rate_limit", self._clock)
        self._monotonic = self._clock.monotonic
        # The token source, chosen here: this process's memory (the buckets below) or, with a
        # backend, a shared store, for which the buckets below stand in when it fails
        # (failure_mode="open").
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
                **described_options(self._options, self._key, self._partitions),
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
        """Take a token (waiting for one if allowed), then run ``next``.

        With a backend, from the shared bucket; when the store fails, the backend's failure
        mode decides: ``"open"`` takes the token from this limiter's in-memory bucket instead,
        ``"closed"`` rejects.
        """
        if self._shared is None:
            # In memory, inline: a free token is taken by a counter check, without an await.
            bucket = self._bucket if self._key is None else self._partitions.get(self._key(context))
            now = self._monotonic()
            tokens = bucket.tokens + (now - bucket.updated) * self._rate
            bucket.updated = now
            if tokens >= 1 and not bucket.active:
                bucket.tokens = (self._burst if tokens > self._burst else tokens) - 1
            else:
                bucket.tokens = self._burst if tokens > self._burst else tokens
                await self._wait(bucket, now, context)
        else:
            await self._take_shared(self._shared, context)
        return await next(context)

    async def _take(self, context: Context) -> None:
        # execute()'s in-memory path, for when the shared store failed (failure_mode="open").
        bucket = self._bucket if self._key is None else self._partitions.get(self._key(context))
        now = self._monotonic()
        if self._refill(bucket, now) >= 1 and not bucket.active:
            bucket.tokens -= 1
        else:
            await self._wait(bucket, now, context)

    async def _wait(self, bucket: _Bucket, now: float, context: Context) -> None:
        # Calls ahead: the one holding the turn (sleeping for the next token) and those queued.
        ahead = bucket.active + len(bucket.waiters)
        # Time until a token is free for this call if everybody ahead is served first.
        wait = (ahead + 1 - bucket.tokens) / self._rate
        limit = self._max_wait
        if context.deadline is not None:
            limit = min(limit, context.deadline - now)
        if wait > limit:
            self._reject(context, bucket.key, now, wait, shared=False)
        if ahead:
            await bucket.wait(None, self._clock)  # until this call's turn comes
        else:
            bucket.active = 1
        try:
            while True:
                tokens = self._refill(bucket, self._monotonic())
                if tokens >= 1 - _EPSILON:  # a sleep of (1 - t) / rate may refill 0.9999999...
                    bucket.tokens = max(0.0, tokens - 1)
                    return
                await self._clock.sleep((1 - tokens) / self._rate)
        finally:
            bucket.release()  # the next in line takes the turn

    async def _take_shared(self, shared: _SharedBuckets, context: Context) -> None:
        partition = None if self._key is None else self._key(context)
        profile = context.operation_key
        bucket = shared.last
        if bucket is None or bucket.key != partition or bucket.profile != profile:
            bucket = shared.get(profile, partition)
        store = shared.store
        try:
            if bucket.active:
                await self._wait_shared(store, bucket, 0.0, context)
            else:
                # The happy path: one call to the store, which has a token.
                wait = await store.take(bucket.name)
                if wait:
                    await self._wait_shared(store, bucket, wait, context)
        except StoreUnavailable as exc:
            self._store_failed(exc, store.failure_mode, partition, context)
            # "open": this process's own bucket of the same rate and burst stands guard.
            await self._take(context)

    def _store_failed(
        self, exc: StoreUnavailable, mode: str, partition: str | None, context: Context
    ) -> None:
        self._events.emit(
            context, "rate_limit_backend_failed", key=partition, failure_mode=mode, error=exc.error
        )
        if mode == "closed":
            # Not chained: the cause may name the store's address.
            raise RateLimitRejected(
                f"{where('the rate limit', partition)} cannot be checked: its shared store "
                f"failed ({exc.error}) and failure_mode is 'closed'",
                retry_after=exc.retry_after,
            ) from None

    async def _wait_shared(
        self, store: TokenStore, bucket: _SharedBucket, wait: float, context: Context
    ) -> None:
        # ``wait``: the store's answer (seconds to the next token), or 0.0 if this call did not
        # ask because calls of this process were already waiting.
        partition = bucket.key
        # Calls of this process already waiting (some may have come while this one asked the
        # store) take the next tokens first: queue behind them, and reject now if even that
        # shortest wait, one token interval each after the next token, is too long.
        ahead = bucket.active + len(bucket.waiters)
        if ahead:
            wait += ahead / self._rate
        now = self._monotonic()
        end = now + self._max_wait
        deadline = context.deadline
        if deadline is not None and deadline < end:
            end = deadline
        if now + wait > end:
            self._reject(context, partition, now, wait, shared=True)
        if ahead:
            left = await bucket.wait(end - now, self._clock)
            if left is not None:
                # At least one token interval per call still ahead of this one: the one
                # holding the turn and those queued before it.
                wait = (1 + left) / self._rate
                self._reject(context, partition, self._monotonic(), wait, shared=True)
        else:
            bucket.active = 1
        try:
            if ahead:
                wait = await store.take(bucket.name)
            while wait:
                # The store said when the next token will be free: sleep until then (if that is
                # within max_wait and the deadline) and ask again. Another process may take it
                # first; then the store names the next one. Never a tight loop.
                now = self._monotonic()
                if now + wait > end:
                    self._reject(context, partition, now, wait, shared=True)
                await self._clock.sleep(wait)
                wait = await store.take(bucket.name)
        finally:
            bucket.release()  # the next in line takes the turn

    def _reject(
        self, context: Context, key: str | None, now: float, wait: float, *, shared: bool
    ) -> NoReturn:
        self._events.emit(context, "rate_limited", key=key, timestamp=now, retry_after=wait)
        raise RateLimitRejected(
            f"{where('the rate limit', key)} is reached ({self._rate:g}/s, "
            f"burst {self._burst:g}{', shared' if shared else ''}); next token in {wait:.3g} s",
            retry_after=wait,
        )


class _SharedBucket(WaitQueue):
    """What this process knows of one bucket in a shared store: its name there, its queue.

    Its one place (``active``) is the turn to ask the store: the other calls of this process
    waiting for a token of the bucket wait for theirs, so k waiters cost the store one call per
    token rather than k.
    """

    __slots__ = ("name", "profile")

    def __init__(self, name: Any, profile: str | None, partition: str | None) -> None:
        super().__init__(partition)
        self.name = name
        self.profile = profile


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
