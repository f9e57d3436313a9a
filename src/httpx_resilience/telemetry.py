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
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from ._version import __version__
from .outcome import _is_rejection

if TYPE_CHECKING:
    import httpx

    from ._clock import Clock
    from .context import Context
    from .outcome import Outcome

__all__ = [
    "DURATION_BUCKETS",
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

T = TypeVar("T")

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
        "throttled",
        "pacing_closed",
        "paced",
        "pacing_rejected",
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

    __slots__ = ("include_query", "listeners", "redact_path", "timed", "tracing")

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
        # How the HTTP layer traces requests: none, unless a listener traces (OpenTelemetry).
        self.tracing: _Tracing | None = next(
            (
                listener.tracing
                for listener in self.listeners
                if isinstance(listener, OpenTelemetryListener) and listener.tracing is not None
            ),
            None,
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


class PolicyEvents:
    """The events of one policy, with what every one of them shares bound once.

    A policy makes one at construction with its name and its clock, so that where something
    happens it says only what: ``self._events.emit(context, "timeout", duration=limit)``.

    Args:
        policy: The policy's name in its events (``"circuit_breaker"``).
        clock: The clock an event's timestamp is read from when the call site gives none.
    """

    __slots__ = ("_monotonic", "policy")

    def __init__(self, policy: str, clock: Clock) -> None:
        self.policy = policy
        self._monotonic = clock.monotonic

    def emit(
        self,
        context: Context,
        name: str,
        *,
        timestamp: float | None = None,
        key: str | None = None,
        outcome: Outcome[Any] | None = None,
        duration: float | None = None,
        **detail: Any,
    ) -> ResilienceEvent:
        """:func:`emit` the event ``name`` of this policy, at ``timestamp`` (default: now on
        the policy's clock); the other arguments are :func:`emit`'s."""
        return emit(
            context,
            name,
            self.policy,
            timestamp=self._monotonic() if timestamp is None else timestamp,
            key=key,
            outcome=outcome,
            duration=duration,
            **detail,
        )


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


#: Bucket boundaries (seconds) of the duration histograms: fine enough to tell a 1 ms try from a
#: 300 ms one (the SDK's default boundaries, made for milliseconds, put both in its first bucket),
#: those of OpenTelemetry's HTTP client durations from 5 ms to 10 s, and long waits above.
DURATION_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    30.0,
    60.0,
    120.0,
)

# The adaptive limiter's events, and the gauges recorded from their detail.
_CONCURRENCY_EVENTS = frozenset({"limit_changed", "concurrency_limited"})
_GAUGE_ATTRIBUTES = frozenset({"pipeline.name", "partition.key"})
_CONCURRENCY_GAUGES = (
    ("limit", "{call}", "Calls an adaptive concurrency limit lets in at once"),
    ("in_flight", "{call}", "Calls in flight through an adaptive concurrency limit"),
    ("queued", "{call}", "Calls waiting for an adaptive concurrency limit"),
)


def _error_type(outcome: str | None) -> str | None:
    """The ``error.type`` of an outcome as events describe it: the status code of a response
    (``"503"``, as OpenTelemetry's HTTP conventions write it), else the exception's class."""
    if outcome is None:
        return None
    return outcome[5:] if outcome.startswith("HTTP ") else outcome


class OpenTelemetryListener:
    """Events and durations as OpenTelemetry metrics, and HTTP tries as spans (needs the
    ``otel`` extra).

    Metrics follow OpenTelemetry's semantic conventions and Polly's (``resilience.polly.*``),
    under this library's namespace ``resilience.httpx``. An attribute without a value is left
    out, never recorded as an empty string:

    - ``resilience.httpx.events``: a counter of events, with ``event.name``, ``policy.name``
      (``retry``, ``circuit_breaker``...), ``pipeline.name`` (the profile), ``partition.key``
      (mind its cardinality if you partition per tenant), ``error.type`` (the status code or
      exception class that caused it) and, for ``retry`` and ``hedge``, ``attempt.number``;
    - ``resilience.httpx.attempt.duration``: a histogram of each try's duration, in seconds,
      with ``pipeline.name``, ``attempt.number`` (0 for the first), ``attempt.handled``
      (whether the try was a failure the pipeline handles) and ``error.type``; a try that a
      policy refused (an open circuit, a full bulkhead) reached no dependency and is no
      attempt;
    - ``resilience.httpx.pipeline.duration``: a histogram of each execution's duration, in
      seconds, with ``pipeline.name`` and ``error.type``;
    - ``resilience.httpx.concurrency.limit``, ``.in_flight`` and ``.queued``: gauges of an
      adaptive limit, its calls in flight and queued, with ``pipeline.name`` and
      ``partition.key``, set from its ``limit_changed`` and ``concurrency_limited`` events (so
      at most once a second while the limit moves, and at every refusal).

    Durations are recorded with :data:`DURATION_BUCKETS` as the advised bucket boundaries.

    In the HTTP layer, unless ``traces=False``, each request is also traced: one span for the
    logical call (``resilience``, kind internal) and, under it, one client span per try sent,
    named by the method, carrying ``http.request.resend_count`` on every try after the first,
    and propagating its own trace context in the request's headers. These replace the span
    ``opentelemetry-instrumentation-httpx`` would make for the same try (its instrumentation
    is suppressed inside them), so each try appears once, in client and transport mode alike;
    the instrumentation's span around a :class:`~httpx_resilience.ResilienceTransport`, if any,
    is the parent of the logical one.

    Args:
        meter_provider: Where to create the instruments (default: the global provider).
        tracer_provider: Where to create the spans (default: the global provider).
        traces: Whether to trace HTTP requests.
    """

    def __init__(
        self, meter_provider: Any = None, *, tracer_provider: Any = None, traces: bool = True
    ) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError as exc:  # pragma: no cover - the extra is installed in the test runs
            raise ImportError(
                "OpenTelemetryListener needs the otel extra: pip install 'httpx-resilience[otel]'"
            ) from exc
        if not isinstance(traces, bool):
            raise TypeError(f"OpenTelemetryListener: traces must be True or False, got {traces!r}")
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter("httpx_resilience", __version__)
        self._events = meter.create_counter(
            "resilience.httpx.events",
            unit="{event}",
            description="Events of resilience policies",
        )
        self._attempts = meter.create_histogram(
            "resilience.httpx.attempt.duration",
            unit="s",
            description="Duration of each try of a call",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._executions = meter.create_histogram(
            "resilience.httpx.pipeline.duration",
            unit="s",
            description="Duration of each execution of a pipeline, its tries and waits included",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._gauges = {
            detail: meter.create_gauge(
                f"resilience.httpx.concurrency.{detail}", unit=unit, description=description
            )
            for detail, unit, description in _CONCURRENCY_GAUGES
        }
        #: How the HTTP layer traces requests, or ``None`` (read through ``Telemetry.tracing``).
        self.tracing: _Tracing | None = None
        if traces:
            tracers = tracer_provider if tracer_provider is not None else trace
            self.tracing = _Tracing(tracers.get_tracer("httpx_resilience", __version__))

    def __call__(self, event: ResilienceEvent) -> None:
        """Count the event."""
        attributes: dict[str, str | int] = {"event.name": event.name, "policy.name": event.policy}
        if event.profile:
            attributes["pipeline.name"] = event.profile
        if event.key:
            attributes["partition.key"] = event.key
        error = _error_type(event.outcome)
        if error:
            attributes["error.type"] = error
        if event.name in _ATTEMPT_EVENTS:
            attributes["attempt.number"] = event.attempt
        self._events.add(1, attributes)
        if event.name in _CONCURRENCY_EVENTS:
            where = {k: v for k, v in attributes.items() if k in _GAUGE_ATTRIBUTES}
            detail = event.detail
            for name, gauge in self._gauges.items():
                value = detail.get(name)
                if value is not None:
                    gauge.set(value, where)

    def on_execution(
        self, context: Context, duration: float, exception: BaseException | None
    ) -> None:
        """Record the execution's duration and each of its tries'."""
        profile = context.operation_key
        report = context.report
        classifier = context.classifier
        attributes: dict[str, str | int | bool] = {}
        if profile:
            attributes["pipeline.name"] = profile
        if exception is not None:
            attributes["error.type"] = type(exception).__name__
        else:
            last = report.outcome
            if last is not None and classifier.is_failure(last):
                attributes["error.type"] = _error_type(describe_outcome(last)) or "_OTHER"
        self._executions.record(duration, attributes)
        for attempt in report.attempts:
            failure = attempt.exception
            if failure is not None and _is_rejection(failure):
                continue  # refused by a policy: the dependency was not called
            attributes = {"attempt.number": attempt.number}
            if profile:
                attributes["pipeline.name"] = profile
            handled = classifier.is_failure(attempt)
            attributes["attempt.handled"] = handled
            if handled or failure is not None:
                attributes["error.type"] = _error_type(describe_outcome(attempt)) or "_OTHER"
            self._attempts.record(attempt.duration, attributes)


#: Events that belong to one try, whose number the events counter records.
_ATTEMPT_EVENTS = frozenset({"retry", "hedge"})


class _Tracing:
    """Spans for HTTP requests: one for the logical call, and a child per try sent."""

    __slots__ = ("_suppress", "_tracer")

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer
        # The context key by which HTTP instrumentations (httpx's among them) stand down: in
        # opentelemetry-api's context module; an older API left it to the instrumentation
        # package, as this plain string.
        suppress: Any
        try:
            from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY as suppress
        except ImportError:  # pragma: no cover - an older opentelemetry-api
            suppress = "suppress_http_instrumentation"
        self._suppress: str = suppress

    def tries(self, context: Context, call: Callable[[], Awaitable[Any]]) -> Callable[[], Any]:
        """``call``, the try of an HTTP exchange, made to run in a client span of its own each
        time, numbered by how many tries of the exchange were sent before it."""
        request = context.request
        attributes = self._attributes(context)
        attributes.pop("pipeline.name", None)
        sent = [0]

        async def attempt() -> Any:
            resend = sent[0]
            sent[0] += 1
            return await self._attempt(request, attributes, resend, call)

        return attempt

    async def trace(self, context: Context, run: Callable[[], Awaitable[T]]) -> T:
        """Run ``run`` (the execution of ``context``, an HTTP exchange whose call
        :meth:`tries` made) in a span for the logical call."""
        from opentelemetry.trace import SpanKind

        with self._tracer.start_as_current_span(
            "resilience", kind=SpanKind.INTERNAL, attributes=self._attributes(context)
        ):
            return await run()

    @staticmethod
    def _attributes(context: Context) -> dict[str, str]:
        """The attributes of the logical call."""
        request = context.request
        telemetry = context.telemetry
        attributes: dict[str, str] = {}
        if context.operation_key:
            attributes["pipeline.name"] = context.operation_key
        if request is not None:
            attributes["http.request.method"] = request.method
            attributes["url.full"] = safe_url(
                request.url,
                include_query=telemetry.include_query,
                redact_path=telemetry.redact_path,
            )
        return attributes

    async def _attempt(
        self,
        request: httpx.Request | None,
        logical: Mapping[str, str],
        resend: int,
        call: Callable[[], Awaitable[Any]],
    ) -> Any:
        """One try, in a client span of its own."""
        from opentelemetry import context as otel_context
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, Status, StatusCode

        attributes: dict[str, str | int] = dict(logical)
        name = "HTTP"
        if request is not None:
            name = request.method
            url = request.url
            attributes["server.address"] = url.host
            port = url.port or (443 if url.scheme == "https" else 80)
            attributes["server.port"] = port
        if resend:
            attributes["http.request.resend_count"] = resend
        with self._tracer.start_as_current_span(
            name, kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            if request is not None:
                # Each try carries its own span's context, not the first try's.
                propagate.inject(request.headers)
            # An instrumentation of the transport below would trace this try a second time.
            token = otel_context.attach(otel_context.set_value(self._suppress, True))
            try:
                result = await call()
            except BaseException as exc:
                span.set_attribute("error.type", type(exc).__qualname__)
                raise
            finally:
                otel_context.detach(token)
            status = getattr(result, "status_code", None)
            if isinstance(status, int):
                span.set_attribute("http.response.status_code", status)
                if status >= 400:
                    span.set_attribute("error.type", str(status))
                    span.set_status(Status(StatusCode.ERROR))
            return result
