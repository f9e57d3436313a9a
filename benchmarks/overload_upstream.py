"""The upstream of ``overload.py``: fixed capacity, in a process of its own.

A small asyncio HTTP/1.1 server on 127.0.0.1 that serves ``GET /work`` K at a time, S seconds
each, from an unbounded first-in-first-out queue. It reads a request, queues it, and answers
when its turn has come and its S seconds are over; it does not read from the connection
meanwhile, so it never notices a caller who gave up and does the work anyway, as a real
server busy with a request does.

Control requests, answered at once and not counted:

- ``GET /control/stats``: ``{"requests": ..., "queued": ..., "busy": ..., "workers": ...}``
  (``requests``: ``/work`` requests received since the start);
- ``GET /control/workers?k=N``: serve N at a time from now on (the capacity changes mid-run).

Run by ``overload.py``: ``python benchmarks/overload_upstream.py --workers 4 --service 0.05``
prints ``port <number>`` once it listens, then serves until it is terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

_OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


class Upstream:
    """K workers, S seconds a request, an unbounded FIFO queue in front of them."""

    def __init__(self, workers: int, service: float) -> None:
        self.workers = workers
        self.service = service
        self.requests = 0
        self.busy = 0
        self._queue: collections.deque[asyncio.Future[None]] = collections.deque()

    def stats(self) -> dict[str, int]:
        """What the control endpoint reports."""
        return {
            "requests": self.requests,
            "queued": len(self._queue),
            "busy": self.busy,
            "workers": self.workers,
        }

    def set_workers(self, workers: int) -> None:
        """Serve ``workers`` at a time from now on; requests in service finish as they are."""
        self.workers = workers
        self._dispatch()

    def work(self) -> asyncio.Future[None]:
        """Queue one request; the future is done when it has been served."""
        self.requests += 1
        done = asyncio.get_running_loop().create_future()
        self._queue.append(done)
        self._dispatch()
        return done

    def _dispatch(self) -> None:
        # Callbacks, not worker tasks: a request costs one timer, whatever the queue length.
        loop = asyncio.get_running_loop()
        while self.busy < self.workers and self._queue:
            self.busy += 1
            loop.call_later(self.service, self._finish, self._queue.popleft())

    def _finish(self, done: asyncio.Future[None]) -> None:
        self.busy -= 1
        done.set_result(None)
        self._dispatch()


def _response(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


def _control(upstream: Upstream, target: str) -> bytes:
    url = urlsplit(target)
    if url.path == "/control/workers":
        upstream.set_workers(int(parse_qs(url.query)["k"][0]))
    elif url.path != "/control/stats":
        return _response("404 Not Found", b"{}")
    return _response("200 OK", json.dumps(upstream.stats()).encode())


async def _serve_connection(
    upstream: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            if target.startswith("/control/"):
                writer.write(_control(upstream, target))
            else:
                await upstream.work()
                writer.write(_OK)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, IndexError):
        pass
    finally:
        writer.close()


async def serve(workers: int, service: float) -> None:
    """Listen on a free loopback port, print it, and serve until cancelled."""
    upstream = Upstream(workers, service)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(upstream, reader, writer)

    server = await asyncio.start_server(connection, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"port {port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4, help="requests served at a time (K)")
    parser.add_argument("--service", type=float, default=0.05, help="seconds per request (S)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.workers, args.service))
    except KeyboardInterrupt:  # pragma: no cover - interactive use
        sys.exit(0)


if __name__ == "__main__":
    main()
