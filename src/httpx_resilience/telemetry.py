"""Events: what policies report when they act, and where those reports go.

Every event is recorded in the execution's :class:`~httpx_resilience.ExecutionReport`, passed to
the listeners given to :meth:`Pipeline.builder <httpx_resilience.Pipeline.builder>` (or to a
:class:`~httpx_resilience.Registry`), and logged to ``logging.getLogger("httpx_resilience")``:
circuit state changes at WARNING, retries at INFO, everything else at DEBUG. Events are only made
off the happy path, so a call that succeeds at once pays nothing for telemetry unless a listener
asks for the duration of every execution (:class:`OpenTelemetryListener` does).

Nothing sensitive is emitted: no header values, no bodies, no exception messages (outcomes are
described by status code or exception class), and URLs without their user information and,
unless the pipeline is built with ``include_query=True``, without their query string. Paths can
hold tokens too (``/reset/<token>``): a pipeline built with ``redact_path=`` shows them redacted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._version import __version__

if TYPE_CHECKING:
    import httpx

    from .context import Context
    from .outcome import Outcome

__all__ = [
    "EVENT_NAMES",
    "REDACTED",
    "ExecutionListener",
    "Listener",
    "OpenTelemetryListener",
    "PathRedaction",
    "ResilienceEvent",
    "Telemetry",
    "describe_outcome",
    "emit",
    "safe_url",
]

logger = logging.getLogger("httpx_resilience")
# A library does not print: without logging configured by the application, events go nowhere.
logger.addHandler(logging.NullHandler())

#: Every event name a built-in policy emits.
EVENT_NAMES = frozenset(
    {
        "retry",
        "timeout",
        "circuit_opened",
        "circuit_half_opened",
        "circuit_closed",
        "bulkhead_rejected",
        "limit_changed",
        "concurrency_limited",
        "rate_limited",
        "rate_limit_backend_failed",
        "fallback",
        "hedge",
        "budget_exhausted",
    }
)

_LEVELS: Mapping[str, int] = {
    "circuit_opened": logging.WARNING,
    "circuit_half_opened": logging.WARNING,
    "circuit_closed": logging.WARNING,
    "retry": logging.INFO,
}

_EMPTY: Mapping[str, Any] = MappingProxyType({})

#: What stands in for a redacted part of a URL path.
REDACTED = "***"

#: How to redact URL paths in events: a function of the path returning the path to show, or
#: regular expressions whose groups (or, without groups, whole matches) are replaced by
#: :data:`REDACTED`.
PathRedaction = Callable[[str], str] | Iterable[str | re.Pattern[str]]


def _path_redactor(option: PathRedaction | None) -> Callable[[str], str] | None:
    """The ``redact_path=`` option as one function of the path, checked and compiled once."""
    if option is None or callable(option):
        return option
    wrong = (
        "redact_path must be a function of the path or a list of regular expressions, "
        f"got {option!r}"
    )
    if isinstance(option, (str, bytes)) or not isinstance(option, Iterable):
        raise ValueError(wrong)
    patterns: list[re.Pattern[str]] = []
    for item in option:
        if isinstance(item, re.Pattern) and isinstance(item.pattern, str):
            patterns.append(item)
        elif isinstance(item, str):
            try:
                patterns.append(re.compile(item))
            except re.error as exc:
                raise ValueError(f"redact_path: {item!r} is not a valid pattern ({exc})") from None
        else:
            raise ValueError(f"redact_path: expected a regular expression, got {item!r}")

    def redact(path: str) -> str:
        for pattern in patterns:
            path = pattern.sub(_redact_match, path)
        return path

    return redact


def _redact_match(match: re.Match[str]) -> str:
    """The match with each of its groups (or, without groups, all of it) redacted."""
    groups = match.re.groups
    if not groups:
        return REDACTED
    text = match.group(0)
    start = position = match.start()
    parts: list[str] = []
    for index in range(1, groups + 1):
        begin, end = match.span(index)
        if begin < position:
            continue  # did not take part, or lies inside a group already redacted
        parts.append(text[position - start : begin - start])
        parts.append(REDACTED)
        position = end
    parts.append(text[position - start :])
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class ResilienceEvent:
    """Something a policy did.

    Attributes:
        name: What happened (one of :data:`EVENT_NAMES` for the built-in policies).
        policy: The kind of policy that acted (``"retry"``, ``"timeout"``...).
        profile: The execution's operation key (the profile name in the HTTP layer), if any.
        key: The partition key, for partitioned policies.
        attempt: The 0-based try the event belongs to.
        outcome: A short, safe description of the outcome that caused it (``"HTTP 503"``,
            ``"ConnectError"``); never header values, bodies or URLs.
        duration: Seconds, where the event has one (the try's duration, the wait to come...).
        timestamp: The policy's clock reading when it happened (monotonic seconds).
        detail: Further facts particular to the event (``delay``, ``retry_after``...).
        method: The HTTP method of the request, in the HTTP layer.
        url: The request's URL without user information (nor query string, unless the pipeline
            was built with ``include_query=True``; its path redacted if the pipeline was built
            with ``redact_path=``), in the HTTP layer.
    """

    name: str
    policy: str
    profile: str | None = None
    key: str | None = None
    attempt: int = 0
    outcome: str | None = None
    duration: float | None = None
    timestamp: float = 0.0
    detail: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    method: str | None = None
    url: str | None = None


#: A callable that receives every event; it must not block.
Listener = Callable[[ResilienceEvent], None]


@runtime_checkable
class ExecutionListener(Protocol):
    """A listener that also wants to know about every execution, successful ones included.

    Attaching one costs the happy path two clock readings per execution.
    """

    def __call__(self, event: ResilienceEvent) -> None:
        """Receive an event."""

    def on_execution(
        self, context: Context, duration: float, exception: BaseException | None
    ) -> None:
        """An execution ended after ``duration`` seconds (``exception`` if it raised)."""


class Telemetry:
    """Where a pipeline's events go, and what they may show."""

    __slots__ = ("include_query", "listeners", "redact_path", "timed")

    def __init__(
        self,
        listeners: Iterable[Listener] = (),
        *,
        include_query: bool = False,
        redact_path: PathRedaction | None = None,
    ):
        self.listeners: tuple[Listener, ...] = tuple(listeners)
        for listener in self.listeners:
            if not callable(listener):
                raise TypeError(f"a listener must be callable, got {listener!r}")
        self.include_query = bool(include_query)
        #: The function that redacts the paths of URLs in events, or ``None``.
        self.redact_path: Callable[[str], str] | None = _path_redactor(redact_path)
        # The listeners that time every execution: none, the happy path reads no clock for it.
        self.timed: tuple[ExecutionListener, ...] = tuple(
            listener for listener in self.listeners if isinstance(listener, ExecutionListener)
        )

    def executed(self, context: Context, duration: float, exception: BaseException | None) -> None:
        """Tell the timing listeners that an execution ended."""
        for listener in self.timed:
            try:
                listener.on_execution(context, duration, exception)
            except Exception:
                logger.exception("resilience execution listener %r failed", listener)


#: The telemetry of a pipeline built without listeners.
NO_TELEMETRY = Telemetry()


def safe_url(
    url: httpx.URL, *, include_query: bool = False, redact_path: Callable[[str], str] | None = None
) -> str:
    """``url`` fit for logs and metrics: never its user information; its query only if asked;
    its path as ``redact_path`` (a function of the path, such as
    :attr:`Telemetry.redact_path`) shows it, when given."""
    host = url.host
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address keeps its brackets, or its port would merge in
    netloc = host if url.port is None else f"{host}:{url.port}"
    path = url.path
    if redact_path is not None:
        try:
            path = redact_path(path)
        except Exception:
            # Telemetry never breaks a call; a path that could not be redacted is not shown.
            logger.exception("resilience redact_path %r failed", redact_path)
            path = "/" + REDACTED
    text = f"{url.scheme}://{netloc}{path}"
    if include_query and url.query:
        text += "?" + url.query.decode("ascii", "replace")
    return text


def describe_outcome(outcome: Outcome[Any] | None) -> str | None:
    """A short description of an outcome that is safe to log: a status code or a class name."""
    if outcome is None:
        return None
    if outcome.exception is not None:
        return type(outcome.exception).__name__
    status = getattr(outcome.result, "status_code", None)
    if isinstance(status, int):
        return f"HTTP {status}"
    return type(outcome.result).__name__


def emit(
    context: Context,
    name: str,
    policy: str,
    *,
    timestamp: float,
    key: str | None = None,
    outcome: Outcome[Any] | None = None,
    duration: float | None = None,
    **detail: Any,
) -> ResilienceEvent:
    """Record an event in the context's report and deliver it to listeners and the log.

    A listener that raises is logged and skipped: telemetry never breaks a call.
    """
    telemetry = context.telemetry
    request = context.request
    event = ResilienceEvent(
        name=name,
        policy=policy,
        profile=context.operation_key,
        key=key,
        attempt=context.attempt,
        outcome=describe_outcome(outcome),
        duration=duration,
        timestamp=timestamp,
        detail=MappingProxyType(detail) if detail else _EMPTY,
        method=None if request is None else request.method,
        url=None
        if request is None
        else safe_url(
            request.url,
            include_query=telemetry.include_query,
            redact_path=telemetry.redact_path,
        ),
    )
    context.report.events.append(event)
    for listener in telemetry.listeners:
        try:
            listener(event)
        except Exception:
            logger.exception("resilience event listener %r failed on %s", listener, name)
    level = _LEVELS.get(name, logging.DEBUG)
    if logger.isEnabledFor(level):
        logger.log(level, "%s", _format(event), extra={"resilience_event": event})
    return event


def _format(event: ResilienceEvent) -> str:
    parts = [f"{event.policy}: {event.name}"]
    if event.url is not None:
        parts.append(f"{event.method} {event.url}")
    if event.profile is not None:
        parts.append(f"profile={event.profile}")
    if event.key is not None:
        parts.append(f"key={event.key}")
    parts.append(f"attempt={event.attempt}")
    if event.outcome is not None:
        parts.append(f"outcome={event.outcome}")
    if event.duration is not None:
        parts.append(f"duration={event.duration:.3f}s")
    parts.extend(f"{k}={v}" for k, v in event.detail.items())
    return " ".join(parts)


# The adaptive limiter's events, and the gauges recorded from their detail.
_CONCURRENCY_EVENTS = frozenset({"limit_changed", "concurrency_limited"})
_CONCURRENCY_GAUGES = (
    ("limit", "{call}", "Calls an adaptive concurrency limit lets in at once"),
    ("in_flight", "{call}", "Calls in flight through an adaptive concurrency limit"),
    ("queued", "{call}", "Calls waiting for an adaptive concurrency limit"),
)


class OpenTelemetryListener:
    """Events and durations as OpenTelemetry metrics (needs the ``otel`` extra).

    Records:

    - ``resilience.events``: a counter of events, with attributes ``event``, ``policy``,
      ``profile`` and ``key`` (the partition: mind its cardinality if you partition per tenant);
    - ``resilience.attempt.duration``: a histogram of each try's duration, in seconds, with
      ``profile`` and ``outcome`` (``HTTP 503``, ``ConnectError``...);
    - ``resilience.pipeline.duration``: a histogram of each execution's duration, in seconds,
      with ``profile`` and ``outcome``;
    - ``resilience.concurrency.limit``, ``resilience.concurrency.in_flight`` and
      ``resilience.concurrency.queued``: gauges of an adaptive limit, its calls in flight and
      queued, with ``profile`` and ``key``, recorded from its ``limit_changed`` and
      ``concurrency_limited`` events (so at most once a second while the limit moves, and at
      every rejection).

    Args:
        meter_provider: Where to create the instruments (default: the global provider).
    """

    def __init__(self, meter_provider: Any = None) -> None:
        try:
            from opentelemetry import metrics
        except ImportError as exc:  # pragma: no cover - the extra is installed in the test runs
            raise ImportError(
                "OpenTelemetryListener needs the otel extra: pip install 'httpx-resilience[otel]'"
            ) from exc
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter("httpx_resilience", __version__)
        self._events = meter.create_counter(
            "resilience.events", unit="{event}", description="Events of resilience policies"
        )
        self._attempts = meter.create_histogram(
            "resilience.attempt.duration", unit="s", description="Duration of each try"
        )
        self._executions = meter.create_histogram(
            "resilience.pipeline.duration",
            unit="s",
            description="Duration of each execution of a pipeline, its tries and waits included",
        )
        self._gauges = {
            detail: meter.create_gauge(
                f"resilience.concurrency.{detail}", unit=unit, description=description
            )
            for detail, unit, description in _CONCURRENCY_GAUGES
        }

    def __call__(self, event: ResilienceEvent) -> None:
        """Count the event (and for an adaptive limit's, record its gauges)."""
        profile = event.profile or ""
        key = event.key or ""
        self._events.add(
            1, {"event": event.name, "policy": event.policy, "profile": profile, "key": key}
        )
        if event.name in _CONCURRENCY_EVENTS:
            detail = event.detail
            for name, gauge in self._gauges.items():
                value = detail.get(name)
                if value is not None:
                    gauge.set(value, {"profile": profile, "key": key})

    def on_execution(
        self, context: Context, duration: float, exception: BaseException | None
    ) -> None:
        """Record the execution's duration and each of its tries'."""
        profile = context.operation_key or ""
        report = context.report
        if exception is not None:
            outcome = type(exception).__name__
        else:
            outcome = describe_outcome(report.outcome) or "ok"
        self._executions.record(duration, {"profile": profile, "outcome": outcome})
        for attempt in report.attempts:
            self._attempts.record(
                attempt.duration, {"profile": profile, "outcome": describe_outcome(attempt) or ""}
            )
