"""From a :class:`Profile` to a :class:`~httpx_resilience.Pipeline`: each policy it describes,
built in :attr:`Profile.ORDER` (outermost first)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..context import by_origin
from ..errors import ConfigError
from ..pipeline import Pipeline, PipelineBuilder
from ..policies.budget import RetryBudget

if TYPE_CHECKING:
    from .._clock import Clock
    from ..telemetry import Listener, PathRedaction
    from ._registry import Registry
    from ._schema import AlternateOptions, Profile, RedisOptions


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
        b = profile.retry.budget
        budget = RetryBudget(ratio=b.ratio, min_per_second=b.min_per_second, ttl=b.ttl)
    for name in profile.ORDER:
        _add_policy(builder, profile, name, budget, clock, registry)
    return builder.build()


def _partition_key(partition: str) -> Any:
    return by_origin if partition == "origin" else None


def _add_policy(
    builder: PipelineBuilder,
    profile: Profile,
    name: str,
    budget: RetryBudget | None,
    clock: Clock | None,
    registry: Registry | None,
) -> None:
    if name == "total_timeout" and profile.total_timeout is not None:
        builder.timeout(profile.total_timeout)
    elif name == "attempt_timeout" and profile.attempt_timeout is not None:
        builder.timeout(profile.attempt_timeout)
    elif name == "retry" and (r := profile.retry) is not None:
        builder.retry(
            max_attempts=r.max_attempts,
            base_delay=r.base_delay,
            max_delay=r.max_delay,
            respect_retry_after=r.respect_retry_after,
            max_retry_after=r.max_retry_after,
            budget=budget,
        )
    elif name == "hedging" and (h := profile.hedging) is not None:
        builder.hedging(max_hedged_attempts=h.max_hedged_attempts, delay=h.delay, budget=budget)
    elif name == "circuit_breaker" and (c := profile.circuit_breaker) is not None:
        builder.circuit_breaker(
            failure_ratio=c.failure_ratio,
            minimum_throughput=c.minimum_throughput,
            sampling_duration=c.sampling_duration,
            window=c.window,
            window_size=c.window_size,
            break_duration=c.break_duration,
            break_duration_max=c.break_duration_max,
            half_open_max_calls=c.half_open_max_calls,
            slow_call_duration=c.slow_call_duration,
            slow_call_ratio=c.slow_call_ratio,
            key=_partition_key(c.partition),
            max_partitions=c.max_partitions,
        )
    elif name == "bulkhead" and (b := profile.bulkhead) is not None:
        builder.bulkhead(
            max_concurrent=b.max_concurrent,
            max_queue=b.max_queue,
            queue_timeout=b.queue_timeout,
            key=_partition_key(b.partition),
            max_partitions=b.max_partitions,
        )
    elif name == "rate_limit" and (limit := profile.rate_limit) is not None:
        options: dict[str, Any] = {}
        if limit.backend is not None:
            options["backend"] = _redis_backend(limit.backend)
        builder.rate_limit(
            rate=limit.rate,
            burst=limit.burst,
            max_wait=limit.max_wait,
            key=_partition_key(limit.partition),
            max_partitions=limit.max_partitions,
            **options,
        )
    elif name == "fallback" and (f := profile.fallback) is not None:
        sources: dict[str, Any] = {}
        if f.cache is not None:
            from ..http.cache import ResponseCache

            sources["cache"] = ResponseCache(
                f.cache.maxsize,
                f.cache.ttl,
                max_body_bytes=f.cache.max_body_bytes,
                max_bytes=f.cache.max_bytes,
                identity_headers=f.cache.identity_headers,
                clock=clock,
            )
        if f.alternate is not None:
            sources["alternate"] = _alternate(f.alternate, registry)
        builder.fallback(**sources)


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
