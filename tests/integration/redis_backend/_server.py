"""A throwaway ``redis-server`` on 127.0.0.1 for the tests, and the rule for when there is none.

The server is the real one, found on PATH, started on a free port with persistence off; it can be
stopped and started again on the same port, which the fault tests use to take Redis away from a
running client and give it back.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

#: Set to 1 (CI does) to make a missing redis-server a failure rather than a skip.
REQUIRE_ENV = "HTTPX_RESILIENCE_REQUIRE_REDIS"

_INSTALL_HINT = (
    "redis-server is not on PATH, so the Redis tests cannot run: install it "
    "(Debian/Ubuntu: apt-get install redis-server; Fedora: dnf install redis; "
    "macOS: brew install redis)"
)


def redis_server_executable() -> str:
    """The path of ``redis-server``; skips the test without it (fails it when CI requires it)."""
    executable = shutil.which("redis-server")
    if executable is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{_INSTALL_HINT}; {REQUIRE_ENV}=1 requires it", pytrace=False)
        pytest.skip(_INSTALL_HINT)
    return executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port``, in ``directory``."""

    def __init__(self, executable: str, directory: Path, port: int | None = None) -> None:
        self.executable = executable
        self.directory = directory
        self.port = port if port is not None else free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server (on the same port as before, if it ran) and wait for its PONG."""
        if self.running:
            raise RuntimeError("the Redis server is already running")
        self._process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self._process.returncode} on port {self.port}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING within {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGTERM, or SIGKILL with ``kill``) and wait until it is gone."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            if kill:
                process.kill()
            else:
                process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None

    def restart(self) -> RedisServer:
        """Stop the server and start it again on the same port (with no data: no persistence)."""
        self.stop()
        return self.start()

    def ping(self) -> bool:
        """Whether the server answers PING now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False
