"""The schema of a profile: :class:`Profile` and the options of each of its policies.

Each options class is a frozen dataclass validated when built (every problem at once, each
naming the field, see ``_options``); the loader parses a file's tables into the same classes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .._validate import (
    BOOLEAN,
    NON_NEGATIVE,
    POSITIVE,
    TEXT,
    choice,
    integer,
)
from ..policies._options import vars_of
from ..policies._partitions import DEFAULT_MAX_PARTITIONS
from ..policies._standard import STANDARD
from ..policies.adaptive_limit import AdaptiveLimitPolicyOptions
from ..policies.adaptive_throttle import AdaptiveThrottlePolicyOptions
from ..policies.budget import BudgetOptions as BudgetOptions
from ..policies.bulkhead import BulkheadPolicyOptions
from ..policies.circuit_breaker import CircuitBreakerPolicyOptions
from ..policies.hedging import HedgingOptions as HedgingOptions
from ..policies.pacing import PacingPolicyOptions
from ..policies.rate_limit import RateLimiterPolicyOptions
from ..policies.retry import RetryPolicyOptions
from ._building import build_pipeline
from ._options import _field, _field_types, _Options, _options_class
from ._values import _HEADER_NAMES, _HTTP_URL, _NEVER, _PARTITION, _REDIS_URL, _STATUSES

if TYPE_CHECKING:
    from .._clock import Clock
    from ..pipeline import Pipeline
    from ..telemetry import Listener, PathRedaction
    from ._registry import Registry

#: The profile a request uses when neither its extensions nor a route name one.
DEFAULT_PROFILE = "default"

#: The name a file's profile ``extends`` to build on :meth:`Profile.model_api`.
MODEL_API_PROFILE = "model-api"

#: What the model APIs' SDKs (OpenAI, Anthropic) retry: :meth:`Profile.model_api`'s statuses.
MODEL_API_STATUSES: tuple[int | str, ...] = (408, 409, 429, "5xx")


@dataclass(frozen=True)
class RetryOptions(RetryPolicyOptions):
    """Options of a :class:`~httpx_resilience.Retry` (full-jitter backoff).

    Unlike a bare ``Retry``, a profile's retry has a :class:`BudgetOptions` budget unless it is
    turned off (``budget = false``): a shared configuration should not allow retry storms.

    ``statuses`` (codes and classes such as ``"5xx"``) replaces the statuses retried (408,
    429, 500, 502, 503 and 504 by default) with
    :func:`~httpx_resilience.http.classify.retry_statuses`, which also obeys an
    ``x-should-retry`` response header.
    """

    max_attempts: int = _field(integer(1), 3)  # required in a profile (no stop= to end it)
    budget: BudgetOptions | None = field(default_factory=BudgetOptions)
    statuses: tuple[int | str, ...] | None = _field(_STATUSES, None, optional=True)


@dataclass(frozen=True)
class CircuitBreakerOptions(CircuitBreakerPolicyOptions):
    """Options of a :class:`~httpx_resilience.CircuitBreaker`; ``partition`` is ``"origin"``
    (one breaker per scheme, host and port: the default) or ``"none"``."""

    partition: str = _field(_PARTITION, "origin")
    max_partitions: int = _field(integer(1), DEFAULT_MAX_PARTITIONS)


@dataclass(frozen=True)
class AdaptiveThrottleOptions(AdaptiveThrottlePolicyOptions):
    """Options of an :class:`~httpx_resilience.AdaptiveThrottler`; ``partition`` is
    ``"origin"`` (one throttle per scheme, host and port: the default) or ``"none"``."""

    partition: str = _field(_PARTITION, "origin")
    max_partitions: int = _field(integer(1), DEFAULT_MAX_PARTITIONS)


@dataclass(frozen=True)
class BulkheadOptions(BulkheadPolicyOptions):
    """Options of a :class:`~httpx_resilience.Bulkhead` (``partition``: ``"none"``, the
    default, or ``"origin"``)."""

    partition: str = _field(_PARTITION, "none")
    max_partitions: int = _field(integer(1), DEFAULT_MAX_PARTITIONS)


@dataclass(frozen=True)
class PacingOptions(PacingPolicyOptions):
    """Options of a :class:`~httpx_resilience.Pacing` gate (``partition``: ``"origin"``, the
    default, or ``"none"``)."""

    partition: str = _field(_PARTITION, "origin")
    max_partitions: int = _field(integer(1), DEFAULT_MAX_PARTITIONS)


@dataclass(frozen=True)
class AdaptiveLimitOptions(AdaptiveLimitPolicyOptions):
    """Options of an :class:`~httpx_resilience.AdaptiveLimiter` (``partition``: ``"origin"``,
    one limit per scheme, host and port: the default, or ``"none"``)."""

    partition: str = _field(_PARTITION, "origin")
    max_partitions: int = _field(integer(1), DEFAULT_MAX_PARTITIONS)


@dataclass(frozen=True)
class RedisOptions(_Options):
    """A Redis server shared by every process: the rate limit's backend."""

    url: str = _field(_REDIS_URL)
    prefix: str = _field(TEXT, "httpx-resilience")
    failure_mode: str = _field(choice("open", "closed"), "open")
    timeout: float = _field(POSITIVE, 0.1)
    retry_interval: float = _field(NON_NEGATIVE, 1.0)
    max_connections: int | None = _field(integer(1), None, optional=True)


@dataclass(frozen=True)
class RateLimitOptions(RateLimiterPolicyOptions):
    """Options of a :class:`~httpx_resilience.RateLimiter` (``partition``: ``"none"``, the
    default, or ``"origin"``; ``backend``: in memory unless a :class:`RedisOptions`)."""

    partition: str = _field(_PARTITION, "none")
    max_partitions: int = _field(integer(1), DEFAULT_MAX_PARTITIONS)
    backend: RedisOptions | None = None


@dataclass(frozen=True)
class CacheOptions(_Options):
    """Options of a :class:`~httpx_resilience.ResponseCache`."""

    maxsize: int = _field(integer(1), 1000)
    ttl: float = _field(POSITIVE, 300.0)
    max_body_bytes: int = _field(integer(0), 1024 * 1024)
    max_bytes: int = _field(integer(1), 64 * 1024 * 1024)
    identity_headers: tuple[str, ...] = _field(_HEADER_NAMES, ())
    store_private: bool = _field(_NEVER, False)


@dataclass(frozen=True)
class AlternateOptions(_Options):
    """An :class:`~httpx_resilience.Alternate`: a ``base_url`` and the ``profile`` whose
    pipeline it runs through (its own breaker and limits), both optional."""

    base_url: str | None = _field(_HTTP_URL, None, optional=True)
    profile: str | None = _field(TEXT, None, optional=True)
    send_non_idempotent: bool = _field(BOOLEAN, False)
    forward_credentials: bool = _field(BOOLEAN, False)
    identity_headers: tuple[str, ...] = _field(_HEADER_NAMES, ())


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
class Profile(_Options):
    """A declarative, validated description of one pipeline.

    Each field is one policy, ``None`` when the profile has none. The pipeline they build is,
    outermost first: fallback, total timeout, retry, hedging, circuit breaker, adaptive
    throttle, pacing, adaptive limit, bulkhead, rate limit, attempt timeout. Polly's
    cross-policy rules are enforced: the attempt timeout is at most the total timeout, and a
    time-window breaker samples at least twice the attempt timeout.

    Attributes:
        retry_non_idempotent: Retry and hedge POST and PATCH requests of this profile even
            without an ``Idempotency-Key``.
    """

    total_timeout: float | None = _field(POSITIVE, None, optional=True)
    attempt_timeout: float | None = _field(POSITIVE, None, optional=True)
    retry: RetryOptions | None = None
    hedging: HedgingOptions | None = None
    circuit_breaker: CircuitBreakerOptions | None = None
    adaptive_throttle: AdaptiveThrottleOptions | None = None
    pacing: PacingOptions | None = None
    adaptive_limit: AdaptiveLimitOptions | None = None
    bulkhead: BulkheadOptions | None = None
    rate_limit: RateLimitOptions | None = None
    fallback: FallbackOptions | None = None
    retry_non_idempotent: bool = _field(BOOLEAN, False)

    #: The order policies are built in, outermost first.
    ORDER: ClassVar[tuple[str, ...]] = (
        "fallback",
        "total_timeout",
        "retry",
        "hedging",
        "circuit_breaker",
        "adaptive_throttle",
        "pacing",
        "adaptive_limit",
        "bulkhead",
        "rate_limit",
        "attempt_timeout",
    )

    @classmethod
    def standard(cls) -> Profile:
        """The profile of :meth:`Pipeline.standard() <httpx_resilience.Pipeline.standard>`."""
        standard = STANDARD  # shared with Pipeline.standard()
        return cls(
            total_timeout=standard.total_timeout,
            attempt_timeout=standard.attempt_timeout,
            retry=RetryOptions(**vars_of(standard.retry), budget=standard.budget),
            circuit_breaker=CircuitBreakerOptions(
                **vars_of(standard.circuit_breaker),
                partition="origin" if standard.breaker_per_origin else "none",
            ),
            pacing=PacingOptions(**vars_of(standard.pacing)),
            adaptive_limit=(
                None
                if standard.adaptive_limit is None
                else AdaptiveLimitOptions(**vars_of(standard.adaptive_limit))
            ),
        )

    @classmethod
    def model_api(cls) -> Profile:
        """A profile for a model API (OpenAI, Anthropic...) called through its SDK with the
        SDK's own retries off (``max_retries=0``): this profile retries as the SDK would.

        - POST is retried (``retry_non_idempotent``): the SDKs send no ``Idempotency-Key``,
          and a retried generation changes nothing but the bill, as the SDK's own retry does;
        - on 408, 409, 429 and any 5xx (529: overloaded), unless the answer says
          ``x-should-retry: false`` (``true`` forces a retry), waiting what ``retry-after-ms``
          or ``Retry-After`` asks for up to two minutes; 3 tries, full jitter from 0.5 s up to
          8 s, with a retry budget;
        - an attempt timeout of 10 minutes, the SDKs' own request timeout, so that a long
          generation is not cut; for a streamed call (``stream=True``) it bounds the wait for
          the response headers only, and the SDK's httpx read timeout the gaps between events;
        - a total timeout of 30 minutes, and a circuit breaker per origin as the standard
          profile's, sampling 20 minutes (twice the attempt timeout).

        Use it for every request of a client (``ResilientClient(profiles=Profile.model_api())``)
        or extend it in a file (``extends = "model-api"``).
        """
        standard = STANDARD
        attempt_timeout = 600.0
        return cls(
            total_timeout=1800.0,
            attempt_timeout=attempt_timeout,
            retry=RetryOptions(
                max_attempts=3,
                base_delay=0.5,
                max_delay=8.0,
                max_retry_after=120.0,
                statuses=MODEL_API_STATUSES,
            ),
            circuit_breaker=CircuitBreakerOptions(
                **{
                    **vars_of(standard.circuit_breaker),
                    "sampling_duration": 2 * attempt_timeout,
                },
                partition="origin",
            ),
            retry_non_idempotent=True,
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
        return build_pipeline(
            self,
            clock=clock,
            listeners=listeners,
            include_query=include_query,
            registry=registry,
            redact_path=redact_path,
        )


_OFF: Any = object()


def _built_in(name: str) -> Profile | None:
    """The built-in profile a file may extend without defining it: ``"default"`` (the
    standard profile) or ``"model-api"``; ``None`` for any other name."""
    if name == DEFAULT_PROFILE:
        return Profile.standard()
    if name == MODEL_API_PROFILE:
        return Profile.model_api()
    return None


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
