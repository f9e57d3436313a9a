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
import functools
import os
import sys
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from ._clock import Clock
from ._numbers import ascii_decimal, ascii_int
from .context import by_origin
from .errors import ConfigError
from .http._identity import identity_headers
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
    not_finite,
    rate_problem,
    window_problem,
)
from .policies.budget import RetryBudget
from .policies.circuit_breaker import MAX_WINDOW_SIZE
from .telemetry import Listener, PathRedaction, _path_redactor

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


def masked_url(url: str) -> str:
    """``url`` with the password of its userinfo, if any, replaced by ``***``
    (``redis://user:***@host:6379/0``), for messages and ``check``. Works on text no parser
    accepts too: a malformed URL is exactly the one an error message shows."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}{rest[end:]}"


def _show_url(value: Any) -> str:
    return repr(masked_url(value)) if isinstance(value, str) else repr(value)


def _redis_url(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    if parts.scheme not in ("redis", "rediss", "unix"):
        return False
    try:
        from redis.asyncio.connection import parse_url
    except ImportError:  # pragma: no cover - the extra is installed in the test runs
        return True  # building the backend reports the missing extra
    try:
        parse_url(value)
    except ValueError:
        return False
    return True


def _http_url(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    import httpx

    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError, ValueError):
        return False
    return url.scheme in ("http", "https") and bool(url.host)


_REDIS_URL = Check("a redis://, rediss:// or unix:// URL", _redis_url, show=_show_url)
_HTTP_URL = Check("an http:// or https:// URL with a host", _http_url, show=_show_url)


def _header_names(value: Any) -> bool:
    try:
        identity_headers("profiles", value)
    except ValueError:
        return False
    return True


_HEADER_NAMES = Check("a list of header names", _header_names, tuple)
# Private responses are never stored (one user's answer must not reach another): the key stays
# readable so that old files load, but only as false.
_NEVER = Check("false (private responses are never stored)", lambda v: v is False)


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
                    items.append((f.name, f"expected {check.expected}, got {check.show(value)}"))
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

    def _cross_checks(self) -> list[tuple[str, str]]:
        # What RetryBudget would refuse when built: tiny or overflowing derived values.
        if not (POSITIVE.accepts(self.ttl) and NON_NEGATIVE.accepts(self.min_per_second)):
            return []  # already refused (a shadow of invalid options)
        given = f"min_per_second={self.min_per_second!r}, ttl={self.ttl!r}"
        reserve = self.min_per_second * self.ttl
        problem = window_problem(self.ttl) or not_finite("min_per_second * ttl", reserve, given)
        return [] if problem is None else [("ttl", f"expected {problem}")]


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
    window_size: int = _check(integer(1, MAX_WINDOW_SIZE), 100)
    break_duration: float = _check(POSITIVE, 5.0)
    break_duration_max: float | None = _check(POSITIVE, None, optional=True)
    half_open_max_calls: int = _check(integer(1), 1)
    slow_call_duration: float | None = _check(POSITIVE, None, optional=True)
    slow_call_ratio: float | None = _check(
        Check("a number > 0 and <= 1", lambda v: RATIO.accepts(v) and v > 0, float),
        None,
        optional=True,
    )
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

    url: str = _check(_REDIS_URL)
    prefix: str = _check(TEXT, "httpx-resilience")
    failure_mode: str = _check(choice("open", "closed"), "open")
    timeout: float = _check(POSITIVE, 0.1)
    retry_interval: float = _check(NON_NEGATIVE, 1.0)
    max_connections: int | None = _check(integer(1), None, optional=True)


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

    def _cross_checks(self) -> list[tuple[str, str]]:
        if not POSITIVE.accepts(self.rate):
            return []  # already refused (a shadow of invalid options)
        problem = rate_problem(self.rate)
        return [] if problem is None else [("rate", f"expected {problem}")]


@dataclass(frozen=True)
class CacheOptions(_Options):
    """Options of a :class:`~httpx_resilience.ResponseCache`."""

    maxsize: int = _check(integer(1), 1000)
    ttl: float = _check(POSITIVE, 300.0)
    max_body_bytes: int = _check(integer(0), 1024 * 1024)
    max_bytes: int = _check(integer(1), 64 * 1024 * 1024)
    identity_headers: tuple[str, ...] = _check(_HEADER_NAMES, ())
    store_private: bool = _check(_NEVER, False)


@dataclass(frozen=True)
class AlternateOptions(_Options):
    """An :class:`~httpx_resilience.Alternate`: a ``base_url`` and the ``profile`` whose
    pipeline it runs through (its own breaker and limits), both optional."""

    base_url: str | None = _check(_HTTP_URL, None, optional=True)
    profile: str | None = _check(TEXT, None, optional=True)
    send_non_idempotent: bool = _check(BOOLEAN, False)
    forward_credentials: bool = _check(BOOLEAN, False)
    identity_headers: tuple[str, ...] = _check(_HEADER_NAMES, ())


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
        redact_path: PathRedaction | None = None,
    ) -> Pipeline:
        """Build the pipeline this profile describes.

        Args:
            clock: The clock of every policy.
            listeners: Event listeners.
            include_query: Let events show the query string of request URLs.
            registry: Where an alternate's ``profile`` is looked up.
            redact_path: Redact URL paths in events (see :meth:`Pipeline.builder
                <httpx_resilience.Pipeline.builder>`).
        """
        builder = Pipeline.builder(
            clock=clock, listeners=listeners, include_query=include_query, redact_path=redact_path
        )
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
        options.base_url,
        pipeline=pipeline,
        send_non_idempotent=options.send_non_idempotent,
        forward_credentials=options.forward_credentials,
        identity_headers=options.identity_headers,
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


def _unknown(key: Any, known: Iterable[str], where: str) -> str:
    if not isinstance(key, str):
        return f"{where}: unknown key (keys are strings, got {key!r})"
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{where}: unknown key{hint}"


def _parse(
    cls: type, raw: Mapping[str, Any], path: str, problems: list[str], *, partial: bool = False
) -> Any:
    """Options of ``cls`` from ``raw``; one message per problem goes to ``problems``.

    ``partial``: ``raw`` is only part of the options (a profile whose ``extends`` is broken):
    judge the values it has, but neither ask for required keys nor compare values that the
    missing part may hold; the result is then always ``_INVALID``."""
    before = len(problems)
    hints = _field_types(cls)
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}.{key}"
        f = known.get(key) if isinstance(key, str) else None
        if f is None:
            problems.append(_unknown(key, known, where))
            continue
        nested = _options_class(hints[key])
        if nested is not None:
            if value is False:
                values[key] = None
            elif value is True or isinstance(value, Mapping):
                values[key] = _parse(
                    nested, {} if value is True else value, where, problems, partial=partial
                )
            else:
                problems.append(
                    f"{where}: expected a table (or false to turn it off), got {value!r}"
                )
            continue
        check: Check = f.metadata["check"]
        if check.accepts(value):
            values[key] = check.convert(value)
        else:
            problems.append(f"{where}: expected {check.expected}, got {check.show(value)}")
    if partial:
        return _INVALID
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
        # A value given but refused already has its message: comparisons that would read it
        # as absent ("expected a cache, an alternate or both") would only add noise.
        refused = {key for key in raw if values.get(key, _INVALID) is _INVALID}
        problems.extend(
            _at(path, key, message)
            for key, message in shadow._cross_checks()
            if not (refused and key == "") and key.split(".")[0] not in refused
        )
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
        elif value is True and isinstance(merged.get(key), Mapping):
            pass  # true on a table means "on, as configured", not "on, with the defaults"
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
    # ASCII digits only: int() and float() would read "٣" as 3 (see _numbers).
    number = ascii_int(text)
    if number is not None:
        return number
    decimal = ascii_decimal(text)
    return text if decimal is None else decimal


def _env_name(profile: str) -> str:
    """How ``profile`` is spelled in environment variable names."""
    return profile.upper().replace("-", "_")


def _apply_environment(
    raw_profiles: dict[str, dict[str, Any]],
    environ: Mapping[str, str],
    problems: list[str],
) -> None:
    by_upper: dict[str, str] = {}
    for name in raw_profiles:
        upper = _env_name(name)
        if upper in by_upper:
            problems.append(
                f"profiles.{by_upper[upper]} and profiles.{name}: both are "
                f"{_ENV_PREFIX}{upper}__... in the environment; rename one"
            )
        else:
            by_upper[upper] = name
    for variable, text in sorted(environ.items()):
        if not variable.startswith(_ENV_PREFIX):
            continue
        parts = variable[len(_ENV_PREFIX) :].split("__")
        if len(parts) < 2 or not all(parts):
            problems.append(f"{variable}: expected HTTPX_RESILIENCE__<PROFILE>__<FIELD>[__<KEY>]")
            continue
        profile = by_upper.get(parts[0].upper())
        if profile is None and parts[0].upper() == _env_name(DEFAULT_PROFILE):
            # The built-in default profile, made explicit so that the variable overrides it.
            profile = by_upper[parts[0].upper()] = DEFAULT_PROFILE
            raw_profiles[DEFAULT_PROFILE] = _as_mapping(Profile.standard())
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
                    if value is True and isinstance(target.get(key), Mapping):
                        break  # "on, as configured": keep the file's table
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


def _alternate_problems(
    names: Iterable[str], resolved: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Alternates naming no profile, or leading back to where they started (``p``'s alternate
    runs through ``q``, whose alternate runs through ``p``): building either would recurse.
    ``resolved``: each profile's raw options, ``extends`` applied (judged even when other
    options are invalid, so that every problem is reported at once)."""
    problems = []
    names = list(names)

    def next_of(name: str) -> str | None:
        fallback = resolved.get(name, {}).get("fallback")
        alternate = fallback.get("alternate") if isinstance(fallback, Mapping) else None
        target = alternate.get("profile") if isinstance(alternate, Mapping) else None
        return target if isinstance(target, str) else None

    for name in names:
        target = next_of(name)
        if target is None:
            continue
        where = f"profiles.{name}.fallback.alternate.profile"
        if target not in names and target != DEFAULT_PROFILE:
            problems.append(f"{where}: no profile named {target!r}")
            continue
        chain = [name]
        while target is not None and target not in chain:
            chain.append(target)
            target = next_of(target)
        if target == name:
            cycle = " -> ".join((*chain, name))
            problems.append(f"{where}: leads back to {name!r} ({cycle})")
    return problems


# -- the registry ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _url_route(pattern: str) -> tuple[str, str, int | None, str, str]:
    """A URL-prefix route as (scheme, host, port, path, query), or ``ConfigError``."""
    import httpx

    where = f"routes.{masked_url(pattern)!r}"
    try:
        url = httpx.URL(pattern)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: not a valid URL ({exc})") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{where}: expected an http:// or https:// URL with a host")
    if url.userinfo or url.fragment:
        raise ConfigError(f"{where}: a route has no userinfo and no fragment")
    return url.scheme, url.host, url.port, url.path, url.query.decode("ascii")


def _route_matches(pattern: str, url: httpx.URL) -> bool:
    if "://" in pattern:
        # Origin equal, then the path on a segment boundary: "https://api.example" must not
        # match "https://api.example.evil.net", nor "/v2" match "/v2-beta". The request's
        # userinfo plays no part (httpx.URL keeps it apart from the host).
        scheme, host, port, path, query = _url_route(pattern)
        if url.scheme != scheme or url.host != host or url.port != port:
            return False
        if query:
            return url.path == path and url.query.decode("ascii").startswith(query)
        return (
            path in ("", "/")
            or url.path == path
            or url.path.startswith(path if path.endswith("/") else f"{path}/")
        )
    host = url.host.lower()
    if pattern.startswith("*."):
        return host.endswith(pattern[1:].lower())
    return host == pattern.lower()


def _route_problems(patterns: Iterable[str]) -> list[str]:
    problems = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            problems.append(f"routes.{pattern!r}: expected a non-empty string")
        elif "://" in pattern:
            try:
                _url_route(pattern)
            except ConfigError as error:
                problems.extend(error.problems)
    return problems


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
        redact_path: Redact URL paths in events (see :meth:`Pipeline.builder
            <httpx_resilience.Pipeline.builder>`).

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
        redact_path: PathRedaction | None = None,
    ) -> None:
        self._clock = clock
        self._listeners = tuple(listeners)
        self._include_query = include_query
        self._redact_path = _path_redactor(redact_path)
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
        unknown.extend(_route_problems(pattern for pattern, _name in self._routes))
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
                    redact_path=self._redact_path,
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
            if not isinstance(named, str):
                raise TypeError(
                    f"the {PROFILE_EXTENSION!r} request extension must be a profile name "
                    f"(a str), got {named!r}"
                )
            self._known(named)
            return named
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
        redact_path: PathRedaction | None = None,
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
            redact_path: Redact URL paths in events (see :meth:`Pipeline.builder
                <httpx_resilience.Pipeline.builder>`).

        Raises:
            ConfigError: with one message per problem found.
        """
        prefix = f"{source}: " if source else ""
        problems: list[str] = []
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{prefix}expected a table of profiles and routes, got {mapping!r}")
        for key in mapping:
            if key not in ("profiles", "routes"):
                problems.append(_unknown(key, ["profiles", "routes"], str(key)))
        raw_profiles_in = mapping.get("profiles", {})
        if not isinstance(raw_profiles_in, Mapping):
            raise ConfigError(f"{prefix}profiles: expected a table, got {raw_profiles_in!r}")
        raw_profiles: dict[str, dict[str, Any]] = {}
        for name, raw in raw_profiles_in.items():
            if not isinstance(name, str) or not name:
                problems.append(f"profiles.{name!r}: a profile name must be a non-empty string")
            elif isinstance(raw, Mapping):
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
                # Its base is broken; still report what is wrong with its own keys.
                own = {k: v for k, v in raw_profiles[name].items() if k != "extends"}
                _parse(Profile, own, f"profiles.{name}", problems, partial=True)
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
            problems.extend(_route_problems(pattern for pattern, _name in routes))
        problems.extend(_alternate_problems(raw_profiles, resolved))
        if problems:
            raise ConfigError([f"{prefix}{p}" for p in dict.fromkeys(problems)])
        return cls(
            profiles,
            routes=routes,
            clock=clock,
            listeners=listeners,
            include_query=include_query,
            source=source,
            redact_path=redact_path,
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
        redact_path: PathRedaction | None = None,
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
            redact_path=redact_path,
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
