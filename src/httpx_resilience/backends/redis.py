"""RedisBackend: rate-limit buckets in Redis, so that every process and host shares one limit.

Each acquisition is one round trip: ``EVALSHA`` of a short Lua script that reads the server's
clock (``TIME``), refills the bucket, takes a token if there is one and answers ``0``, or
otherwise answers how many microseconds until the next token. The script is sent once
(``SCRIPT LOAD``) and then called by its SHA; when the server has lost it (a restart, a
failover, ``SCRIPT FLUSH``) it answers ``NOSCRIPT`` and the script is loaded again.

The bucket is a token bucket, like the in-memory one, rather than GCRA: see
``docs/distributed-limiting.md`` for why, and for what happens when Redis is down.

At most ``max_connections`` acquisitions are in Redis at once (by default as many as the
client's connection pool holds); the others wait for one of them to finish, within the timeout,
rather than ask the pool for a connection it does not have.

Needs the ``redis`` extra (``pip install 'httpx-resilience[redis]'``) and asyncio:
``redis.asyncio`` does not run on trio.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from typing import Any, Final
from urllib.parse import quote

import redis.asyncio
from redis.exceptions import NoScriptError

from .._validate import at_least, positive
from . import FailureMode, StoreUnavailable
from ._redis_script import SCRIPT as _SCRIPT
from ._redis_script import SHA as _SHA

__all__ = ["DEFAULT_PREFIX", "RedisBackend", "bucket_key"]

#: The first part of every key the backend writes, unless told otherwise.
DEFAULT_PREFIX: Final = "httpx-resilience"

# Key parts standing for "no operation key" and "not partitioned". Escaped parts only ever hold
# letters, digits, "_.-~" and "%XX" with two hex digits, so "%n..." and "%a..." cannot be the
# escape of any user-supplied string: no profile or partition can be mistaken for these.
_NO_PROFILE: Final = "%none"
_NO_PARTITION: Final = "%all"


def _escape(part: str) -> str:
    # Percent-encoding of everything but letters, digits and "_.-~": ":" (the separator), "%"
    # (so the encoding is one-to-one), "{" and "}" (a cluster hash tag in a user key would pin
    # every such tenant to one slot), spaces, control bytes and non-ASCII all become %XX.
    return quote(part, safe="", errors="surrogatepass")


def bucket_key(prefix: str, profile: str | None, partition: str | None) -> str:
    """The Redis key of a bucket: ``prefix:profile:partition``, each part escaped.

    ``profile`` is the execution's operation key and ``partition`` the limiter's ``key(context)``;
    ``None`` stands for "none" / "not partitioned" and has a key part no string can produce.
    Distinct ``(profile, partition)`` pairs always give distinct keys, whatever bytes they hold.
    The prefix is used as given (it is configuration, not user input).
    """
    first = _NO_PROFILE if profile is None else _escape(profile)
    second = _NO_PARTITION if partition is None else _escape(partition)
    return f"{prefix}:{first}:{second}"


class RedisBackend:
    """Keep :class:`~httpx_resilience.RateLimiter` buckets in Redis, shared by every process.

    ::

        client = redis.asyncio.Redis.from_url("redis://localhost:6379/0")
        limiter = RateLimiter(rate=50, burst=10, backend=RedisBackend(client))

    Args:
        client: A ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster`` client. The backend
            never closes it: it belongs to the caller.
        prefix: First part of every key (``prefix:profile:partition``); give each application
            (or each limiter that must not share buckets) its own.
        failure_mode: What a limiter does when Redis fails or does not answer within
            ``timeout``: ``"open"`` admits the call under a local in-memory bucket of the same
            rate and burst (per partition), ``"closed"`` rejects it with
            :class:`~httpx_resilience.RateLimitRejected`. Either way an event
            ``rate_limit_backend_failed`` says so, and no Redis exception leaves the pipeline.
        timeout: Seconds one acquisition may take in Redis (script reload included) before it
            counts as a failure. The client's own retries happen within it.
        retry_interval: After a failure, seconds during which calls skip Redis and go straight
            to the failure mode, so that an outage costs one ``timeout`` per interval rather
            than one per call; the first call after it tries Redis again. 0: try every call.
        max_connections: How many acquisitions may be in Redis at once, each on a connection of
            its own; the others wait for one to finish, within ``timeout``. Default (``None``):
            the size of the client's connection pool (100 unless the client was given another),
            which it may not exceed. Give less when the client also serves other traffic, so
            that the limiter cannot take every connection.

    Runs on asyncio only (``redis.asyncio`` does).
    """

    __slots__ = (
        "_client",
        "_deadlines",
        "_down_until",
        "_failure_mode",
        "_last_error",
        "_max_connections",
        "_prefix",
        "_retry_interval",
        "_slots",
        "_slots_loop",
        "_timeout",
    )

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
        *,
        prefix: str = DEFAULT_PREFIX,
        failure_mode: FailureMode = "open",
        timeout: float = 0.1,
        retry_interval: float = 1.0,
        max_connections: int | None = None,
    ) -> None:
        if not isinstance(client, (redis.asyncio.Redis, redis.asyncio.RedisCluster)):
            raise ValueError(
                "RedisBackend: client must be a redis.asyncio.Redis or "
                f"redis.asyncio.RedisCluster, got {client!r}"
            )
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"RedisBackend: prefix must be a non-empty string, got {prefix!r}")
        if failure_mode not in ("open", "closed"):
            raise ValueError(
                f"RedisBackend: failure_mode must be 'open' or 'closed', got {failure_mode!r}"
            )
        self._client = client
        self._prefix = prefix
        self._failure_mode: FailureMode = failure_mode
        self._timeout = positive("RedisBackend", "timeout", timeout)
        self._retry_interval = positive(
            "RedisBackend", "retry_interval", retry_interval, allow_zero=True
        )
        pool_size = _pool_size(client)
        if max_connections is None:
            max_connections = pool_size
        else:
            at_least("RedisBackend", "max_connections", max_connections, 1)
            if max_connections > pool_size:
                # More round trips at once than the pool has connections: the pool would
                # refuse the excess (MaxConnectionsError) instead of letting it wait here.
                raise ValueError(
                    "RedisBackend: max_connections must be at most the size of the client's "
                    f"connection pool ({pool_size}), got {max_connections!r}"
                )
        self._max_connections = max_connections
        # The acquisitions' connections, one semaphore per event loop (an asyncio.Semaphore
        # belongs to the loop it first waited on; a backend may outlive an asyncio.run()).
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None
        # Monotonic time until which calls skip Redis after a failure (0.0: Redis is healthy),
        # and the class name of that failure, for the events of the calls that skip it.
        self._down_until = 0.0
        self._last_error = ""
        self._deadlines = _Deadlines(self._timeout)

    def __repr__(self) -> str:
        # Never the client: its repr holds the address, and a URL may hold a password.
        return (
            f"RedisBackend(prefix={self._prefix!r}, failure_mode={self._failure_mode!r}, "
            f"timeout={self._timeout:g}, retry_interval={self._retry_interval:g}, "
            f"max_connections={self._max_connections})"
        )

    @property
    def prefix(self) -> str:
        """The first part of every key."""
        return self._prefix

    @property
    def failure_mode(self) -> FailureMode:
        """``"open"`` or ``"closed"``: what a limiter does when Redis fails."""
        return self._failure_mode

    @property
    def timeout(self) -> float:
        """Seconds one acquisition may take in Redis."""
        return self._timeout

    @property
    def retry_interval(self) -> float:
        """Seconds calls skip Redis after a failure."""
        return self._retry_interval

    @property
    def max_connections(self) -> int:
        """How many acquisitions may be in Redis at once."""
        return self._max_connections

    def key(self, profile: str | None, partition: str | None) -> str:
        """The Redis key of the bucket of ``profile`` and ``partition`` (see :func:`bucket_key`)."""
        return bucket_key(self._prefix, profile, partition)

    def token_store(self, *, rate: float, burst: float) -> RedisTokenStore:
        """The buckets of a limiter of ``rate`` tokens per second and size ``burst``."""
        return RedisTokenStore(self, rate=rate, burst=burst)

    def _skip_or_probe(self) -> None:
        # After a failure: within retry_interval, fail at once without asking Redis; after it,
        # let this call probe Redis (the calls that come while it is out still skip it).
        now = time.monotonic()
        if now < self._down_until:
            raise StoreUnavailable(self._last_error, retry_after=self._down_until - now)
        self._down_until = now + self._retry_interval

    if sys.version_info >= (3, 11):

        async def _evalsha(self, key: bytes, args: tuple[bytes, ...]) -> int:
            task = asyncio.current_task()
            assert task is not None
            loop = task.get_loop()
            slots = self._slots
            if self._slots_loop is not loop or slots is None:
                slots = self._new_slots(loop)
            deadlines = self._deadlines
            # Cancellations requested before this call (a task may have caught one and gone
            # on) are not the timeout's, as in asyncio.timeout(): count only what comes after.
            cancelling = task.cancelling()
            deadlines.start(task)
            client = self._client
            try:
                # Waiting for a connection counts against the timeout, as the round trip does.
                async with slots:
                    try:
                        wait: Any = await client.execute_command("EVALSHA", _SHA, b"1", key, *args)
                    except NoScriptError:
                        wait = await self._reload_and_evalsha(key, args)
            except asyncio.CancelledError:
                if deadlines.expired(task, cancelling):
                    raise TimeoutError(f"no answer from Redis within {self._timeout:g} s") from None
                raise
            finally:
                deadlines.finish(task)
            if task.cancelling() > cancelling:
                # Cancelled from outside, but the client answered anyway: redis-py swallows a
                # cancellation that comes as a result is ready (asyncio.wait_for of 3.11 does).
                # The caller asked to stop: it stops here.
                raise asyncio.CancelledError
            if type(wait) is not int or wait < 0:
                raise _bad_reply(wait)
            return wait

    else:  # pragma: no cover - Python 3.10: no Task.uncancel(), so anyio's own timeout

        async def _evalsha(self, key: bytes, args: tuple[bytes, ...]) -> int:
            import anyio

            loop = asyncio.get_running_loop()
            slots = self._slots
            if self._slots_loop is not loop or slots is None:
                slots = self._new_slots(loop)
            client = self._client
            with anyio.fail_after(self._timeout):
                async with slots:
                    try:
                        wait: Any = await client.execute_command("EVALSHA", _SHA, b"1", key, *args)
                    except NoScriptError:
                        wait = await self._reload_and_evalsha(key, args)
            if type(wait) is not int or wait < 0:
                raise _bad_reply(wait)
            return wait

    def _new_slots(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        slots = self._slots = asyncio.Semaphore(self._max_connections)
        self._slots_loop = loop
        return slots

    async def _reload_and_evalsha(self, key: bytes, args: tuple[bytes, ...]) -> Any:
        # A server without the script (first use, restart, failover, SCRIPT FLUSH): load it and
        # call it again, within the same timeout.
        await self._client.script_load(_SCRIPT)
        return await self._client.execute_command("EVALSHA", _SHA, b"1", key, *args)

    def _failed(self, exc: Exception) -> StoreUnavailable:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # Not a Redis failure but a misuse (trio, most likely), which no failure mode should
            # hide. (No sniffio: it is not a dependency, and anyio no longer brings it.)
            raise RuntimeError(
                "RedisBackend runs on asyncio only (redis.asyncio does), and this call runs "
                "without an asyncio event loop"
            ) from exc
        self._last_error = type(exc).__name__
        self._down_until = time.monotonic() + self._retry_interval
        return StoreUnavailable(self._last_error, retry_after=self._retry_interval)


def _pool_size(client: redis.asyncio.Redis | redis.asyncio.RedisCluster) -> int:
    # How many connections the client opens at most (per node, for a cluster), beyond which it
    # raises MaxConnectionsError. redis-py's default is 100; an unknown pool counts as that.
    if isinstance(client, redis.asyncio.RedisCluster):
        size = client.get_connection_kwargs().get("max_connections")
    else:
        size = getattr(client.connection_pool, "max_connections", None)
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    return 100


def _bad_reply(reply: Any) -> TypeError:
    return TypeError(f"unexpected reply from the rate-limit script: {type(reply).__name__}")


class _Deadlines:
    """Cancels the Redis calls that outlive the timeout, with one timer for all of them.

    ``asyncio.timeout()`` arms and disarms a timer per call, which costs several microseconds
    on every acquisition. Here a call only notes its deadline; one timer, armed while calls are
    in flight, fires at the earliest deadline, cancels the calls that have run out and re-arms
    for the next. Under steady traffic it fires about once per timeout, whatever the rate. The
    cancelled call turns its cancellation into ``TimeoutError`` the way ``asyncio.timeout()``
    does: only if nothing else asked to cancel the task meanwhile; and a cancellation that the
    call never saw (it finished first) is taken back, so that it cannot hit the caller later.
    """

    __slots__ = ("_expired", "_handle", "_inflight", "_loop", "_timeout")

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        # The tasks waiting for Redis and their deadlines (loop time), in the order they
        # started: with one timeout for all, also the order of their deadlines.
        self._inflight: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, task: asyncio.Task[Any]) -> None:
        """Note that ``task`` waits for Redis from now on."""
        loop = task.get_loop()
        deadline = self._inflight[task] = loop.time() + self._timeout
        # Arm the timer if none is (or if it belongs to an event loop that has gone: a backend
        # may outlive an asyncio.run()).
        if self._handle is None or self._loop is not loop:
            self._loop = loop
            self._handle = loop.call_at(deadline, self._fire)

    def finish(self, task: asyncio.Task[Any]) -> None:
        """Note that ``task`` no longer waits; the timer goes quiet at its next firing."""
        del self._inflight[task]
        if self._expired and task in self._expired:
            # Cancelled by the timer, but the call ended otherwise (an answer, or an error the
            # client made of the cancellation): take the request back, as asyncio.timeout()
            # does, and never keep a finished task alive.
            self._expired.discard(task)
            if sys.version_info >= (3, 11):
                task.uncancel()

    def expired(self, task: asyncio.Task[Any], cancelling: int) -> bool:
        """Whether the cancellation ``task`` is handling is the timeout's (and only that).

        ``cancelling``: the task's ``cancelling()`` count when the call started; requests made
        before it are someone else's, and do not make the timeout's cancellation theirs.
        """
        if task not in self._expired:
            return False
        self._expired.discard(task)
        if sys.version_info >= (3, 11):
            return task.uncancel() <= cancelling
        else:  # pragma: no cover - the class is used from 3.11 only
            return True

    def _fire(self) -> None:
        self._handle = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        for task, deadline in self._inflight.items():
            if deadline > now:
                self._handle = loop.call_at(deadline, self._fire)
                return
            if task not in self._expired:
                self._expired.add(task)
                task.cancel()


class RedisTokenStore:
    """The buckets of one limiter (one rate and burst) in a :class:`RedisBackend`.

    Made by :meth:`RedisBackend.token_store`; a :class:`~httpx_resilience.RateLimiter` with
    ``backend=`` makes its own.
    """

    __slots__ = ("_args", "_backend")

    def __init__(self, backend: RedisBackend, *, rate: float, burst: float) -> None:
        self._backend = backend
        # The script's arguments, encoded once: tokens per microsecond, the burst, and the
        # expiry of an idle bucket, twice the time it takes to fill (a full bucket and no key
        # at all mean the same, so an idle key may as well vanish).
        expiry_ms = max(1, math.ceil(2000.0 * burst / rate))
        self._args = (repr(rate / 1e6).encode(), repr(float(burst)).encode(), b"%d" % expiry_ms)

    @property
    def failure_mode(self) -> FailureMode:
        """The backend's failure mode."""
        return self._backend.failure_mode

    def bucket_name(self, profile: str | None, partition: str | None) -> bytes:
        """The bucket's Redis key, encoded."""
        return self._backend.key(profile, partition).encode()

    async def take(self, name: bytes) -> float:
        """Take a token from bucket ``name``: 0.0, or the seconds until the next one.

        Raises:
            StoreUnavailable: Redis failed or did not answer within the backend's timeout, or
                failed less than ``retry_interval`` ago.
        """
        backend = self._backend
        if backend._down_until:
            backend._skip_or_probe()
        try:
            wait = await backend._evalsha(name, self._args)
        except Exception as exc:
            # Any failure (connection, timeout, a server error, a reply we cannot read) is the
            # store's, and becomes the failure mode: nothing from Redis leaves the pipeline.
            raise backend._failed(exc) from exc
        if backend._down_until:
            backend._down_until = 0.0
        return wait / 1e6 if wait else 0.0
