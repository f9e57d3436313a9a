"""RateLimiter: a client-side token bucket, so we never send a dependency more than it allows.

The bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; each call takes
one. Over any interval of ``t`` seconds at most ``burst + rate * t`` calls get through. When the
bucket is empty, a call may wait for a token, first come first served, up to ``max_wait`` seconds
(and never past ``context.deadline``); otherwise it is rejected at once with
:class:`~httpx_resilience.RateLimitRejected`, whose ``retry_after`` says exactly when a token
would have been free.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from .._clock import SYSTEM_CLOCK, Clock
from ..context import Context
from ..errors import RateLimitRejected
from ..telemetry import emit
from ._partitions import DEFAULT_MAX_PARTITIONS, Partitions
from ._validate import positive

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
            bucket per key: per tenant, per API key); ``None`` for one in all.
        max_partitions: Partitions kept at most.
        clock: The clock (default: the system clock).
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
    )

    def __init__(
        self,
        *,
        rate: float,
        burst: float | None = None,
        max_wait: float = 0.0,
        key: Callable[[Context], str] | None = None,
        max_partitions: int = DEFAULT_MAX_PARTITIONS,
        clock: Clock | None = None,
    ) -> None:
        self._rate = positive("RateLimiter", "rate", rate)
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

    def _new_bucket(self, key: str) -> _Bucket:
        return _Bucket(key, self._burst, self._monotonic())

    def __repr__(self) -> str:
        return (
            f"RateLimiter(rate={self._rate:g}, burst={self._burst:g}, "
            f"max_wait={self._max_wait:g}, partitioned={self._key is not None})"
        )

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> float:
        """Size of the bucket."""
        return self._burst

    def available(self, key: str | None = None) -> float:
        """Tokens in the bucket now (of partition ``key``); negative never, fractional often."""
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
