"""Bytes on their way between two TCP sockets of this process, as the kernel counts them.

The loopback server asks this before it calls itself quiet: a request its client has written
may still be in the kernel (a handshake, or bytes queued on the loopback device) where neither
side's sockets show it yet, and so may a response the server has written. Both ends of each
connection are in this process, so comparing what one end has sent with what the other has
received (``TCP_INFO``) is exact. Linux only; elsewhere nothing is ever in transit.
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import sys
from collections.abc import Collection

__all__ = ["WatchedSelector", "in_transit"]

# struct tcp_info (linux/tcp.h): the fields read here, at their offsets.
_STATE = struct.Struct("B")
_NOTSENT = (144, struct.Struct("I"))  # tcpi_notsent_bytes: written, not yet sent
_RECEIVED = (128, struct.Struct("Q"))  # tcpi_bytes_received: in order in the receive queue
_SENT = (200, struct.Struct("Q"))  # tcpi_bytes_sent, retransmissions included (4.19+)
_RETRANS = (208, struct.Struct("Q"))  # tcpi_bytes_retrans
_INFO_SIZE = 216
_ESTABLISHED, _SYN_SENT = 1, 2

_LINUX = sys.platform.startswith("linux")


class _End:
    """One end of a connection: its counters."""

    __slots__ = ("notsent", "received", "sent", "state")

    def __init__(self, info: bytes) -> None:
        self.state = info[0]
        self.notsent = _NOTSENT[1].unpack_from(info, _NOTSENT[0])[0]
        self.received = _RECEIVED[1].unpack_from(info, _RECEIVED[0])[0]
        self.sent = _SENT[1].unpack_from(info, _SENT[0])[0]
        self.sent -= _RETRANS[1].unpack_from(info, _RETRANS[0])[0]

    def delivered_to(self, other: _End) -> bool:
        """Whether every byte written here is in ``other``'s receive queue (or read)."""
        return self.notsent == 0 and bool(other.received == self.sent)


class WatchedSelector(selectors.DefaultSelector):
    """An event loop's selector that says when the loop is blocked with nothing to do."""

    def __init__(self) -> None:
        super().__init__()
        self.idle = False  # in select() with nothing ready to run (asyncio passes 0 otherwise)
        self.wakeups = 0  # select() calls returned

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.idle = timeout is None or timeout > 0
        try:
            events: list[tuple[selectors.SelectorKey, int]] = super().select(timeout)
            return events
        finally:
            self.idle = False
            self.wakeups += 1


def in_transit(ports: Collection[int], stalled: Collection[int] = ()) -> bool:
    """Whether a connection to one of ``ports`` (servers of this process) is being set up, or
    has bytes written by one end that the other end's socket has not received yet.

    Responses on the connections whose client port is in ``stalled`` do not count: a server
    writing a body that never ends on purpose.
    """
    if not _LINUX or not ports:
        return False
    servers: dict[tuple[int, int], _End] = {}  # (server port, client port)
    clients: dict[tuple[int, int], _End] = {}
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for name in names:
        found = _end(int(name), ports)
        if found is not None:
            (servers if found[0] else clients)[found[1]] = found[2]
    for key, client in clients.items():
        server = servers.get(key)
        if server is None:
            # Not accepted yet, or closed by the server with the FIN or RST on its way.
            if client.state in (_ESTABLISHED, _SYN_SENT):
                return True
            continue
        if not client.delivered_to(server):
            return True
        if key[1] not in stalled and not server.delivered_to(client):
            return True
    return False


def _end(fd: int, ports: Collection[int]) -> tuple[bool, tuple[int, int], _End] | None:
    """(whether it is the server's end, (server port, client port), its counters) for a TCP
    socket of this process on 127.0.0.1 with one of ``ports`` at either end."""
    try:
        if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
            return None
        copy = os.dup(fd)
    except (OSError, ValueError):
        return None  # closed meanwhile
    try:
        sock = socket.socket(fileno=copy)
    except OSError:
        os.close(copy)
        return None  # not a socket Python knows
    with sock:
        try:
            if sock.family != socket.AF_INET or sock.type != socket.SOCK_STREAM:
                return None
            host, local = sock.getsockname()
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _INFO_SIZE)
            if len(info) < _INFO_SIZE:
                return None  # a kernel older than 4.19: no byte counts to compare
            if info[0] == _SYN_SENT:
                # Connecting: no peer to read yet, and on loopback only for an instant.
                return (False, (-1, local), _End(info)) if host == "127.0.0.1" else None
            peer = sock.getpeername()[1]
        except OSError:
            return None  # not connected (a listening socket), or closed meanwhile
    if local in ports:
        return (True, (local, peer), _End(info))
    if peer in ports:
        return (False, (peer, local), _End(info))
    return None
