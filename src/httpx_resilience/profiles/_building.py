"""From a :class:`Profile` to a :class:`~httpx_resilience.Pipeline`: each policy it describes,
built in :attr:`Profile.ORDER` (outermost first)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..context import by_origin
from ..errors import ConfigError
from ..http.classify import retry_statuses
from ..pipeline import Pipeline, Policy
from ..policies._options import vars_of
from ..policies.adaptive_limit import AdaptiveLimiter, AdaptiveLimitPolicyOptions
from ..policies.adaptive_throttle import AdaptiveThrottlePolicyOptions, AdaptiveThrottler
from ..policies.budget import RetryBudget
from ..policies.bulkhead import Bulkhead, BulkheadPolicyOptions
from ..policies.circuit_breaker import CircuitBreaker, CircuitBreakerPolicyOptions
from ..policies.fallback import Fallback
from ..policies.hedging import Hedging
from ..policies.pacing import Pacing, PacingPolicyOptions
from ..policies.rate_limit import RateLimiter, RateLimiterPolicyOptions
from ..policies.retry import Retry, RetryPolicyOptions
from ..policies.timeout import Timeout

if TYPE_CHECKING:
    from .._clock import Clock
    from ..telemetry import Listener, PathRedaction
    from ._registry import Registry
    from ._schema import AlternateOptions, FallbackOptions, Profile, RateLimitOptions, RedisOptions


@dataclass(frozen=True)
class _Parts:
    """What a policy of a profile is built with besides its options."""

    clock: Clock | None
    budget: RetryBudget | None  # the retry's, shared by hedging
    registry: Registry | None


def build_pipeline(
    profile: Profile,
    *,
    clock: Clock | None,
    listeners: Iterable[Listener],
    include_query: bool,
    registry: Registry | None,
    redact_path: PathRedaction | None,
) -> Pipeline:
    """The pipeline ``profile`` describes (see :meth:`Profile.build`)."""
    builder = Pipeline.builder(
        clock=clock, listeners=listeners, include_query=include_query, redact_path=redact_path
    )
    budget: RetryBudget | None = None
    if profile.retry is not None and profile.retry.budget is not None:
        budget = RetryBudget(**vars_of(profile.retry.budget))
    parts = _Parts(clock, budget, registry)
    for name in profile.ORDER:
        options = getattr(profile, name)
        if options is not None:
            builder.add(_POLICIES[name](options, parts))
    return builder.build()


def _partitioning(options: Any) -> dict[str, Any]:
    """A profile's ``partition`` and ``max_partitions`` as a policy's keywords."""
    key = by_origin if options.partition == "origin" else None
    return {"key": key, "max_partitions": options.max_partitions}


def _retried(statuses: tuple[int | str, ...] | None) -> Any:
    """A retry's ``handle=`` for the statuses a profile names, or ``None`` (the classifier's)."""
    return None if statuses is None else retry_statuses(*statuses)


def _rate_limiter(options: RateLimitOptions, parts: _Parts) -> Policy:
    backend = {} if options.backend is None else {"backend": _redis_backend(options.backend)}
    return RateLimiter(
        **options._arguments(RateLimiterPolicyOptions),
        **_partitioning(options),
        **backend,
        clock=parts.clock,
    )


def _fallback(options: FallbackOptions, parts: _Parts) -> Policy:
    sources: dict[str, Any] = {}
    if options.cache is not None:
        from ..http.cache import ResponseCache

        cache = options.cache
        sources["cache"] = ResponseCache(
            cache.maxsize,
            cache.ttl,
            max_body_bytes=cache.max_body_bytes,
            max_bytes=cache.max_bytes,
            identity_headers=cache.identity_headers,
            clock=parts.clock,
        )
    if options.alternate is not None:
        sources["alternate"] = _alternate(options.alternate, parts.registry)
    return Fallback(**sources, clock=parts.clock)


#: How each field of a profile (see ``Profile.ORDER``) becomes a policy: a policy's options
#: are its constructor's keywords, to which the profile adds the callables and shared parts.
#: A new policy is one entry here.
_POLICIES: dict[str, Callable[[Any, _Parts], Policy]] = {
    "total_timeout": lambda seconds, parts: Timeout(seconds, clock=parts.clock),
    "retry": lambda options, parts: Retry(
        **options._arguments(RetryPolicyOptions),
        handle=_retried(options.statuses),
        budget=parts.budget,
        clock=parts.clock,
    ),
    "hedging": lambda options, parts: Hedging(
        **vars_of(options), budget=parts.budget, clock=parts.clock
    ),
    "circuit_breaker": lambda options, parts: CircuitBreaker(
        **options._arguments(CircuitBreakerPolicyOptions),
        **_partitioning(options),
        clock=parts.clock,
    ),
    "adaptive_throttle": lambda options, parts: AdaptiveThrottler(
        **options._arguments(AdaptiveThrottlePolicyOptions),
        **_partitioning(options),
        clock=parts.clock,
    ),
    "pacing": lambda options, parts: Pacing(
        **options._arguments(PacingPolicyOptions), **_partitioning(options), clock=parts.clock
    ),
    "adaptive_limit": lambda options, parts: AdaptiveLimiter(
        **options._arguments(AdaptiveLimitPolicyOptions),
        **_partitioning(options),
        clock=parts.clock,
    ),
    "bulkhead": lambda options, parts: Bulkhead(
        **options._arguments(BulkheadPolicyOptions), **_partitioning(options), clock=parts.clock
    ),
    "rate_limit": _rate_limiter,
    "fallback": _fallback,
    "attempt_timeout": lambda seconds, parts: Timeout(seconds, clock=parts.clock),
}


def _redis_backend(options: RedisOptions) -> Any:
    try:
        import redis.asyncio

        from ..backends.redis import RedisBackend
    except ImportError as exc:
        # Name what is missing: only a missing redis is fixed by installing the extra.
        missing = exc.name or ""
        if missing == "redis" or missing.startswith("redis."):
            raise ConfigError(
                "rate_limit.backend: needs the redis extra (pip install 'httpx-resilience[redis]')"
            ) from exc
        raise ConfigError(
            f"rate_limit.backend: the Redis backend cannot be imported: module {missing!r} is "
            f"missing ({exc})"
        ) from exc
    # The client's pool and the backend's bound are one number: acquisitions beyond it wait for
    # a connection instead of failing with redis-py's MaxConnectionsError.
    pool = {} if options.max_connections is None else {"max_connections": options.max_connections}
    return RedisBackend(
        redis.asyncio.from_url(options.url, **pool),
        prefix=options.prefix,
        max_connections=options.max_connections,
        failure_mode=options.failure_mode,  # type: ignore[arg-type]  # checked: open or closed
        timeout=options.timeout,
        retry_interval=options.retry_interval,
    )


def _alternate(options: AlternateOptions, registry: Registry | None) -> Any:
    from ..http.alternate import Alternate

    pipeline = None
    if options.profile is not None:
        if registry is None:
            raise ConfigError(
                f"fallback.alternate.profile: {options.profile!r} needs a registry to look it up"
            )
        pipeline = registry.get(options.profile)
    if options.base_url is None:
        raise ConfigError("fallback.alternate.base_url: expected the alternate's base URL")
    return Alternate(
        options.base_url,
        pipeline=pipeline,
        send_non_idempotent=options.send_non_idempotent,
        forward_credentials=options.forward_credentials,
        identity_headers=options.identity_headers,
    )
