"""ResponseCache: keep successful responses to serve when the live call fails (stale-if-error).

A :class:`~httpx_resilience.Fallback` with ``cache=ResponseCache(...)`` stores each successful
GET or HEAD response as it passes, and answers with the stored copy when a later call for the same
resource fails. This is not an HTTP cache: it never answers while the dependency works.

What is stored, and for whom:

- 2xx responses (but 206) to GET and HEAD, whose body is at most ``max_body_bytes``;
- never a response with ``Cache-Control: no-store`` (on the request or the response) or
  ``Vary: *``, nor one with ``Cache-Control: private`` unless ``store_private=True``;
- keyed by method, URL, the request headers the response's ``Vary`` names, and a hash of the
  request's credentials (``Authorization``, ``Proxy-Authorization``, ``Cookie``): one user's
  response is never served to another.

A served copy carries an ``Age`` header and ``response.extensions["resilience"].from_cache``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cachetools
import httpx

from .._clock import SYSTEM_CLOCK, Clock
from ..context import Context
from ..outcome import Outcome
from ..policies._validate import at_least, positive

__all__ = ["ResponseCache"]

_CACHEABLE_METHODS = frozenset({"GET", "HEAD"})
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")
# Variants kept per resource (per differing Vary values), so one URL cannot fill the cache.
_MAX_VARIANTS = 8


@dataclass(frozen=True)
class _Entry:
    vary: tuple[tuple[str, str | None], ...]
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    content: bytes
    stored_at: float
    age: int


def _directives(value: str | None) -> set[str]:
    if not value:
        return set()
    return {part.split("=", 1)[0].strip().lower() for part in value.split(",")}


def _credentials(request: httpx.Request) -> str:
    values = [request.headers.get(name) for name in _CREDENTIAL_HEADERS]
    if not any(values):
        return ""
    digest = hashlib.sha256()
    for value in values:
        digest.update((value or "").encode("latin-1", "replace") + b"\0")
    return digest.hexdigest()


class _Tee(httpx.AsyncByteStream):
    """A response body stream that keeps a copy of what the client reads, to store it once the
    body has been read to its end."""

    def __init__(
        self, inner: httpx.AsyncByteStream, limit: int, store: Callable[[bytes], None]
    ) -> None:
        self._inner = inner
        self._chunks: Any = inner.__aiter__()
        self._limit = limit
        self._store = store
        self._copy: bytearray | None = bytearray()
        self._complete = False

    def __aiter__(self) -> _Tee:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk: bytes = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._complete = True
            raise
        if self._copy is not None:
            self._copy += chunk
            if len(self._copy) > self._limit:
                self._copy = None
        return chunk

    async def aclose(self) -> None:
        await self._inner.aclose()
        if self._complete and self._copy is not None:
            self._store(bytes(self._copy))
            self._copy = None


class ResponseCache:
    """Successful responses by request, to answer with when the live call fails.

    Args:
        maxsize: Resources (method and URL, per user) kept at most; the oldest go first.
        ttl: Seconds a stored response may be served for, from when it was stored.
        max_body_bytes: Larger bodies are not stored.
        store_private: Store ``Cache-Control: private`` responses too (they are still served
            only to requests with the same credentials).
        clock: The clock for ``ttl`` and ``Age`` (default: the system clock).
    """

    name = "cache"

    def __init__(
        self,
        maxsize: int = 1000,
        ttl: float = 300.0,
        *,
        max_body_bytes: int = 1024 * 1024,
        store_private: bool = False,
        clock: Clock | None = None,
    ) -> None:
        at_least("ResponseCache", "maxsize", maxsize, 1)
        self._ttl = positive("ResponseCache", "ttl", ttl)
        self._max_body_bytes = at_least("ResponseCache", "max_body_bytes", max_body_bytes, 0)
        self._store_private = bool(store_private)
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._entries: cachetools.TTLCache[tuple[str, str, str], list[_Entry]] = (
            cachetools.TTLCache(maxsize, self._ttl, timer=self._clock.monotonic)
        )

    def __repr__(self) -> str:
        return (
            f"ResponseCache(maxsize={self._entries.maxsize}, ttl={self._ttl:g}, "
            f"max_body_bytes={self._max_body_bytes})"
        )

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every stored response."""
        self._entries.clear()

    # -- storing -------------------------------------------------------------------------------

    def observe(self, result: Any, context: Context) -> Any:
        """Store ``result`` if it is a response worth keeping; return it to pass on."""
        if not isinstance(result, httpx.Response):
            return result
        request = context.request or result.request
        if request.method not in _CACHEABLE_METHODS or not self._storable(request, result):
            return result
        try:
            content = result.content
        except httpx.ResponseNotRead:
            # Not read yet (a transport, or a streamed request): keep a copy as it is read.
            result.stream = _Tee(
                result.stream,  # type: ignore[arg-type]  # an async client's stream
                self._max_body_bytes,
                lambda body: self._store(request, result, body, decoded=False),
            )
            return result
        if len(content) <= self._max_body_bytes:
            self._store(request, result, content, decoded=True)
        return result

    def _storable(self, request: httpx.Request, response: httpx.Response) -> bool:
        status = response.status_code
        if not 200 <= status < 300 or status == 206:
            return False
        directives = _directives(response.headers.get("cache-control"))
        if "no-store" in directives or "no-store" in _directives(
            request.headers.get("cache-control")
        ):
            return False
        if "private" in directives and not self._store_private:
            return False
        if "*" in _directives(response.headers.get("vary")):
            return False
        length = response.headers.get("content-length")
        return not (length and length.isdigit() and int(length) > self._max_body_bytes)

    def _store(
        self, request: httpx.Request, response: httpx.Response, body: bytes, *, decoded: bool
    ) -> None:
        vary = tuple(
            (name, request.headers.get(name))
            for name in sorted(_directives(response.headers.get("vary")))
        )
        headers = tuple(
            (name, value)
            for name, value in response.headers.raw
            # A decoded body no longer matches the encoding and length the server sent.
            if not decoded or name.lower() not in (b"content-encoding", b"content-length")
        )
        age = response.headers.get("age", "0")
        entry = _Entry(
            vary=vary,
            status=response.status_code,
            headers=headers,
            content=body,
            stored_at=self._clock.monotonic(),
            age=int(age) if age.isdigit() else 0,
        )
        key = self._key(request)
        variants = [e for e in self._entries.get(key, ()) if e.vary != vary]
        variants.append(entry)
        self._entries[key] = variants[-_MAX_VARIANTS:]

    @staticmethod
    def _key(request: httpx.Request) -> tuple[str, str, str]:
        return (request.method, str(request.url), _credentials(request))

    # -- serving -------------------------------------------------------------------------------

    async def answer(self, outcome: Outcome[Any], context: Context) -> Outcome[Any] | None:
        """A stored copy for the context's request, if there is one."""
        request = context.request
        if request is None or request.method not in _CACHEABLE_METHODS:
            return None
        for entry in reversed(self._entries.get(self._key(request), ())):
            if all(request.headers.get(name) == value for name, value in entry.vary):
                context.report.from_cache = True
                return Outcome(result=self._served(entry, request))
        return None

    def _served(self, entry: _Entry, request: httpx.Request) -> httpx.Response:
        age = entry.age + int(self._clock.monotonic() - entry.stored_at)
        headers = [(k, v) for k, v in entry.headers if k.lower() != b"age"]
        headers.append((b"age", str(age).encode()))
        return httpx.Response(entry.status, headers=headers, content=entry.content, request=request)
