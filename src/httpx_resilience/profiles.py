"""Per-dependency named profiles: :class:`Profile`, :class:`Registry`, and loading them from TOML
or a mapping.

A service talks to payments, search and a dozen internal services; each needs its own timeouts,
limits and breaker, tuned in one place. A :class:`Profile` describes one pipeline declaratively;
a :class:`Registry` holds profiles by name and builds each into one shared
:class:`~httpx_resilience.Pipeline`, so every caller of "payments" shares its breaker, bulkhead
and buckets.

The file format (the same shape as a mapping)::

    [profiles.default]
    total_timeout = 30.0
    attempt_timeout = 10.0
    retry = { max_attempts = 3, base_delay = 0.2, max_delay = 10.0, budget = { ratio = 0.2 } }
    circuit_breaker = { failure_ratio = 0.1, minimum_throughput = 100, break_duration = 5.0 }

    [profiles.payments]
    extends = "default"
    bulkhead = { max_concurrent = 20, max_queue = 50 }

    [routes]
    "api.payments.example" = "payments"

A profile may ``extends`` another and override single fields (a nested table overrides only the
keys it names; ``false`` turns a policy off). Environment variables
``HTTPX_RESILIENCE__<PROFILE>__<FIELD>[__<KEY>]`` override single fields. Every problem is a
:class:`~httpx_resilience.ConfigError` naming the file, the profile, the key and what was
expected, all problems at once.
"""

from __future__ import annotations

import difflib
import os
import sys
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ._clock import Clock
from .context import by_origin
from .errors import ConfigError
from .pipeline import Pipeline, PipelineBuilder
from .policies._partitions import DEFAULT_MAX_PARTITIONS
from .policies._validate import (
    BOOLEAN,
    NON_NEGATIVE,
    POSITIVE,
    RATIO,
    TEXT,
    Check,
    choice,
    integer,
)
from .policies.budget import RetryBudget
from .telemetry import Listener

if TYPE_CHECKING:
    import httpx

__all__ = [
    "AlternateOptions",
    "BudgetOptions",
    "BulkheadOptions",
    "CacheOptions",
    "CircuitBreakerOptions",
    "FallbackOptions",
    "HedgingOptions",
    "Profile",
    "RateLimitOptions",
    "RedisOptions",
    "Registry",
    "RetryOptions",
]

#: The profile a request uses when neither its extensions nor a route name one.
DEFAULT_PROFILE = "default"
#: The request extension naming a profile: ``extensions={"resilience.profile": "payments"}``.
PROFILE_EXTENSION = "resilience.profile"
_ENV_PREFIX = "HTTPX_RESILIENCE__"
_PARTITION = choice("none", "origin")


def _check(check: Check, default: Any = MISSING, *, optional: bool = False) -> Any:
    """A dataclass field whose value ``check`` validates (``None`` allowed if ``optional``)."""
    metadata = {"check": check, "optional": optional}
    if default is MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


class _Problems(ConfigError):
    """Problems of one options object, each as ``(key, message)``: the loader places them
    under the key path they were found at."""

    def __init__(self, owner: str, items: list[tuple[str, str]]) -> None:
        self.items = items
        super().__init__([_at(owner, key, message) for key, message in items])


def _at(path: str, key: str, message: str) -> str:
    where = f"{path}.{key}" if key and path else (key or path)
    return f"{where}: {message}"


class _Options:
    """Validation shared by every options class: each field's check, all problems at once."""

    def __post_init__(self) -> None:
        items = self._problems()
        if items:
            raise _Problems(type(self).__name__, items)

    def _problems(self) -> list[tuple[str, str]]:
        items: list[tuple[str, str]] = []
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            check: Check | None = f.metadata.get("check")
            if check is not None:
                if value is None and f.metadata.get("optional"):
                    continue
                if not check.accepts(value):
                    items.append((f.name, f"expected {check.expected}, got {value!r}"))
            elif value is not None and not isinstance(value, _Options):
                expected = _options_class(_field_types(type(self))[f.name])
                name = expected.__name__ if expected else "options"
                items.append((f.name, f"expected {name} or None, got {value!r}"))
        if not items:
            items.extend(self._cross_checks())
        return items

    def _cross_checks(self) -> list[tuple[str, str]]:
        return []


@dataclass(frozen=True)
class BudgetOptions(_Options):
    """Options of a :class:`~httpx_resilience.RetryBudget`."""

    ratio: float = _check(RATIO, 0.2)
    min_per_second: float = _check(NON_NEGATIVE, 10.0)
    ttl: float = _check(POSITIVE, 10.0)


@dataclass(frozen=True)
class RetryOptions(_Options):
    """Options of a :class:`~httpx_resilience.Retry` (full-jitter backoff).

    Unlike a bare ``Retry``, a profile's retry has a :class:`BudgetOptions` budget unless it is
    turned off (``budget = false``): a shared configuration should not allow retry storms.
    """

    max_attempts: int = _check(integer(1), 3)
    base_delay: float = _check(NON_NEGATIVE, 0.2)
    max_delay: float = _check(NON_NEGATIVE, 10.0)
    respect_retry_after: bool = _check(BOOLEAN, True)
    max_retry_after: float = _check(NON_NEGATIVE, 60.0)
    budget: BudgetOptions | None = field(default_factory=BudgetOptions)


@dataclass(frozen=True)
class CircuitBreakerOptions(_Options):
    """Options of a :class:`~httpx_resilience.CircuitBreaker`; ``partition`` is ``"origin"``
    (one breaker per scheme, host and port: the default) or ``"none"``."""

    failure_ratio: float = _check(
        Check("a number > 0 and <= 1", lambda v: RATIO.accepts(v) and v > 0, float), 0.1
    )
    minimum_throughput: int = _check(integer(1), 100)
    sampling_duration: float = _check(POSITIVE, 30.0)
    window: str = _check(choice("time", "count"), "time")
    window_size: int = _check(integer(1), 100)
    break_duration: float = _check(POSITIVE, 5.0)
    break_duration_max: float | None = _check(POSITIVE, None, optional=True)
    half_open_max_calls: int = _check(integer(1), 1)
    slow_call_duration: float | None = _check(POSITIVE, None, optional=True)
    slow_call_ratio: float | None = _check(RATIO, None, optional=True)
    partition: str = _check(_PARTITION, "origin")
    max_partitions: int = _check(integer(1), DEFAULT_MAX_PARTITIONS)

    def _cross_checks(self) -> list[tuple[str, str]]:
        problems = []
        if self.break_duration_max is not None and self.break_duration_max < self.break_duration:
            problems.append(
                (
                    "break_duration_max",
                    f"expected a number >= break_duration ({self.break_duration!r}), "
                    f"got {self.break_duration_max!r}",
                )
            )
        if self.slow_call_ratio is not None and self.slow_call_duration is None:
            problems.append(("slow_call_ratio", "needs slow_call_duration to be set"))
        if self.window == "count" and self.minimum_throughput > self.window_size:
            problems.append(
                (
                    "minimum_throughput",
                    f"expected at most window_size ({self.window_size}), "
                    f"got {self.minimum_throughput}",
                )
            )
        return problems


@dataclass(frozen=True)
class BulkheadOptions(_Options):
    """Options of a :class:`~httpx_resilience.Bulkhead` (``partition``: ``"none"``, the
    default, or ``"origin"``)."""

    max_concurrent: int = _check(integer(1))
    max_queue: int = _check(integer(0), 0)
    queue_timeout: float | None = _check(NON_NEGATIVE, None, optional=True)
    partition: str = _check(_PARTITION, "none")
    max_partitions: int = _check(integer(1), DEFAULT_MAX_PARTITIONS)


@dataclass(frozen=True)
class RedisOptions(_Options):
    """A Redis server shared by every process: the rate limit's backend."""

    url: str = _check(TEXT)
    prefix: str = _check(TEXT, "httpx-resilience")
    failure_mode: str = _check(choice("open", "closed"), "open")
    timeout: float = _check(POSITIVE, 0.1)
    retry_interval: float = _check(NON_NEGATIVE, 1.0)


@dataclass(frozen=True)
class RateLimitOptions(_Options):
    """Options of a :class:`~httpx_resilience.RateLimiter` (``partition``: ``"none"``, the
    default, or ``"origin"``; ``backend``: in memory unless a :class:`RedisOptions`)."""

    rate: float = _check(POSITIVE)
    burst: float | None = _check(
        Check("a finite number >= 1", lambda v: POSITIVE.accepts(v) and v >= 1, float),
        None,
        optional=True,
    )
    max_wait: float = _check(NON_NEGATIVE, 0.0)
    partition: str = _check(_PARTITION, "none")
    max_partitions: int = _check(integer(1), DEFAULT_MAX_PARTITIONS)
    backend: RedisOptions | None = None


@dataclass(frozen=True)
class CacheOptions(_Options):
    """Options of a :class:`~httpx_resilience.ResponseCache`."""

    maxsize: int = _check(integer(1), 1000)
    ttl: float = _check(POSITIVE, 300.0)
    max_body_bytes: int = _check(integer(0), 1024 * 1024)
    store_private: bool = _check(BOOLEAN, False)


@dataclass(frozen=True)
class AlternateOptions(_Options):
    """An :class:`~httpx_resilience.Alternate`: a ``base_url`` and the ``profile`` whose
    pipeline it runs through (its own breaker and limits), both optional."""

    base_url: str | None = _check(TEXT, None, optional=True)
    profile: str | None = _check(TEXT, None, optional=True)
    send_non_idempotent: bool = _check(BOOLEAN, False)


@dataclass(frozen=True)
class FallbackOptions(_Options):
    """Options of a :class:`~httpx_resilience.Fallback`: a cache, an alternate, or both."""

    cache: CacheOptions | None = None
    alternate: AlternateOptions | None = None

    def _cross_checks(self) -> list[tuple[str, str]]:
        if self.cache is None and self.alternate is None:
            return [("", "expected a cache, an alternate or both")]
        return []


@dataclass(frozen=True)
class HedgingOptions(_Options):
    """Options of :class:`~httpx_resilience.Hedging` (its budget is the retry's, if any)."""

    max_hedged_attempts: int = _check(integer(1, 10), 1)
    delay: float = _check(NON_NEGATIVE, 2.0)


@dataclass(frozen=True)
class Profile(_Options):
    """A declarative, validated description of one pipeline.

    Each field is one policy, ``None`` when the profile has none. The pipeline they build is,
    outermost first: fallback, total timeout, retry, hedging, circuit breaker, bulkhead, rate
    limit, attempt timeout. Polly's cross-policy rules are enforced: the attempt timeout is at
    most the total timeout, and a time-window breaker samples at least twice the attempt
    timeout.

    Attributes:
        retry_non_idempotent: Retry and hedge POST and PATCH requests of this profile even
            without an ``Idempotency-Key``.
    """

    total_timeout: float | None = _check(POSITIVE, None, optional=True)
    attempt_timeout: float | None = _check(POSITIVE, None, optional=True)
    retry: RetryOptions | None = None
    hedging: HedgingOptions | None = None
    circuit_breaker: CircuitBreakerOptions | None = None
    bulkhead: BulkheadOptions | None = None
    rate_limit: RateLimitOptions | None = None
    fallback: FallbackOptions | None = None
    retry_non_idempotent: bool = _check(BOOLEAN, False)

    #: The order policies are built in, outermost first.
    ORDER: ClassVar[tuple[str, ...]] = (
        "fallback",
        "total_timeout",
        "retry",
        "hedging",
        "circuit_breaker",
        "bulkhead",
        "rate_limit",
        "attempt_timeout",
    )

    @classmethod
    def standard(cls) -> Profile:
        """The profile of :meth:`Pipeline.standard() <httpx_resilience.Pipeline.standard>`."""
        return cls(
            total_timeout=30.0,
            attempt_timeout=10.0,
            retry=RetryOptions(),
            circuit_breaker=CircuitBreakerOptions(),
        )

    def _cross_checks(self) -> list[tuple[str, str]]:
        problems = []
        total, attempt = self.total_timeout, self.attempt_timeout
        if total is not None and attempt is not None and attempt > total:
            problems.append(
                (
                    "attempt_timeout",
                    f"expected at most total_timeout ({total!r}), got {attempt!r}",
                )
            )
        breaker = self.circuit_breaker
        if (
            breaker is not None
            and breaker.window == "time"
            and attempt is not None
            and breaker.sampling_duration < 2 * attempt
        ):
            problems.append(
                (
                    "circuit_breaker.sampling_duration",
                    f"expected at least twice attempt_timeout ({2 * attempt!r}), "
                    f"got {breaker.sampling_duration!r}",
                )
            )
        alternate = self.fallback.alternate if self.fallback else None
        if alternate is not None and alternate.base_url is None:
            problems.append(("fallback.alternate.base_url", "required"))
        return problems

    def build(
        self,
        *,
        clock: Clock | None = None,
        listeners: Iterable[Listener] = (),
        include_query: bool = False,
        registry: Registry | None = None,
    ) -> Pipeline:
        """Build the pipeline this profile describes.

        Args:
            clock: The clock of every policy.
            listeners: Event listeners.
            include_query: Let events show the query string of request URLs.
            registry: Where an alternate's ``profile`` is looked up.
        """
        builder = Pipeline.builder(clock=clock, listeners=listeners, include_query=include_query)
        budget: RetryBudget | None = None
        if self.retry is not None and self.retry.budget is not None:
            b = self.retry.budget
            budget = RetryBudget(ratio=b.ratio, min_per_second=b.min_per_second, ttl=b.ttl)
        for name in self.ORDER:
            _add_policy(builder, self, name, budget, clock, registry)
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
            from .http.cache import ResponseCache

            sources["cache"] = ResponseCache(
                f.cache.maxsize,
                f.cache.ttl,
                max_body_bytes=f.cache.max_body_bytes,
                store_private=f.cache.store_private,
                clock=clock,
            )
        if f.alternate is not None:
            sources["alternate"] = _alternate(f.alternate, registry)
        builder.fallback(**sources)


def _redis_backend(options: RedisOptions) -> Any:
    try:
        import redis.asyncio

        from .backends.redis import RedisBackend
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
    return RedisBackend(
        redis.asyncio.from_url(options.url),
        prefix=options.prefix,
        failure_mode=options.failure_mode,  # type: ignore[arg-type]  # checked: open or closed
        timeout=options.timeout,
        retry_interval=options.retry_interval,
    )


def _alternate(options: AlternateOptions, registry: Registry | None) -> Any:
    from .http.alternate import Alternate

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
        options.base_url, pipeline=pipeline, send_non_idempotent=options.send_non_idempotent
    )


# -- loading from mappings ---------------------------------------------------------------------


def _options_class(annotation: Any) -> type | None:
    """The options dataclass a field holds (``RetryOptions | None`` → ``RetryOptions``)."""
    for candidate in typing.get_args(annotation) or (annotation,):
        if isinstance(candidate, type) and is_dataclass(candidate):
            return candidate
    return None


_HINTS: dict[type, dict[str, Any]] = {}


def _field_types(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _unknown(key: str, known: Iterable[str], where: str) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{where}: unknown key{hint}"


def _parse(cls: type, raw: Mapping[str, Any], path: str, problems: list[str]) -> Any:
    """Options of ``cls`` from ``raw``; one message per problem goes to ``problems``."""
    before = len(problems)
    hints = _field_types(cls)
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}.{key}"
        f = known.get(key)
        if f is None:
            problems.append(_unknown(key, known, where))
            continue
        nested = _options_class(hints[key])
        if nested is not None:
            if value is False:
                values[key] = None
            elif value is True or isinstance(value, Mapping):
                values[key] = _parse(nested, {} if value is True else value, where, problems)
            else:
                problems.append(
                    f"{where}: expected a table (or false to turn it off), got {value!r}"
                )
            continue
        check: Check = f.metadata["check"]
        if check.accepts(value):
            values[key] = check.convert(value)
        else:
            problems.append(f"{where}: expected {check.expected}, got {value!r}")
    for name, f in known.items():
        if f.default is MISSING and f.default_factory is MISSING and name not in raw:
            problems.append(f"{path}.{name}: required")
    if len(problems) > before:
        # Still judge what was valid against each other, so that a file's cross-policy
        # problems are reported in the same run as its field problems.
        shadow: Any = object.__new__(cls)
        for f in fields(cls):
            value = values.get(f.name, _INVALID)
            if value is _INVALID:
                value = None if f.default is MISSING else f.default
                if f.default_factory is not MISSING:
                    value = f.default_factory()
            object.__setattr__(shadow, f.name, value)
        problems.extend(_at(path, key, message) for key, message in shadow._cross_checks())
        return _INVALID
    try:
        return cls(**values)
    except _Problems as error:
        problems.extend(_at(path, key, message) for key, message in error.items)
        return _INVALID


_INVALID: Any = object()


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _as_mapping(profile: Profile) -> dict[str, Any]:
    """A profile as the mapping a file would give (for ``extends`` of a built-in default)."""

    def convert(value: Any) -> Any:
        if is_dataclass(value) and not isinstance(value, type):
            return {
                f.name: convert(getattr(value, f.name))
                for f in fields(value)
                if getattr(value, f.name) is not None
            }
        return value

    result: dict[str, Any] = convert(profile)
    for f in fields(profile):
        if getattr(profile, f.name) is None and _options_class(_field_types(Profile)[f.name]):
            result[f.name] = False
    return result


def _env_value(raw: str, check: Check | None) -> Any:
    """An environment variable's text as the type its field expects."""
    text = raw.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if check is not None and check.accepts(text):
        return text
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            continue
    return text


def _apply_environment(
    raw_profiles: dict[str, dict[str, Any]],
    environ: Mapping[str, str],
    problems: list[str],
) -> None:
    by_upper = {name.upper().replace("-", "_"): name for name in raw_profiles}
    for variable, text in sorted(environ.items()):
        if not variable.startswith(_ENV_PREFIX):
            continue
        parts = variable[len(_ENV_PREFIX) :].split("__")
        if len(parts) < 2 or not all(parts):
            problems.append(f"{variable}: expected HTTPX_RESILIENCE__<PROFILE>__<FIELD>[__<KEY>]")
            continue
        profile = by_upper.get(parts[0].upper())
        if profile is None:
            problems.append(f"{variable}: no profile named {parts[0].lower()!r}")
            continue
        cls: type = Profile
        target = raw_profiles[profile]
        path = f"profiles.{profile}"
        for depth, part in enumerate(parts[1:], start=1):
            key = part.lower()
            known = {f.name: f for f in fields(cls)}
            if key not in known:
                problems.append(_unknown(key, known, f"{variable} ({path}.{key})"))
                break
            path = f"{path}.{key}"
            nested = _options_class(_field_types(cls)[key])
            if depth == len(parts) - 1:
                if nested is not None:
                    value = _env_value(text, None)
                    target[key] = value if isinstance(value, bool) else text
                else:
                    target[key] = _env_value(text, known[key].metadata.get("check"))
                break
            if nested is None:
                problems.append(f"{variable} ({path}): {key!r} has no keys of its own")
                break
            section = target.get(key)
            if not isinstance(section, dict):
                section = target[key] = {} if not isinstance(section, Mapping) else dict(section)
            target, cls = section, nested


# -- the registry ------------------------------------------------------------------------------


def _route_matches(pattern: str, url: httpx.URL) -> bool:
    if "://" in pattern:
        return str(url).startswith(pattern)
    host = url.host.lower()
    if pattern.startswith("*."):
        return host.endswith(pattern[1:].lower())
    return host == pattern.lower()


class Registry:
    """Named profiles, each built once into one shared :class:`~httpx_resilience.Pipeline`.

    Args:
        profiles: Profiles (or ready pipelines) by name.
        routes: ``(pattern, profile)`` pairs, tried in order: an exact host
            (``"api.payments.example"``), a ``"*.suffix"`` host wildcard, or a URL prefix
            (``"https://search.example/v2/"``).
        clock: The clock of every policy built (default: the system clock).
        listeners: Event listeners given to every pipeline built.
        include_query: Let events show the query string of request URLs.

    A request whose profile is not named otherwise uses ``"default"``; without a profile of
    that name, :meth:`Profile.standard` is used.
    """

    def __init__(
        self,
        profiles: Mapping[str, Profile | Pipeline] | None = None,
        *,
        routes: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        clock: Clock | None = None,
        listeners: Iterable[Listener] = (),
        include_query: bool = False,
        source: str | None = None,
    ) -> None:
        self._clock = clock
        self._listeners = tuple(listeners)
        self._include_query = include_query
        self._source = source
        self._profiles: dict[str, Profile | Pipeline] = {}
        self._pipelines: dict[str, Pipeline] = {}
        self._building: set[str] = set()
        for name, profile in (profiles or {}).items():
            self.register(name, profile)
        pairs = routes.items() if isinstance(routes, Mapping) else routes
        self._routes: tuple[tuple[str, str], ...] = tuple(pairs)
        unknown = [
            f"routes.{pattern!r}: no profile named {name!r}"
            for pattern, name in self._routes
            if name not in self._profiles and name != DEFAULT_PROFILE
        ]
        if unknown:
            raise ConfigError(self._located(unknown))

    def _located(self, problems: Sequence[str]) -> list[str]:
        if self._source is None:
            return list(problems)
        return [f"{self._source}: {p}" for p in problems]

    def register(self, name: str, profile: Profile | Pipeline) -> None:
        """Add (or replace, before first use) the profile or pipeline called ``name``."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"profile names must be non-empty strings, got {name!r}")
        if not isinstance(profile, (Profile, Pipeline)):
            raise ConfigError(f"profiles.{name}: expected a Profile or a Pipeline, got {profile!r}")
        if name in self._pipelines:
            raise ConfigError(f"profiles.{name}: already in use, it cannot be replaced")
        self._profiles[name] = profile

    @property
    def names(self) -> tuple[str, ...]:
        """The registered profile names, in registration order."""
        return tuple(self._profiles)

    @property
    def routes(self) -> tuple[tuple[str, str], ...]:
        """The ``(pattern, profile)`` routes, in the order they are tried."""
        return self._routes

    def profile(self, name: str) -> Profile | None:
        """The :class:`Profile` registered as ``name`` (``None`` for a ready pipeline)."""
        self._known(name)
        found = self._profiles.get(name)
        if found is None:
            return Profile.standard()
        return found if isinstance(found, Profile) else None

    def _known(self, name: str) -> None:
        if name not in self._profiles and name != DEFAULT_PROFILE:
            known = ", ".join(repr(n) for n in self._profiles) or "none"
            close = difflib.get_close_matches(name, list(self._profiles), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown profile {name!r} (known: {known}){hint}")

    def get(self, name: str) -> Pipeline:
        """The pipeline of profile ``name``, built on first use and shared after."""
        pipeline = self._pipelines.get(name)
        if pipeline is not None:
            return pipeline
        self._known(name)
        if name in self._building:
            raise ConfigError(f"profiles.{name}: its fallback alternate leads back to itself")
        found = self._profiles.get(name, Profile.standard())
        if isinstance(found, Pipeline):
            pipeline = found
        else:
            self._building.add(name)
            try:
                pipeline = found.build(
                    clock=self._clock,
                    listeners=self._listeners,
                    include_query=self._include_query,
                    registry=self,
                )
            finally:
                self._building.discard(name)
        self._pipelines[name] = pipeline
        return pipeline

    def retry_non_idempotent(self, name: str) -> bool:
        """Whether profile ``name`` retries POST and PATCH without an ``Idempotency-Key``."""
        found = self._profiles.get(name)
        return isinstance(found, Profile) and found.retry_non_idempotent

    def route(self, request: httpx.Request, routes: Sequence[tuple[str, str]] = ()) -> str:
        """The profile for ``request``: its ``resilience.profile`` extension, else the first
        route matching (``routes`` first, then the registry's), else ``"default"``."""
        named = request.extensions.get(PROFILE_EXTENSION)
        if named is not None:
            self._known(named)
            return str(named)
        url = request.url
        for pattern, name in (*routes, *self._routes):
            if _route_matches(pattern, url):
                return name
        return DEFAULT_PROFILE

    def describe(self) -> dict[str, Any]:
        """Every profile's pipeline (built ones with their live state) and the routes."""
        return {
            "profiles": {name: self.get(name).describe() for name in self.names},
            "routes": [list(route) for route in self._routes],
        }

    async def aclose(self) -> None:
        """Release what the built pipelines hold (see :meth:`Pipeline.aclose`)."""
        for pipeline in self._pipelines.values():
            await pipeline.aclose()

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def from_mapping(
        cls,
        mapping: Mapping[str, Any],
        *,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        listeners: Iterable[Listener] = (),
        include_query: bool = False,
        source: str | None = None,
    ) -> Registry:
        """A registry from a mapping shaped like the file (``{"profiles": ..., "routes": ...}``).

        Args:
            mapping: The configuration.
            environ: Where ``HTTPX_RESILIENCE__...`` overrides are read (default:
                :data:`os.environ`; pass ``{}`` to ignore the environment).
            clock: The clock of every policy built.
            listeners: Event listeners of every pipeline built.
            include_query: Let events show the query string of request URLs.
            source: What to call the configuration in messages (a file name).

        Raises:
            ConfigError: with one message per problem found.
        """
        prefix = f"{source}: " if source else ""
        problems: list[str] = []
        for key in mapping:
            if key not in ("profiles", "routes"):
                problems.append(_unknown(key, ["profiles", "routes"], str(key)))
        raw_profiles_in = mapping.get("profiles", {})
        if not isinstance(raw_profiles_in, Mapping):
            raise ConfigError(f"{prefix}profiles: expected a table, got {raw_profiles_in!r}")
        raw_profiles: dict[str, dict[str, Any]] = {}
        for name, raw in raw_profiles_in.items():
            if isinstance(raw, Mapping):
                raw_profiles[name] = _merge({}, raw)
            else:
                problems.append(f"profiles.{name}: expected a table, got {raw!r}")
        _apply_environment(raw_profiles, os.environ if environ is None else environ, problems)

        resolved: dict[str, dict[str, Any]] = {}

        def resolve(name: str, chain: tuple[str, ...]) -> dict[str, Any] | None:
            if name in resolved:
                return resolved[name]
            raw = raw_profiles[name]
            parent = raw.get("extends")
            own = {k: v for k, v in raw.items() if k != "extends"}
            if parent is None:
                resolved[name] = own
                return own
            if not isinstance(parent, str):
                problems.append(f"profiles.{name}.extends: expected a profile name, got {parent!r}")
                return None
            if parent in chain:
                cycle = " -> ".join((*chain, parent))
                problems.append(f"profiles.{chain[0]}.extends: cycle {cycle}")
                return None
            if parent not in raw_profiles:
                if parent == DEFAULT_PROFILE:
                    base: dict[str, Any] | None = _as_mapping(Profile.standard())
                else:
                    problems.append(
                        _unknown(parent, raw_profiles, f"profiles.{name}.extends").replace(
                            "unknown key", f"no profile named {parent!r}"
                        )
                    )
                    return None
            else:
                base = resolve(parent, (*chain, parent))
            if base is None:
                return None
            merged = _merge(base, own)
            resolved[name] = merged
            return merged

        profiles: dict[str, Profile] = {}
        for name in raw_profiles:
            merged = resolve(name, (name,))
            if merged is None:
                continue
            parsed = _parse(Profile, merged, f"profiles.{name}", problems)
            if parsed is not _INVALID:
                profiles[name] = parsed

        routes_in = mapping.get("routes", {})
        routes: list[tuple[str, str]] = []
        if not isinstance(routes_in, Mapping):
            problems.append(f"routes: expected a table of pattern = profile, got {routes_in!r}")
        else:
            for pattern, name in routes_in.items():
                if not isinstance(name, str):
                    problems.append(f"routes.{pattern!r}: expected a profile name, got {name!r}")
                elif name not in raw_profiles and name != DEFAULT_PROFILE:
                    problems.append(f"routes.{pattern!r}: no profile named {name!r}")
                else:
                    routes.append((str(pattern), name))
        for name, profile in profiles.items():
            alternate = profile.fallback.alternate if profile.fallback else None
            if alternate and alternate.profile and alternate.profile not in raw_profiles:
                problems.append(
                    f"profiles.{name}.fallback.alternate.profile: no profile named "
                    f"{alternate.profile!r}"
                )
        if problems:
            raise ConfigError([f"{prefix}{p}" for p in dict.fromkeys(problems)])
        return cls(
            profiles,
            routes=routes,
            clock=clock,
            listeners=listeners,
            include_query=include_query,
            source=source,
        )

    @classmethod
    def from_toml(
        cls,
        path: str | os.PathLike[str],
        *,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        listeners: Iterable[Listener] = (),
        include_query: bool = False,
    ) -> Registry:
        """A registry from a TOML file (see the module's documentation for the format)."""
        location = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{location}: cannot be read ({exc.strerror or exc})") from exc
        try:
            data = _tomllib.loads(text)
        except _tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{location}: not valid TOML: {exc}") from exc
        return cls.from_mapping(
            data,
            environ=environ,
            clock=clock,
            listeners=listeners,
            include_query=include_query,
            source=location,
        )

    def __repr__(self) -> str:
        return f"Registry(names={list(self._profiles)!r}, routes={len(self._routes)})"


_OFF: Any = object()


def settings(profile: Profile) -> dict[str, Any]:
    """A profile's effective settings as flat ``key.path: value`` pairs, in schema order (for
    ``check``): a policy's own row says ``"on"`` or ``"off"``; the keys of a policy that is off
    have the value :data:`_OFF`."""
    flat: dict[str, Any] = {}

    def walk(cls: type, value: Any, path: str) -> None:
        hints = _field_types(cls)
        for f in fields(cls):
            key = f"{path}.{f.name}" if path else f.name
            own = _OFF if value is _OFF else getattr(value, f.name)
            nested = _options_class(hints[f.name])
            if nested is None:
                flat[key] = own
                continue
            flat[key] = own if own is _OFF else ("off" if own is None else "on")
            walk(nested, _OFF if own is None else own, key)

    walk(Profile, profile, "")
    return flat


if sys.version_info >= (3, 11):
    import tomllib as _tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as _tomllib
