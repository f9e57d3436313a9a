"""Where policies keep state that several processes (or hosts) share.

A :class:`~httpx_resilience.RateLimiter` keeps its buckets in memory unless it is given a
``backend=``; :class:`~httpx_resilience.backends.redis.RedisBackend` puts them in Redis so that
every replica of a service draws from one limit. This module holds what a backend promises
(:class:`RateLimitBackend`, :class:`TokenStore`) and imports nothing optional: the Redis backend
lives in :mod:`httpx_resilience.backends.redis`, which needs the ``redis`` extra
(``pip install 'httpx-resilience[redis]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .redis import RedisBackend as RedisBackend

# RedisBackend is left out of __all__: a star import must not need the redis extra.
__all__ = ["FailureMode", "RateLimitBackend", "StoreUnavailable", "TokenStore"]

#: What a policy does when its shared store cannot answer: ``"open"`` admits the call (under a
#: local in-memory bucket of the same rate and burst), ``"closed"`` rejects it.
FailureMode = Literal["open", "closed"]


class StoreUnavailable(Exception):
    """The shared store failed or did not answer in time.

    Raised by :meth:`TokenStore.take` only; the policy applies the backend's failure mode, so it
    never leaves the pipeline.

    Attributes:
        error: The class name of the underlying failure (``"ConnectionError"``,
            ``"TimeoutError"``); never a message, which could hold an address or credentials.
        retry_after: Seconds until the store will be asked again.
    """

    def __init__(self, error: str, *, retry_after: float) -> None:
        super().__init__(f"the shared store is unavailable ({error})")
        self.error = error
        self.retry_after = retry_after


@runtime_checkable
class TokenStore(Protocol):
    """The buckets of one rate limiter (one rate and burst) in a shared store."""

    @property
    def failure_mode(self) -> FailureMode:
        """What the limiter does when :meth:`take` raises :class:`StoreUnavailable`."""
        ...

    def bucket_name(self, profile: str | None, partition: str | None) -> Any:
        """The store's name of the bucket for ``profile`` and ``partition`` (``None``: the
        execution has no operation key / the limiter is not partitioned).

        Distinct arguments must give distinct names. The limiter computes it once per bucket
        and passes it back to :meth:`take`.
        """
        ...

    async def take(self, name: Any) -> float:
        """Take one token from bucket ``name``: ``0.0`` if taken, else the seconds until one
        will be free (nothing is taken then).

        Raises:
            StoreUnavailable: the store failed or was too slow; nothing else escapes.
        """
        ...


@runtime_checkable
class RateLimitBackend(Protocol):
    """A shared store for :class:`~httpx_resilience.RateLimiter` buckets."""

    def token_store(self, *, rate: float, burst: float) -> TokenStore:
        """The buckets of a limiter of ``rate`` tokens per second and size ``burst``."""
        ...


def __getattr__(name: str) -> Any:
    # RedisBackend is importable from here without importing redis with the package.
    if name == "RedisBackend":
        from .redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
