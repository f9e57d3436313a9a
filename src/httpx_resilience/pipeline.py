"""The :class:`Policy` protocol, :class:`Pipeline` and :class:`PipelineBuilder`.

A pipeline holds its policies outermost first. Each policy receives the rest of the pipeline as
``next`` and decides whether, when and how often to call it. The chain of calls is composed
once, when the pipeline is built, so executing it allocates nothing but a
:class:`~httpx_resilience.Context`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, runtime_checkable

from ._clock import Clock
from .context import Context, _new_context, by_origin
from .outcome import GENERIC_CLASSIFIER
from .policies._options import vars_of
from .policies._standard import STANDARD
from .policies.adaptive_limit import AdaptiveLimiter
from .policies.adaptive_throttle import AdaptiveThrottler
from .policies.budget import RetryBudget
from .policies.bulkhead import Bulkhead
from .policies.circuit_breaker import CircuitBreaker
from .policies.fallback import Fallback
from .policies.hedging import Hedging
from .policies.pacing import Pacing
from .policies.rate_limit import RateLimiter
from .policies.retry import Retry
from .policies.timeout import Timeout
from .priority import Priority, _checked
from .telemetry import NO_TELEMETRY, Listener, PathRedaction, Telemetry, _path_redactor

__all__ = ["Pipeline", "PipelineBuilder", "Policy"]

T = TypeVar("T")
P = ParamSpec("P")

# Execution durations for timing listeners are wall time, whatever clock the policies use.
_monotonic = time.monotonic


@runtime_checkable
class Policy(Protocol):
    """Something that runs the rest of a pipeline on its own terms."""

    async def execute(self, next: Callable[[Context], Awaitable[T]], context: Context) -> T:
        """Run ``next(context)`` (zero, one or several times) and return its result."""
        ...


def _invoke_call(context: Context) -> Awaitable[Any]:
    # The innermost link: the caller's own function, stored on the context so that the chain
    # itself never changes after build(). Each execution has a context of its own (see
    # Pipeline.execute), so this is always the call of the execution that reached it.
    call = context._call
    assert call is not None
    return call()


class Pipeline:
    """An immutable chain of policies around an async call.

    Build one with :meth:`builder` (or take :meth:`standard`), then run calls through it with
    :meth:`execute` or :meth:`wrap`. A pipeline keeps the state its policies share (breakers,
    budgets, buckets), so make one per dependency and reuse it.
    """

    __slots__ = ("_chain", "_policies", "_telemetry")

    def __init__(
        self,
        policies: Iterable[Policy] = (),
        *,
        listeners: Iterable[Listener] = (),
        include_query: bool = False,
        redact_path: PathRedaction | None = None,
    ):
        self._policies: tuple[Policy, ...] = tuple(policies)
        for policy in self._policies:
            if not callable(getattr(policy, "execute", None)):
                raise TypeError(f"not a policy (it has no execute method): {policy!r}")
        listeners = tuple(listeners)
        self._telemetry = (
            Telemetry(listeners, include_query=include_query, redact_path=redact_path)
            if listeners or include_query or redact_path is not None
            else NO_TELEMETRY
        )
        chain: Callable[[Context], Awaitable[Any]] = _invoke_call
        for policy in reversed(self._policies):
            chain = functools.partial(policy.execute, chain)
        self._chain = chain

    @staticmethod
    def builder(
        *,
        clock: Clock | None = None,
        listeners: Iterable[Listener] = (),
        include_query: bool = False,
        redact_path: PathRedaction | None = None,
    ) -> PipelineBuilder:
        """Start building a pipeline.

        Args:
            clock: The clock given to every policy the builder makes (default: the system clock).
            listeners: Callables that receive every :class:`~httpx_resilience.ResilienceEvent`
                (and, for an :class:`~httpx_resilience.telemetry.ExecutionListener`, the
                duration of every execution).
            include_query: Let events show the query string of request URLs (it may hold
                tokens or personal data, so by default it is left out).
            redact_path: Redact URL paths in events (they may hold tokens, ``/reset/<token>``):
                a function of the path returning the path to show, or regular expressions
                whose groups (or whole matches, without groups) are shown as ``***``.
        """
        return PipelineBuilder(
            clock=clock, listeners=listeners, include_query=include_query, redact_path=redact_path
        )

    @classmethod
    def standard(
        cls, *, clock: Clock | None = None, listeners: Iterable[Listener] = ()
    ) -> Pipeline:
        """The recommended pipeline for an HTTP dependency.

        Outermost first: a 30 s total timeout; retry (3 attempts, full-jitter backoff from 0.2 s
        up to 10 s, honouring ``Retry-After``, with a :class:`~httpx_resilience.RetryBudget`);
        a circuit breaker per origin (scheme, host, port: one failing host does not stop the
        others) opening at 30 % failures over 30 s with at least 100 calls, for 0.5 s before each
        probe; a :class:`~httpx_resilience.Pacing` gate per origin
        (``Retry-After`` and rate-limit headers hold or pace every call to that origin); a 10 s
        timeout on each attempt. Each call returns a new pipeline with its own state.
        """
        standard = STANDARD  # shared with Profile.standard()
        builder = (
            cls.builder(clock=clock, listeners=listeners)
            .timeout(standard.total_timeout)
            .retry(**vars_of(standard.retry), budget=RetryBudget(**vars_of(standard.budget)))
            .circuit_breaker(
                **vars_of(standard.circuit_breaker),
                key=by_origin if standard.breaker_per_origin else None,
            )
            .pacing(**vars_of(standard.pacing))
        )
        if standard.adaptive_limit is not None:
            builder.adaptive_limit(**vars_of(standard.adaptive_limit))
        return builder.timeout(standard.attempt_timeout).build()

    @property
    def policies(self) -> tuple[Policy, ...]:
        """The policies, outermost first."""
        return self._policies

    async def execute(
        self,
        call: Callable[[], Awaitable[T]],
        context: Context | None = None,
        *,
        priority: Priority | None = None,
    ) -> T:
        """Run ``call`` through the pipeline and return its result.

        Args:
            call: A function of no arguments returning an awaitable; it is called once per try.
            context: The execution's :class:`~httpx_resilience.Context`; a fresh one when omitted.
                A context already running an execution (this pipeline called inside the call of
                another that was given the same context) is not taken over: this execution runs
                on a child of it, with the same request, report and properties.
            priority: How much this call matters under overload (``"critical"``,
                ``"default"``, ``"sheddable"``): load shedding refuses sheddable calls first.
                Sets the context's; when omitted, the context's own (``"default"`` for a fresh
                one).
        """
        telemetry = self._telemetry
        owned = False
        if context is None:
            context = _new_context(
                None, None, 0, None, GENERIC_CLASSIFIER, True, None, None, call, telemetry
            )
        elif context._call is None:
            # The caller's context, free: the execution runs on it, so that the call can read
            # the attempt, deadline and report the policies keep there, and frees it at the end.
            context._call = call
            context._telemetry = telemetry
            owned = True
        else:
            # The context is running another execution: this pipeline is called inside that
            # one's call, or given the same context concurrently. It runs on a child of the
            # context, or the other execution's retries and hedges would run this call, and
            # its events would go to this pipeline's listeners.
            context = context._nested(call, telemetry)
        if priority is not None:
            context.priority = _checked(priority, "Pipeline.execute: priority")
        try:
            # As run() does, without a call of its own: this is every execution's happy path.
            if telemetry.timed:
                result: T = await self._run_timed(context, None, None)
            else:
                result = await self._chain(context)
            return result
        finally:
            if owned:
                # Free again (its telemetry is read only while an execution owns it).
                context._call = None

    def run(
        self,
        context: Context,
        finish: Callable[[Context, Any, float], object] | None = None,
        failed: Callable[[Context, Exception], Exception] | None = None,
    ) -> Awaitable[Any]:
        """Run the policies on ``context``, whose call is already bound: the one way an execution
        runs, for :meth:`execute` and the library's HTTP layer (its dispatch, an alternate's
        pipeline); applications call :meth:`execute`.

        The execution's events go to this pipeline's listeners, and an
        :class:`~httpx_resilience.telemetry.ExecutionListener` hears how long it took once
        ``finish(context, result, started)`` has seen its result (``started``: the monotonic
        time it began) or ``failed(context, exc)`` has given the exception to raise instead.
        With OpenTelemetry tracing on, an HTTP exchange gets a span, and each try one under it.
        """
        telemetry = context._telemetry = self._telemetry
        tracing = telemetry.tracing
        if tracing is not None and context.request is not None:
            # An HTTP exchange traced by OpenTelemetry: one span for the call, one per try.
            call = context._call
            assert call is not None
            context._call = tracing.tries(context, call)
            return tracing.trace(context, lambda: self._run_timed(context, finish, failed))
        if finish is None and failed is None and not telemetry.timed:
            # The happy path of a plain pipeline: no clock, no coroutine of its own.
            return self._chain(context)
        return self._run_timed(context, finish, failed)

    async def _run_timed(
        self,
        context: Context,
        finish: Callable[[Context, Any, float], object] | None,
        failed: Callable[[Context, Exception], Exception] | None,
    ) -> Any:
        telemetry = self._telemetry
        started = _monotonic()
        try:
            result = await self._chain(context)
        except Exception as exc:
            raised = exc if failed is None else failed(context, exc)
            if telemetry.timed:
                telemetry.executed(context, _monotonic() - started, raised)
            if raised is exc:
                raise
            raise raised from exc.__cause__
        except BaseException as exc:
            if telemetry.timed:
                telemetry.executed(context, _monotonic() - started, exc)
            raise
        if finish is not None:
            finish(context, result, started)
        if telemetry.timed:
            telemetry.executed(context, _monotonic() - started, None)
        return result

    async def aclose(self) -> None:
        """Release what the policies hold (the connections of a fallback's alternate).

        The HTTP client and transport call it when they are closed. The pipeline stays usable:
        what it needs again is reopened on demand.
        """
        for policy in self._policies:
            close = getattr(policy, "aclose", None)
            if close is not None:
                await close()

    def wrap(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """Decorate an async function so that every call runs through the pipeline."""

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.execute(lambda: fn(*args, **kwargs))

        return wrapper

    def describe(self) -> dict[str, Any]:
        """The pipeline's policies, outermost first, with their configuration and live state
        (circuit states, bulkhead occupancy, tokens, budget balance), as plain data for a
        health endpoint. A policy without ``describe()`` is listed by its ``repr``."""
        policies: list[dict[str, Any]] = []
        for policy in self._policies:
            describe = getattr(policy, "describe", None)
            if callable(describe):
                policies.append(describe())
            else:
                policies.append({"policy": repr(policy), "options": {}, "state": {}})
        return {"policies": policies}

    def __repr__(self) -> str:
        return f"Pipeline({list(self._policies)!r})"


def _shorthand(
    policy_type: Callable[P, Policy],
) -> Callable[Concatenate[PipelineBuilder, P], PipelineBuilder]:
    def add_policy(self: PipelineBuilder, /, *args: P.args, **kwargs: P.kwargs) -> PipelineBuilder:
        if self._clock is not None:
            kwargs.setdefault("clock", self._clock)
        return self.add(policy_type(*args, **kwargs))

    name = getattr(policy_type, "__name__", "policy")
    add_policy.__doc__ = f"Add a :class:`~httpx_resilience.{name}`; takes the same options."
    return add_policy


class PipelineBuilder:
    """Collects policies, outermost first, and builds a :class:`Pipeline`.

    The named methods (``timeout``, ``retry``...) take the options of the policy they add and
    give it the builder's clock unless the call names its own.
    """

    __slots__ = ("_clock", "_include_query", "_listeners", "_policies", "_redact_path")

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        listeners: Iterable[Listener] = (),
        include_query: bool = False,
        redact_path: PathRedaction | None = None,
    ):
        self._clock = clock
        self._listeners = tuple(listeners)
        self._include_query = include_query
        # Checked now, and once: the builder may build several pipelines.
        self._redact_path = _path_redactor(redact_path)
        self._policies: list[Policy] = []

    def add(self, policy: Policy) -> PipelineBuilder:
        """Add any object with a policy's ``execute`` method, inside those added before."""
        self._policies.append(policy)
        return self

    timeout = _shorthand(Timeout)
    retry = _shorthand(Retry)
    circuit_breaker = _shorthand(CircuitBreaker)
    adaptive_throttle = _shorthand(AdaptiveThrottler)
    bulkhead = _shorthand(Bulkhead)
    adaptive_limit = _shorthand(AdaptiveLimiter)
    rate_limit = _shorthand(RateLimiter)
    fallback = _shorthand(Fallback)
    hedging = _shorthand(Hedging)
    pacing = _shorthand(Pacing)

    @property
    def policies(self) -> Sequence[Policy]:
        """The policies added so far, outermost first."""
        return tuple(self._policies)

    def build(self) -> Pipeline:
        """Compose the policies into a :class:`Pipeline`."""
        return Pipeline(
            self._policies,
            listeners=self._listeners,
            include_query=self._include_query,
            redact_path=self._redact_path,
        )
