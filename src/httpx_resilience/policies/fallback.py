"""Fallback: when the call fails anyway, answer with the next best thing.

Outermost by convention, it sees the pipeline's final outcome. On a handled failure (by default:
any failure the place's classifier names, and every
:class:`~httpx_resilience.ResilienceError`: an open circuit, a full bulkhead, a timeout...), it
asks its sources in turn, first to last, and returns the first answer:

- ``cache=``: a :class:`~httpx_resilience.ResponseCache` of earlier successful responses
  (stale-if-error);
- ``alternate=``: another provider or mirror (a base URL, a transport, or an
  :class:`~httpx_resilience.Alternate` with its own pipeline);
- ``factory=``: an async callable receiving the failed :class:`~httpx_resilience.Outcome` and the
  :class:`~httpx_resilience.Context`;
- ``value=``: a fixed value.

A source with nothing to offer (a cache miss, an alternate that fails too) passes to the next;
when none answers, the original failure goes on as if there were no fallback. The execution's
report says which source answered and what it answered for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from .._clock import SYSTEM_CLOCK, Clock
from ..context import Context
from ..errors import ResilienceError
from ..outcome import Outcome, predicate_text
from ..telemetry import PolicyEvents, describe_outcome

__all__ = ["Fallback", "FallbackSource"]

T = TypeVar("T")
_UNSET: Any = object()


@runtime_checkable
class FallbackSource(Protocol):
    """Something that can answer for a failed call.

    Attributes:
        name: What the report calls it (``"cache"``, ``"alternate"``...).
    """

    name: str

    def observe(self, result: Any, context: Context) -> Any:
        """See a successful result go by (a cache stores it); return the result to pass on."""
        ...

    async def answer(self, outcome: Outcome[Any], context: Context) -> Outcome[Any] | None:
        """The outcome to give instead of the failed ``outcome``, or ``None`` for none."""
        ...


class _Value:
    name = "value"

    def __init__(self, value: Any) -> None:
        self._value = value

    def observe(self, result: Any, context: Context) -> Any:
        return result

    async def answer(self, outcome: Outcome[Any], context: Context) -> Outcome[Any] | None:
        return Outcome(result=context.classifier.fresh(self._value, context))


class _Factory:
    name = "factory"

    def __init__(self, factory: Callable[[Outcome[Any], Context], Awaitable[Any]]) -> None:
        self._factory = factory

    def observe(self, result: Any, context: Context) -> Any:
        return result

    async def answer(self, outcome: Outcome[Any], context: Context) -> Outcome[Any] | None:
        return Outcome(result=await self._factory(outcome, context))


#: Turns what users may pass as ``alternate=`` (a base URL, a transport) into a source. The HTTP
#: layer registers its adapter here when it is imported, so that this module needs no httpx.
_alternate_adapters: list[Callable[[Any], FallbackSource | None]] = []


def _as_alternate(alternate: Any) -> FallbackSource:
    if isinstance(alternate, FallbackSource):
        return alternate
    for adapt in _alternate_adapters:
        source = adapt(alternate)
        if source is not None:
            return source
    raise ValueError(
        "Fallback: alternate must be a base URL, an httpx transport or an Alternate, "
        f"got {alternate!r}"
    )


class Fallback:
    """Answer with a cached response, an alternate provider, a factory's result or a value
    when the rest of the pipeline fails.

    Args:
        cache: A :class:`~httpx_resilience.ResponseCache`: successful responses are stored as
            they pass, and served when the live call fails.
        alternate: Where to send the request instead: a base URL (``"https://mirror.example"``),
            an httpx transport, or an :class:`~httpx_resilience.Alternate`.
        factory: ``async (outcome, context) -> result``, called with the failed outcome.
        value: A fixed result (in the HTTP layer an :class:`httpx.Response`, copied for each
            use).
        handle: Which outcomes to answer for. Default: what the place's classifier calls a
            failure, and every :class:`~httpx_resilience.ResilienceError`.
        clock: The clock for event timestamps (default: the system clock).

    At least one source is required; several are tried in the order listed above.
    """

    __slots__ = ("_clock", "_events", "_handle", "_observers", "_sources")

    def __init__(
        self,
        *,
        cache: FallbackSource | None = None,
        alternate: Any = None,
        factory: Callable[[Outcome[Any], Context], Awaitable[Any]] | None = None,
        value: Any = _UNSET,
        handle: Callable[[Outcome[Any]], bool] | None = None,
        clock: Clock | None = None,
    ) -> None:
        sources: list[FallbackSource] = []
        if cache is not None:
            if not isinstance(cache, FallbackSource):
                raise ValueError(f"Fallback: cache must be a ResponseCache, got {cache!r}")
            sources.append(cache)
        if alternate is not None:
            sources.append(_as_alternate(alternate))
        if factory is not None:
            if not callable(factory):
                raise ValueError(f"Fallback: factory must be an async callable, got {factory!r}")
            sources.append(_Factory(factory))
        if value is not _UNSET:
            sources.append(_Value(value))
        if not sources:
            raise ValueError("Fallback: give at least one of cache=, alternate=, factory=, value=")
        if handle is not None and not callable(handle):
            raise ValueError(f"Fallback: handle must be a predicate over outcomes, got {handle!r}")
        self._sources = tuple(sources)
        # Only the sources that watch successes (a cache) cost anything on the happy path.
        self._observers = tuple(s for s in sources if not isinstance(s, (_Value, _Factory)))
        self._handle = handle
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._events = PolicyEvents("fallback", self._clock)

    @property
    def sources(self) -> tuple[FallbackSource, ...]:
        """The sources, in the order they are asked."""
        return self._sources

    def describe(self) -> dict[str, Any]:
        """The fallback's sources, in order, as plain data."""
        return {
            "policy": "fallback",
            "options": {
                "sources": [s.name for s in self._sources],
                "handle": None if self._handle is None else predicate_text(self._handle),
            },
            "state": {},
        }

    def __repr__(self) -> str:
        return f"Fallback(sources={[s.name for s in self._sources]!r})"

    async def aclose(self) -> None:
        """Close the sources that hold connections (an alternate's transport)."""
        for source in self._sources:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()

    def _handles(self, outcome: Outcome[Any], context: Context) -> bool:
        if self._handle is not None:
            return bool(self._handle(outcome))
        exc = outcome.exception
        if exc is not None:
            return isinstance(exc, ResilienceError) or context.classifier.failed_exception(exc)
        return context.classifier.failed_result(outcome.result)

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        """Run ``next``; on a handled failure, answer from the first source that can."""
        try:
            result = await next(context)
        except Exception as exc:
            outcome: Outcome[Any] = Outcome(exception=exc)
            if not self._handles(outcome, context):
                raise
            answer = await self._answer(outcome, context)
            if answer is None:
                raise
            return answer.unwrap()  # type: ignore[no-any-return]
        if self._handle is None and not context.classifier.failed_result(result):
            for observer in self._observers:
                result = observer.observe(result, context)
            return result
        outcome = Outcome(result=result)
        if not self._handles(outcome, context):
            for observer in self._observers:
                result = observer.observe(result, context)
            return result
        answer = await self._answer(outcome, context)
        if answer is None:
            return result
        await context.classifier.discard(outcome)
        return answer.unwrap()  # type: ignore[no-any-return]

    async def _answer(self, outcome: Outcome[Any], context: Context) -> Outcome[Any] | None:
        for source in self._sources:
            answer = await source.answer(outcome, context)
            if answer is None:
                continue
            report = context.report
            # Without a retry to count tries, the failure answered for was the one try.
            report._only(outcome.result, outcome.exception)
            report.fallback = source.name
            report.fallback_cause = describe_outcome(outcome)
            self._events.emit(context, "fallback", outcome=outcome, source=source.name)
            return answer
        return None
