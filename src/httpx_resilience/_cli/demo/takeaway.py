"""The takeaway: one paragraph, in plain English, of what the two clients' figures say; and
how a figure is written (a rate, a latency, counts by kind)."""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import (
    BrokenCircuitError,
    BulkheadRejected,
    ConcurrencyLimitRejected,
    IsolatedCircuitError,
    PacingRejected,
    RateLimitRejected,
)
from .figures import ClientFigures
from .options import RESILIENT_NAME
from .scenarios import Scenario

__all__ = ["format_counts", "format_latency", "format_rate", "takeaway"]


def format_rate(rate: float) -> str:
    """``"97.5%"``: a share, as a percentage with one decimal."""
    return f"{rate:.1%}"


def format_latency(seconds: float | None) -> str:
    """``"4.2 ms"``, ``"310 ms"``, ``"1.52 s"``, or ``"-"`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1.0:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def format_counts(counts: Sequence[tuple[str, int]]) -> str:
    """``"HTTP 503 x41, ReadError x7"``, or ``"none"``."""
    return ", ".join(f"{kind} x{count}" for kind, count in counts) or "none"


def _headline(plain: ClientFigures, resilient: ClientFigures) -> str:
    gain = resilient.success_rate - plain.success_rate
    cost = (
        f"{resilient.upstream_per_request:.2f} upstream requests per call "
        f"(plain httpx: {plain.upstream_per_request:.2f})"
    )
    if gain > 0.005:
        return (
            f"{RESILIENT_NAME} turned {format_rate(plain.success_rate)} success into "
            f"{format_rate(resilient.success_rate)} for {cost}."
        )
    if gain < -0.005:
        return (
            f"{RESILIENT_NAME} did worse here: {format_rate(resilient.success_rate)} success "
            f"against {format_rate(plain.success_rate)} for plain httpx, with {cost}."
        )
    return f"Both clients succeeded on about {format_rate(plain.success_rate)} of calls, {cost}."


def _clearly_above(first: float, second: float) -> bool:
    return first > 1.25 * second and first - second > 0.05


def _latency_sentence(plain: ClientFigures, resilient: ClientFigures) -> str:
    if plain.p99 is None or resilient.p99 is None or plain.p50 is None or resilient.p50 is None:
        return ""
    change = f"p50 {format_latency(plain.p50)} -> {format_latency(resilient.p50)}, p99 " + (
        f"{format_latency(plain.p99)} -> {format_latency(resilient.p99)}"
    )
    if _clearly_above(resilient.p99, plain.p99):
        sentence = f"Its tail latency went up ({change})"
        if resilient.upstream_per_request > 1.01:
            sentence += (
                ": a retried call waits between its tries, for its backoff or for as long as "
                "the server's Retry-After asks"
            )
        return sentence + "."
    if _clearly_above(plain.p99, resilient.p99):
        return f"Its tail latency went down ({change})."
    return f"Tail latency was about the same ({change})."


#: Failures raised by the client's own policies before the upstream was called, and why.
_REJECTIONS = {
    BrokenCircuitError.__name__: "its circuit breaker was open",
    IsolatedCircuitError.__name__: "its circuit breaker was held open",
    BulkheadRejected.__name__: "its bulkhead was full",
    RateLimitRejected.__name__: "its rate limiter had no token",
    ConcurrencyLimitRejected.__name__: "its adaptive concurrency limit was reached",
    PacingRejected.__name__: "the upstream had asked it to wait longer than the call could",
}


def _rejection_sentence(resilient: ClientFigures) -> str:
    rejected = [(kind, count) for kind, count in resilient.failures if kind in _REJECTIONS]
    if not rejected:
        return ""
    total = sum(count for _, count in rejected)
    reasons = " or ".join(_REJECTIONS[kind] for kind, _ in rejected)
    share = total / resilient.logical_requests
    sentence = f"{total} of its calls ({share:.0%}) never reached the upstream because {reasons}"
    if any(kind == BrokenCircuitError.__name__ for kind, _ in rejected):
        sentence += (
            ": a breaker opens when the share of failed tries passes its threshold, then "
            "gives the upstream a rest, sending it one probe every half second; a call "
            "waits for the next probe's verdict and is rejected if the probe fails"
        )
    if any(kind == ConcurrencyLimitRejected.__name__ for kind, _ in rejected):
        sentence += (
            "; in an overload (more calls coming than completing) the limit keeps only a short "
            "queue and refuses the rest at once, rather than letting them wait at the upstream "
            "until their callers give up"
        )
    return sentence + "."


def _leftover_sentence(resilient: ClientFigures) -> str:
    if not resilient.failures:
        return f"No call through {RESILIENT_NAME} failed."
    sentence = f"What still failed through {RESILIENT_NAME}: {format_counts(resilient.failures)}"
    stopped = dict(resilient.retries_stopped)
    if stopped.get("budget"):
        sentence += (
            f"; for {stopped['budget']} of them the retry budget said no more retries, by design: "
            "it caps retries at a share of the traffic, so that an upstream failing this often "
            "is not piled on"
        )
    return sentence + "."


def takeaway(scenario: Scenario, plain: ClientFigures, resilient: ClientFigures) -> str:
    """One paragraph, in plain English, of what the figures say."""
    if not plain.logical_requests or not resilient.logical_requests:
        return "No call finished, so there is nothing to compare."
    sentences = [
        _headline(plain, resilient),
        _latency_sentence(plain, resilient),
        _leftover_sentence(resilient),
        _rejection_sentence(resilient),
        scenario.note,
    ]
    return " ".join(sentence for sentence in sentences if sentence)
