"""What a call produced, and the predicates that decide whether it counts as a failure.

An :class:`Outcome` holds either a result or an exception. Policies take ``handle=``, a
predicate over outcomes; :func:`handle_exceptions` and :func:`handle_results` build the common
ones, and any two predicates combine with ``|``, ``&`` and ``~``.

A policy built without ``handle=`` asks the :class:`Classifier` of the place it runs in: a plain
pipeline treats any :class:`Exception` as a failure except another policy's rejection (an open
circuit, a full bulkhead, an empty bucket; an attempt timeout does count); the HTTP layer
treats transport errors, attempt timeouts and transient status codes as failures (see
:mod:`httpx_resilience.http.classify`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from ._names import callable_name
from .errors import ResilienceError, TimeoutRejected

__all__ = [
    "GENERIC_CLASSIFIER",
    "Classifier",
    "Outcome",
    "OutcomePredicate",
    "handle_all",
    "handle_exceptions",
    "handle_results",
]

T = TypeVar("T")


class Outcome(Generic[T]):
    """The result of one call, or the exception it raised; never both.

    Attributes:
        result: The value returned, or ``None`` when the call raised.
        exception: The exception raised, or ``None`` when the call returned.
    """

    __slots__ = ("exception", "result")

    def __init__(self, result: T | None = None, exception: BaseException | None = None) -> None:
        self.result = result
        self.exception = exception

    @property
    def failed(self) -> bool:
        """Whether the call raised."""
        return self.exception is not None

    def unwrap(self) -> T:
        """Return the result, or raise the exception."""
        if self.exception is not None:
            raise self.exception
        return cast(T, self.result)

    def __repr__(self) -> str:
        if self.exception is not None:
            return f"Outcome(exception={self.exception!r})"
        return f"Outcome(result={self.result!r})"


class OutcomePredicate:
    """A predicate over outcomes that combines with ``|`` (either), ``&`` (both), ``~`` (not).

    Plain callables combine too, as long as one side of the operator is an
    ``OutcomePredicate``.
    """

    __slots__ = ("_fn", "_text")

    def __init__(self, fn: Callable[[Outcome[Any]], bool], text: str | None = None) -> None:
        self._fn = fn
        self._text = text or predicate_text(fn)

    def __call__(self, outcome: Outcome[Any]) -> bool:
        """Apply the predicate."""
        return self._fn(outcome)

    def __or__(self, other: Callable[[Outcome[Any]], bool]) -> OutcomePredicate:
        return OutcomePredicate(
            lambda o: self._fn(o) or other(o), f"({self} | {predicate_text(other)})"
        )

    def __ror__(self, other: Callable[[Outcome[Any]], bool]) -> OutcomePredicate:
        return OutcomePredicate(
            lambda o: other(o) or self._fn(o), f"({predicate_text(other)} | {self})"
        )

    def __and__(self, other: Callable[[Outcome[Any]], bool]) -> OutcomePredicate:
        return OutcomePredicate(
            lambda o: self._fn(o) and other(o), f"({self} & {predicate_text(other)})"
        )

    def __rand__(self, other: Callable[[Outcome[Any]], bool]) -> OutcomePredicate:
        return OutcomePredicate(
            lambda o: other(o) and self._fn(o), f"({predicate_text(other)} & {self})"
        )

    def __invert__(self) -> OutcomePredicate:
        return OutcomePredicate(lambda o: not self._fn(o), f"~{self}")

    def __repr__(self) -> str:
        return self._text


def predicate_text(fn: object) -> str:
    """How ``describe()`` and composed predicates show a predicate: an :class:`OutcomePredicate`
    by its text, any other callable by its name (never its ``repr``, see
    :func:`~httpx_resilience._names.callable_name`)."""
    if isinstance(fn, OutcomePredicate):
        return str(fn)
    return callable_name(fn)


def handle_exceptions(
    *types: type[BaseException],
    predicate: Callable[[Any], bool] | None = None,
) -> OutcomePredicate:
    """Handle outcomes whose exception is an instance of one of ``types``.

    Args:
        *types: Exception classes to handle; :class:`Exception` when none are given.
        predicate: Optional further test on the exception itself.

    Only :class:`Exception` instances are ever handled, whatever ``types`` names: cancellation
    (``asyncio.CancelledError``, trio's ``Cancelled``), ``KeyboardInterrupt`` and ``SystemExit``
    always pass through, because a cancelled call is not a failed one.
    """
    classes = types or (Exception,)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(f"handle_exceptions() takes exception classes, got {cls!r}")
    names = ", ".join(c.__name__ for c in classes)

    def matches(outcome: Outcome[Any]) -> bool:
        exc = outcome.exception
        if not isinstance(exc, Exception) or not isinstance(exc, classes):
            return False
        return predicate is None or bool(predicate(exc))

    return OutcomePredicate(matches, f"handle_exceptions({names})")


def handle_results(predicate: Callable[[Any], bool]) -> OutcomePredicate:
    """Handle outcomes whose result satisfies ``predicate`` (exceptions are not handled)."""

    def matches(outcome: Outcome[Any]) -> bool:
        return outcome.exception is None and bool(predicate(outcome.result))

    return OutcomePredicate(matches, f"handle_results({predicate_text(predicate)})")


def _is_rejection(exc: BaseException) -> bool:
    """Whether ``exc`` is a policy's refusal to make the call (every
    :class:`~httpx_resilience.ResilienceError` but a timeout), not a failure of the call."""
    return isinstance(exc, ResilienceError) and not isinstance(exc, TimeoutRejected)


def _any_exception(outcome: Outcome[Any]) -> bool:
    return isinstance(outcome.exception, Exception)


#: Handles any :class:`Exception` (the default of a plain pipeline).
handle_all = OutcomePredicate(_any_exception, "handle_all")


class Classifier:
    """How the place a pipeline runs in reads outcomes.

    The default classifier (:data:`GENERIC_CLASSIFIER`) treats any :class:`Exception` as a
    failure. The HTTP layer supplies one that also treats transient status codes as failures,
    reads ``Retry-After`` and releases the connection of a response nobody will see. Policies
    built without ``handle=`` ask the classifier of the context they run in.

    A subclass overrides :meth:`failed_result` and :meth:`failed_exception` (policies call them
    directly on their hot path); :meth:`is_failure` is derived from them. A circuit breaker asks
    :meth:`unhealthy_result` and :meth:`unhealthy_exception` instead, which are the same unless
    the place tells a busy dependency from a broken one.
    """

    __slots__ = ()

    def is_failure(self, outcome: Outcome[Any]) -> bool:
        """Whether a policy without its own ``handle=`` should treat ``outcome`` as a failure."""
        exc = outcome.exception
        return self.failed_result(outcome.result) if exc is None else self.failed_exception(exc)

    def failed_result(self, result: Any) -> bool:
        """Whether a returned value is a failure (never, for a plain pipeline).

        Policies call this directly on their hot path, sparing an :class:`Outcome`.
        """
        return False

    def failed_exception(self, exc: BaseException) -> bool:
        """Whether a raised exception is a failure: any :class:`Exception` but a rejection.

        Never cancellation, and never a rejection by another policy (an open circuit, a full
        bulkhead, an empty bucket): retrying those only repeats the refusal, and a breaker that
        counted them would open on the caller's own load. An attempt timeout
        (:class:`~httpx_resilience.TimeoutRejected`) is a failure: the dependency was too slow.
        """
        return isinstance(exc, Exception) and not _is_rejection(exc)

    def unhealthy_result(self, result: Any) -> bool:
        """Whether a returned value says the dependency is unhealthy: what a circuit breaker
        without its own ``handle=`` counts as a failure.

        The same as :meth:`failed_result` unless the place tells backpressure from ill health
        (the HTTP layer: a 429 is retried, but it says the dependency is busy, not down).
        """
        return self.failed_result(result)

    def unhealthy_exception(self, exc: BaseException) -> bool:
        """Whether a raised exception says the dependency is unhealthy (see
        :meth:`unhealthy_result`); the same as :meth:`failed_exception` unless overridden."""
        return self.failed_exception(exc)

    def retry_after(self, outcome: Outcome[Any]) -> float | None:
        """Seconds to wait before trying again, if the outcome says.

        Here, a rejection's own ``retry_after`` (an open circuit's time to its probe, an empty
        bucket's time to its next token), which matters only to a retry told to handle
        rejections; the HTTP layer adds the response's ``Retry-After``.
        """
        exc = outcome.exception
        return getattr(exc, "retry_after", None) if isinstance(exc, ResilienceError) else None

    async def discard(self, outcome: Outcome[Any]) -> None:
        """Release what a result holds (a connection, say) when no one will see it."""

    def fresh(self, value: Any, context: Any) -> Any:
        """A copy of a fallback ``value`` that may be handed to one caller (the value itself,
        unless the place's results are single-use, as HTTP responses are)."""
        return value


#: The classifier of a plain (non-HTTP) pipeline.
GENERIC_CLASSIFIER = Classifier()
