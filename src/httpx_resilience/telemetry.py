"""Events: what policies report when they act, and where those reports go.

Every event is recorded in the execution's :class:`~httpx_resilience.ExecutionReport`, passed to
the listeners given to :meth:`Pipeline.builder <httpx_resilience.Pipeline.builder>`, and logged to
``logging.getLogger("httpx_resilience")``: circuit state changes at WARNING, retries at INFO,
everything else at DEBUG. Events are only made off the happy path, so a call that succeeds at
once pays nothing for telemetry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import Context
    from .outcome import Outcome

__all__ = ["EVENT_NAMES", "Listener", "ResilienceEvent", "describe_outcome", "emit"]

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
        "rate_limited",
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


#: A callable that receives every event; it must not block.
Listener = Callable[[ResilienceEvent], None]


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
    )
    context.report.events.append(event)
    for listener in context._listeners:
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
