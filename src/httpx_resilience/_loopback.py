"""A scriptable HTTP/1.1 server on 127.0.0.1, for the demo and the test suite.

It runs an asyncio loop in a thread of its own, so it serves clients on any backend (asyncio or
trio) and never competes with the client's event loop. Each request is answered by a handler
returning a :class:`Reply`, which can also misbehave the ways real servers do: answer late,
trickle the body, reset the connection in the middle of the body, never answer, or send a body
that never ends.

A ``FakeClock`` asks :func:`quiet` before it jumps, so that it never moves time while a request
to one of these servers is in flight (see :func:`quiet`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import itertools
import select
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import h11

from ._transit import WatchedSelector, in_transit

__all__ = ["LoopbackServer", "ReceivedRequest", "Reply", "quiet"]

# The servers serving now, for quiet().
_RUNNING: set[LoopbackServer] = set()
_RUNNING_LOCK = threading.Lock()


def quiet() -> tuple[int, ...] | None:
    """``None`` while a request to a running loopback server is in flight; else a mark that
    changes whenever one of them does anything.

    In flight means: from the moment a client of this process connects or writes a request
    until the response is written and in the client's socket (the kernel's byte counts of both
    ends say when, see ``_transit``); a reply that deliberately never finishes (``hang``,
    ``endless``) is in flight only until it stalls. The server's loop runs on a selector that
    says when it is blocked with nothing to do and counts its wake-ups, so that a request
    cannot slip between the checks: bytes not read yet leave a socket readable, bytes read
    start a loop turn that ends only once the request is counted. A caller that sees the same
    mark before and after looking at its own side (its tasks all blocked after polling their
    sockets) knows that nothing moved in between.
    """
    with _RUNNING_LOCK:
        servers = tuple(_RUNNING)
    marks = []
    for server in servers:
        mark = server._quiet()
        if mark is None:
            return None
        marks.append(mark)
    try:
        stalled = {f.peer for s in servers for f in list(s._sockets.values()) if f.stalled}
    except RuntimeError:
        return None  # a connection came or went meanwhile: look again later
    if in_transit({server.port for server in servers}, stalled):
        return None
    return tuple(marks)


@dataclass(frozen=True)
class Reply:
    """How to answer one request.

    Attributes:
        status: The status code.
        headers: Extra response headers.
        body: The body (sent with Content-Length unless ``endless``).
        delay: Seconds to wait before sending the status line and headers.
        chunks: Number of pieces the body is written in.
        chunk_delay: Seconds to wait before each piece after the first.
        reset_after: Send the headers and this many bytes of the body, then reset the
            connection (TCP RST).
        hang: Read the request and never answer (until the server stops).
        endless: Send the headers of a chunked body, then a chunk every ``chunk_delay`` seconds
            forever.
        close: Close the connection after the reply instead of keeping it alive.
    """

    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b"ok"
    delay: float = 0.0
    chunks: int = 1
    chunk_delay: float = 0.0
    reset_after: int | None = None
    hang: bool = False
    endless: bool = False
    close: bool = False


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int
    received_at: float = field(default_factory=time.monotonic)


Handler = Callable[[ReceivedRequest], "Reply | Awaitable[Reply]"]


class LoopbackServer:
    """An HTTP/1.1 server on 127.0.0.1 at a free port, in a thread of its own.

    Use it as a context manager (sync or async)::

        with LoopbackServer() as server:
            server.script(Reply(503), Reply(200, body=b"hello"))
            ...  # requests to server.url

    Without a handler or script, every request gets ``200 ok``.
    """

    def __init__(self, handler: Handler | None = None) -> None:
        self._handler = handler
        self._script: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self.requests: list[ReceivedRequest] = []
        self.connections_opened = 0
        self.open_connections = 0
        self._connection_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._selector: WatchedSelector | None = None
        self._sockets: dict[socket.socket, _Flight] = {}  # the open connections
        self._in_flight = 0  # requests being answered (see quiet())
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order (then the handler or 200)."""
        with self._lock:
            self._script.extend(replies)

    def set_handler(self, handler: Handler | None) -> None:
        """Answer requests (after any scripted replies) with ``handler``."""
        self._handler = handler

    def paths(self) -> list[str]:
        """The paths of the requests received so far, in order."""
        with self._lock:
            return [r.path for r in self.requests]

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LoopbackServer:
        """Start serving; returns once the port is bound."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            self._selector = WatchedSelector()
            loop = asyncio.SelectorEventLoop(self._selector)
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:  # pragma: no cover - reported to start()
                failure.append(exc)
                ready.set()
            finally:
                with _RUNNING_LOCK:
                    _RUNNING.discard(self)
                loop.close()

        self._thread = threading.Thread(target=run, name="loopback-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise RuntimeError("loopback server failed to start") from failure[0]
        return self

    def stop(self) -> None:
        """Stop serving, drop every connection, and wait for the thread to end."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LoopbackServer:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _quiet(self) -> int | None:
        """None while a request is in flight (see :func:`quiet`), else the selector's wake-ups.

        Read from the client's thread while the server's runs: each check is of something the
        server only ever moves forward, made in the order a request moves through them.
        """
        selector = self._selector
        if selector is None:
            return 0
        wakeups = selector.wakeups
        if not selector.idle or self._in_flight:
            return None
        try:
            # Unread bytes, a connection not accepted, a call from another thread.
            if _readable([key.fd for key in list(selector.get_map().values())]):
                return None
        except (OSError, RuntimeError, ValueError):
            return None  # a socket closed or the loop changed under us: look again later
        if not selector.idle or selector.wakeups != wakeups:
            return None
        return wakeups

    # -- serving -------------------------------------------------------------------------------

    async def _serve(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        with _RUNNING_LOCK:
            _RUNNING.add(self)
        ready.set()
        await self._stopping.wait()
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        number = next(self._connection_ids)
        with self._lock:
            self.connections_opened += 1
            self.open_connections += 1
        flight = _Flight(self, (writer.get_extra_info("peername") or ("", 0))[1])
        sock = writer.get_extra_info("socket")
        self._sockets[sock] = flight
        # drain() then returns only once every byte is handed to the socket: until then the
        # request is in flight.
        writer.transport.set_write_buffer_limits(0)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await self._read_request(conn, reader, number, flight)
                if request is None:
                    return
                reply = await self._reply_for(request)
                keep_alive = await self._send(conn, writer, reply, flight)
                if not keep_alive or conn.our_state is not h11.DONE:
                    return
                flight.land()
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            with self._lock:
                self.open_connections -= 1
            with contextlib.suppress(Exception):
                writer.close()
            # Landed once closed: the close reaches the client's socket in this loop turn.
            flight.land()
            self._sockets.pop(sock, None)
            self._tasks.discard(task)

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, number: int, flight: _Flight
    ) -> ReceivedRequest | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                if data:
                    flight.take_off()
                conn.receive_data(data)
                if not data and conn.their_state is h11.IDLE:
                    return None
                continue
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                request = ReceivedRequest(
                    method=head.method.decode(),
                    path=head.target.decode(),
                    headers={k.decode().lower(): v.decode() for k, v in head.headers},
                    body=bytes(body),
                    connection=number,
                )
                with self._lock:
                    self.requests.append(request)
                return request
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _reply_for(self, request: ReceivedRequest) -> Reply:
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            return scripted
        if self._handler is None:
            return Reply()
        reply = self._handler(request)
        if inspect.isawaitable(reply):
            reply = await reply
        assert isinstance(reply, Reply)
        return reply

    async def _send(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, reply: Reply, flight: _Flight
    ) -> bool:
        if reply.hang:
            assert self._stopping is not None
            flight.stall()
            await self._stopping.wait()
            return False
        if reply.delay:
            await asyncio.sleep(reply.delay)
        headers: list[tuple[str, str]] = list(reply.headers)
        if reply.endless:
            headers.append(("transfer-encoding", "chunked"))
        else:
            headers.append(("content-length", str(len(reply.body))))
        if reply.close:
            headers.append(("connection", "close"))
        writer.write(conn.send(h11.Response(status_code=reply.status, headers=headers)))
        await writer.drain()
        if reply.endless:
            flight.stall()  # once the headers are out
            while True:
                writer.write(conn.send(h11.Data(data=reply.body or b".")))
                await writer.drain()
                await asyncio.sleep(reply.chunk_delay or 0.05)
        body = reply.body
        if reply.reset_after is not None:
            writer.write(conn.send(h11.Data(data=body[: reply.reset_after])))
            await writer.drain()
            # Give the client time to receive the partial body: a reset discards what is
            # still in the send buffer.
            await asyncio.sleep(0.05)
            _reset(writer)
            return False
        for index, piece in enumerate(_split(body, reply.chunks)):
            if index and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            writer.write(conn.send(h11.Data(data=piece)))
            await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        return not reply.close


def _readable(fds: list[int]) -> bool:
    if not hasattr(select, "poll"):  # pragma: no cover - Windows
        return bool(select.select(fds, [], [], 0)[0])
    poll = select.poll()
    for fd in fds:
        poll.register(fd, select.POLLIN)
    return bool(poll.poll(0))


class _Flight:
    """One connection's request in flight, counted once in its server's ``_in_flight``."""

    __slots__ = ("flying", "peer", "server", "stalled")

    def __init__(self, server: LoopbackServer, peer: int) -> None:
        self.server = server
        self.peer = peer  # the client's port
        self.flying = False
        self.stalled = False  # a reply that never finishes, on purpose (hang, endless)

    def stall(self) -> None:
        self.stalled = True
        self.land()

    def take_off(self) -> None:
        if not self.flying:
            self.flying = True
            self.server._in_flight += 1

    def land(self) -> None:
        if self.flying:
            self.flying = False
            self.server._in_flight -= 1


def _split(body: bytes, pieces: int) -> Iterable[bytes]:
    if pieces <= 1 or len(body) <= 1:
        yield body
        return
    size = -(-len(body) // pieces)
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
