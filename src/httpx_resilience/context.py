"""Per-execution state: the :class:`Context` policies share, and the report they fill in."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ._names import callable_name
from .outcome import GENERIC_CLASSIFIER, Classifier, Outcome
from .priority import Priority, _checked
from .telemetry import NO_TELEMETRY, Telemetry

if TYPE_CHECKING:
    import httpx

    from .telemetry import ResilienceEvent

__all__ = [
    "Attempt",
    "Context",
    "ExecutionReport",
    "RetryStopped",
    "by_header",
    "by_origin",
    "hashed",
]

#: Why retrying stopped before success (:attr:`ExecutionReport.retry_stopped`): the tries ran
#: out (``"max_attempts"``), the ``stop=`` strategy said so (``"stop"``), the server asked for a
#: wait longer than ``max_retry_after`` (``"retry_after"``), the wait would have run past the
#: deadline (``"deadline"``), the retry budget was spent (``"budget"``), or the call could not
#: be sent again (``"not_replayable"``: a POST without an ``Idempotency-Key``, a streamed
#: body, ``extensions={"resilience.retry": False}``).
RetryStopped = Literal[
    "max_attempts", "stop", "retry_after", "deadline", "budget", "not_replayable"
]

_UNKNOWN: Any = object()
_new = object.__new__


class _Response(Protocol):
    """What :meth:`ExecutionReport.of` reads of a response: httpx's, or a flavour's alike."""

    @property
    def extensions(self) -> Mapping[str, Any]: ...


class Attempt(Outcome[Any]):
    """One try of the protected call: its :class:`~httpx_resilience.Outcome`, number and timings.

    Attributes:
        number: 0 for the first try, 1 for the first retry, and so on.
        result: The value the try returned (``None`` if it raised).
        exception: The exception the try raised (``None`` if it returned).
        duration: Seconds the try took.
        delay: Seconds waited after this try before the next one; ``None`` if none followed.
        hedged: Whether :class:`~httpx_resilience.Hedging` started this try in parallel with an
            earlier one.
    """

    __slots__ = ("_mark", "delay", "duration", "hedged", "number")

    # How many tries the report held when this one began (see ExecutionReport._end).
    _mark: int

    def __init__(
        self,
        number: int,
        result: Any = None,
        exception: BaseException | None = None,
        duration: float = 0.0,
        delay: float | None = None,
        hedged: bool = False,
    ) -> None:
        self.number = number
        self.result = result
        self.exception = exception
        self.duration = duration
        self.delay = delay
        self.hedged = hedged

    def __repr__(self) -> str:
        what = (
            f"exception={self.exception!r}"
            if self.exception is not None
            else (f"result={self.result!r}")
        )
        return (
            f"Attempt(number={self.number}, {what}, duration={self.duration:.6f}, "
            f"delay={self.delay!r}{', hedged=True' if self.hedged else ''})"
        )


class ExecutionReport:
    """What happened during one execution of a pipeline.

    In the HTTP layer it is attached to every response as ``response.extensions["resilience"]``.

    Attributes:
        attempts: Every try of the call, in the order they started. Tries are counted by the
            retry and hedging policies (and by the HTTP layer, which always records at least
            one); a plain pipeline without either leaves the list empty.
        profile: The profile (operation key) the execution ran under, if any.
        retry_stopped: Why retrying stopped before success, when it did: one of
            :data:`RetryStopped` (``"max_attempts"``, ``"stop"``, ``"retry_after"``,
            ``"deadline"``, ``"budget"``, ``"not_replayable"``), else ``None``.
        fallback: Which fallback answered (``"value"``, ``"factory"``, ``"cache"``,
            ``"alternate"``), or ``None``.
        fallback_cause: What it answered for: the failed outcome, described as events
            describe it (``"HTTP 503"``, ``"BrokenCircuitError"``).
        from_cache: Whether the answer came from a response cache.
    """

    __slots__ = (
        "_decided",
        "_deposited",
        "_events",
        "attempts",
        "fallback",
        "fallback_cause",
        "from_cache",
        "profile",
        "retry_stopped",
    )

    def __init__(self, profile: str | None = None) -> None:
        self.attempts: list[Attempt] = []
        self.profile = profile
        self.retry_stopped: RetryStopped | None = None
        self.fallback: str | None = None
        self.fallback_cause: str | None = None
        self.from_cache = False
        self._events: list[ResilienceEvent] | None = None
        # The try a race decided on, and how many tries there were then (see ``outcome``).
        self._decided: tuple[Attempt, int] | None = None
        # The retry budget(s) this execution was counted in as a request (see budget.py).
        self._deposited: object = None

    @classmethod
    def of(cls, response: _Response) -> ExecutionReport:
        """The report of the execution that answered ``response`` (an :class:`httpx.Response`,
        or any response with httpx's ``extensions``), typed, rather than
        ``response.extensions["resilience"]``, which type checkers see as ``Any``.

        Raises:
            LookupError: The response did not come through a
                :class:`~httpx_resilience.ResilientClient` or a
                :class:`~httpx_resilience.ResilienceTransport` (a response made by hand, or
                by a client without the library), so there is no report to give.
        """
        report = response.extensions.get("resilience")
        if not isinstance(report, cls):
            raise LookupError(
                f"{response!r} has no ExecutionReport: it did not come through a "
                "ResilientClient or a ResilienceTransport"
            )
        return report

    @property
    def events(self) -> list[ResilienceEvent]:
        """The policy events of this execution (retries, timeouts, rejections...), in order."""
        events = self._events
        if events is None:
            events = self._events = []
        return events

    @property
    def total_wait(self) -> float:
        """Seconds spent waiting between tries."""
        return sum(a.delay for a in self.attempts if a.delay is not None)

    @property
    def outcome(self) -> Attempt | None:
        """The try the execution ended with, if any try was counted.

        That is the last try, except after :class:`~httpx_resilience.Hedging`: there it is the
        try that won the race (or the failure it gave up on), which may have started before
        the losers that were cancelled.
        """
        attempts = self.attempts
        decided = self._decided
        if decided is not None and decided[1] == len(attempts):
            return decided[0]
        return attempts[-1] if attempts else None

    # The report records the tries, here only: the policies that make tries (retry, hedging)
    # record them through these methods, and the others only annotate (the wait after a try,
    # why retrying stopped, which try a race decided on).

    def _end(self, attempt: Attempt) -> None:
        """Record ``attempt``, a try of a retry given its outcome and duration, unless tries were
        recorded while it ran (``attempt._mark``: how many the report held when it began): a
        policy inside that makes tries of its own (hedging) records each of them instead, since
        the report lists calls of the dependency, not tries of the rest of the pipeline."""
        attempts = self.attempts
        if len(attempts) == attempt._mark:
            attempts.append(attempt)

    def _start(self, hedged: bool) -> Attempt:
        """A try racing others (hedging), recorded now, numbered after the tries recorded
        already (a retry around may have made some); its outcome is filled in as it ends."""
        attempts = self.attempts
        attempt = Attempt(len(attempts), hedged=hedged)
        attempts.append(attempt)
        return attempt

    def _only(self, result: Any, exception: BaseException | None) -> None:
        """Record the execution as its one try when no policy counted tries (the exchange of
        the HTTP layer, the failure a fallback answered for)."""
        if not self.attempts:
            self.attempts.append(Attempt(0, result, exception))

    def _decide(self, attempt: Attempt) -> None:
        """Record that a race among tries (hedging) ended with ``attempt``."""
        self._decided = (attempt, len(self.attempts))

    def __repr__(self) -> str:
        return (
            f"ExecutionReport(attempts={self.attempts!r}, events={self.events!r}, "
            f"profile={self.profile!r}, retry_stopped={self.retry_stopped!r}, "
            f"fallback={self.fallback!r}, fallback_cause={self.fallback_cause!r}, "
            f"from_cache={self.from_cache!r})"
        )


class Context:
    """State shared by the policies of one execution.

    One is created per :meth:`Pipeline.execute <httpx_resilience.Pipeline.execute>` unless the
    caller passes its own.

    Attributes:
        operation_key: The profile (or any name the caller chooses) this execution runs under.
        request: The :class:`httpx.Request` in the HTTP layer, otherwise ``None``.
        attempt: 0-based number of the current try, kept up to date by retry and hedging.
        deadline: Monotonic time (on the pipeline's clock) by which the execution must end, or
            ``None``. Timeouts set and tighten it; policies that wait never wait past it. A
            caller may set it to propagate a deadline it was given.
        classifier: How outcomes are read when a policy has no ``handle=`` of its own.
        replayable: Whether the call may run more than once (retry, hedging). The HTTP layer
            clears it for non-idempotent requests and bodies that cannot be sent twice.
        priority: How much the call matters under overload (a
            :data:`~httpx_resilience.priority.Priority`): load shedding refuses
            ``"sheddable"`` calls first and ``"critical"`` ones last.
    """

    __slots__ = (
        "_call",
        "_properties",
        "_report",
        "_task",
        "_telemetry",
        "attempt",
        "classifier",
        "deadline",
        "operation_key",
        "priority",
        "replayable",
        "request",
    )

    def __init__(
        self,
        *,
        operation_key: str | None = None,
        request: httpx.Request | None = None,
        deadline: float | None = None,
        classifier: Classifier = GENERIC_CLASSIFIER,
        replayable: bool = True,
        properties: dict[str, Any] | None = None,
        priority: Priority = "default",
    ) -> None:
        self.operation_key = operation_key
        self.priority = _checked(priority, "Context: priority")
        self.request = request
        self.attempt = 0
        self.deadline = deadline
        self.classifier = classifier
        self.replayable = replayable
        self._properties = properties
        self._report: ExecutionReport | None = None
        self._call: Callable[[], Awaitable[Any]] | None = None
        self._telemetry: Telemetry = NO_TELEMETRY
        # The asyncio task running this execution (None outside asyncio), looked up once by the
        # first Timeout that needs it (looking it up costs a system call on Python 3.11): see
        # ``Timeout.execute`` in policies/timeout.py.
        self._task: Any = _UNKNOWN

    @property
    def properties(self) -> dict[str, Any]:
        """A dictionary for the caller's own data; policies never touch it."""
        props = self._properties
        if props is None:
            props = self._properties = {}
        return props

    @property
    def report(self) -> ExecutionReport:
        """The :class:`ExecutionReport` of this execution (created on first use)."""
        report = self._report
        if report is None:
            report = self._report = ExecutionReport(profile=self.operation_key)
        return report

    @property
    def telemetry(self) -> Telemetry:
        """Where this execution's events go: its pipeline's listeners, and how URLs are shown
        in them. Read by the library's policies when they report an event (``telemetry.emit``),
        never on the way of a call that succeeds."""
        return self._telemetry

    def fork(self, attempt: int) -> Context:
        """A context for a try running alongside others (hedging): the same request, report and
        properties, but its own attempt number, deadline and task."""
        return self._inherit(
            _new_context(
                self.operation_key,
                self.request,
                attempt,
                self.deadline,
                self.classifier,
                self.replayable,
                self.properties,
                self.report,
                self._call,
                self._telemetry,
            )
        )

    def _nested(self, call: Callable[[], Awaitable[Any]], telemetry: Telemetry) -> Context:
        """A context for an execution started while this one is running another (a pipeline
        called inside another's call, or given the same context concurrently): the same
        request, report and properties, starting from this one's attempt and deadline, but
        with its own call and telemetry, so that neither execution runs the other's call or
        sends events to the other's listeners."""
        return self._inherit(
            _new_context(
                self.operation_key,
                self.request,
                self.attempt,
                self.deadline,
                self.classifier,
                self.replayable,
                self.properties,
                self.report,
                call,
                telemetry,
            )
        )

    def _inherit(self, child: Context) -> Context:
        """``child``, given what it shares with this context beyond what
        :func:`_new_context` sets."""
        child.priority = self.priority
        return child

    def __repr__(self) -> str:
        return (
            f"Context(operation_key={self.operation_key!r}, attempt={self.attempt}, "
            f"deadline={self.deadline!r})"
        )


def _new_context(
    operation_key: str | None,
    request: httpx.Request | None,
    attempt: int,
    deadline: float | None,
    classifier: Classifier,
    replayable: bool,
    properties: dict[str, Any] | None,
    report: ExecutionReport | None,
    call: Callable[[], Awaitable[Any]] | None,
    telemetry: Telemetry,
) -> Context:
    """A new context with every field given, positionally: the one way the library makes
    contexts (Pipeline.execute, fork, the HTTP layer), besides ``Context()`` for users.

    Every execution and every HTTP request makes one, so the fields are set in place: a class
    call with keyword arguments costs several times as much on CPython 3.11.
    """
    context: Context = _new(Context)
    context.operation_key = operation_key
    context.request = request
    context.attempt = attempt
    context.deadline = deadline
    context.classifier = classifier
    context.replayable = replayable
    context.priority = "default"
    context._properties = properties
    context._report = report
    # The execution this context belongs to: its call, which the innermost link of the chain
    # calls, and where its events go (see Pipeline.execute).
    context._call = call
    context._telemetry = telemetry
    context._task = _UNKNOWN
    return context


def _new_report(profile: str | None) -> ExecutionReport:
    """A new report, as ``ExecutionReport(profile)`` makes it, for the HTTP layer, which makes
    one per request: built in place, as :func:`_new_context` builds a context."""
    report: ExecutionReport = _new(ExecutionReport)
    report.attempts = []
    report.profile = profile
    report.retry_stopped = report.fallback = report.fallback_cause = None
    report._events = report._decided = report._deposited = None
    report.from_cache = False
    return report


def by_origin(context: Context) -> str:
    """Partition key naming the origin (scheme, host and port) of the context's HTTP request.

    For ``key=`` of a circuit breaker, bulkhead or rate limiter, so that each host gets its own;
    outside the HTTP layer (no request) every call falls in the one partition ``""``.
    """
    request = context.request
    if request is None:
        return ""
    url = request.url
    port = url.port
    if port is None:
        port = 443 if url.scheme == "https" else 80
    return f"{url.scheme}://{url.host}:{port}"


def hashed(
    key: Callable[[Context], str], *, salt: str | bytes | None = None
) -> Callable[[Context], str]:
    """A partition key function naming each partition by a digest of what ``key`` returns.

    For ``key=`` of a circuit breaker, bulkhead or rate limiter partitioned by something secret
    (an API key, a token): partition keys are shown in events, logs, metrics, rejection messages
    and ``describe()``, and kept as the names of shared buckets in Redis; wrapped, they are
    ``"hash:"`` and 24 hex digits (a 96-bit BLAKE2b digest), the same for the same value, so
    each value still has its own partition. ``""`` (no key) stays ``""``.

    Args:
        key: The function naming the partition by the secret value.
        salt: A secret of the application mixed into the digest, so that a value one could
            guess (a user's email) cannot be confirmed from its digest. Give every replica the
            same salt, or replicas sharing a Redis limiter would not share buckets.
    """
    if not callable(key):
        raise ValueError(f"hashed: key must be a function of the context, got {key!r}")
    if salt is None:
        secret = b""
    elif isinstance(salt, (str, bytes)):
        secret = salt.encode() if isinstance(salt, str) else bytes(salt)
        if len(secret) > hashlib.blake2b.MAX_KEY_SIZE:
            secret = hashlib.blake2b(secret).digest()
    else:
        raise ValueError(f"hashed: salt must be str or bytes, got {salt!r}")

    def digest(context: Context) -> str:
        value = key(context)
        if value == "":
            return ""
        data = str(value).encode("utf-8", "surrogatepass")
        return "hash:" + hashlib.blake2b(data, digest_size=12, key=secret).hexdigest()

    # describe() names the key function by its __qualname__: say what it is, never the salt.
    digest.__qualname__ = digest.__name__ = f"hashed({callable_name(key)})"
    return digest


def by_header(name: str, *, secret: bool = True) -> Callable[[Context], str]:
    """Partition key function naming the value of the HTTP request's header ``name``.

    For ``key=`` of a circuit breaker, bulkhead or rate limiter: ``by_header("X-Api-Key")``
    gives each API key its own. The value is taken to be a secret and shown only as its
    digest (see :func:`hashed`) unless ``secret=False`` (a tenant name, say). A request
    without the header, or a call outside the HTTP layer, falls in the partition ``""``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"by_header: name must be a header name, got {name!r}")

    def header(context: Context) -> str:
        request = context.request
        if request is None:
            return ""
        return str(request.headers.get(name, ""))

    header.__qualname__ = header.__name__ = f"by_header({name!r})"
    if not secret:
        return header
    key = hashed(header)
    key.__qualname__ = key.__name__ = header.__qualname__
    return key
