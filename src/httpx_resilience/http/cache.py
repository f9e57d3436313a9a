"""ResponseCache: keep successful responses to serve when the live call fails (stale-if-error).

A :class:`~httpx_resilience.Fallback` with ``cache=ResponseCache(...)`` stores each successful
GET or HEAD response as it passes, and answers with the stored copy when a later call for the same
resource fails. This is not an HTTP cache: it never answers while the dependency works.

What is stored, and for whom:

- 2xx responses (but 206) to GET and HEAD, whose body is at most ``max_body_bytes``;
- never a response with ``Set-Cookie`` (it would hand one user's session to another),
  ``Cache-Control: private`` or ``no-store`` (``no-store`` on the request too), or ``Vary: *``;
- keyed by method, URL, the request headers the response's ``Vary`` names, and a keyed hash of
  every request header that can say who the caller is (:data:`IDENTITY_HEADERS`, and those named
  with ``identity_headers=``) and of the URL's userinfo: one user's response is never served to
  another. Credentials that httpx adds with ``auth=`` count, even when the request was refused
  (an open breaker) before httpx added them.

A served copy carries an ``Age`` header and ``response.extensions["resilience"].from_cache``.
"""

from __future__ import annotations

import hashlib
import secrets
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import cachetools
import httpx

from .._clock import SYSTEM_CLOCK, Clock
from .._numbers import ascii_int
from .._validate import at_least, positive
from ..context import Context
from ..outcome import Outcome
from . import _flavour
from ._exchange import never_sent
from ._identity import IDENTITY_HEADERS, as_sent
from ._identity import identity_headers as _identity_headers

__all__ = ["IDENTITY_HEADERS", "ResponseCache"]

_CACHEABLE_METHODS = frozenset({"GET", "HEAD"})
# Variants kept per resource (per differing Vary values), so one URL cannot fill the cache.
_MAX_VARIANTS = 8
# RFC 9111, 1.2.2: an age too large to represent is taken as 2**31 seconds.
_MAX_AGE = 2**31
# What an entry costs besides its body and headers (the objects that hold them), so that
# many empty bodies still count against max_bytes.
_ENTRY_OVERHEAD = 256


@dataclass(frozen=True)
class _Entry:
    vary: tuple[tuple[bytes, ...], bytes]  # the names the response varies on, their digest
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    content: bytes
    stored_at: float
    age: int
    size: int


def _directives(value: str | None) -> set[str]:
    if not value:
        return set()
    return {part.split("=", 1)[0].strip().lower() for part in value.split(",")}


def _variants_size(variants: list[_Entry]) -> int:
    return sum(entry.size for entry in variants)


class _Tee:
    """A response body stream that keeps a copy of what the client reads, to store it once the
    body has been read to its end. Made the response's flavour's ``AsyncByteStream`` by
    :func:`_tee_class` (an ``httpx2`` client asserts its stream is one of its own)."""

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


_TEES: dict[type[Any], Any] = {}


def _tee_class(
    stream_base: type[httpx.AsyncByteStream],
) -> Callable[[httpx.AsyncByteStream, int, Callable[[bytes], None]], httpx.AsyncByteStream]:
    """:class:`_Tee` as a subclass of ``stream_base`` (a flavour's ``AsyncByteStream``)."""
    tee = _TEES.get(stream_base)
    if tee is None:
        tee = _TEES[stream_base] = type("_Tee", (_Tee, stream_base), {"__module__": __name__})
    return tee


class ResponseCache:
    """Successful responses by request, to answer with when the live call fails.

    Args:
        maxsize: Resources (method and URL, per user) kept at most; the least recently used go
            first.
        ttl: Seconds a stored response may be served for, from when it was stored.
        max_body_bytes: Larger bodies are not stored.
        max_bytes: Bytes kept at most in all (bodies and headers of every variant, plus a
            small overhead per entry); the least recently used resources go first.
        identity_headers: Request headers that say who the caller is, besides
            :data:`IDENTITY_HEADERS` (``["X-Tenant"]``): responses are stored and served per
            value of each.
        store_private: Deprecated and ignored: ``Cache-Control: private`` responses are never
            stored, since no key can know every way a request says who sent it.
        clock: The clock for ``ttl`` and ``Age`` (default: the system clock).
    """

    name = "cache"

    def __init__(
        self,
        maxsize: int = 1000,
        ttl: float = 300.0,
        *,
        max_body_bytes: int = 1024 * 1024,
        max_bytes: int = 64 * 1024 * 1024,
        identity_headers: Iterable[str] = (),
        store_private: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self._maxsize = at_least("ResponseCache", "maxsize", maxsize, 1)
        self._ttl = positive("ResponseCache", "ttl", ttl)
        self._max_body_bytes = at_least("ResponseCache", "max_body_bytes", max_body_bytes, 0)
        self._max_bytes = at_least("ResponseCache", "max_bytes", max_bytes, 1)
        self._identity = _identity_headers("ResponseCache", identity_headers)
        self._identity_raw = frozenset(name.encode() for name in self._identity)
        if store_private:
            warnings.warn(
                "ResponseCache: store_private=True is ignored: Cache-Control: private "
                "responses are never stored",
                DeprecationWarning,
                stacklevel=2,
            )
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        # Digests are keyed with a secret of this cache's own: what it holds says nothing about
        # the credentials outside this process.
        self._secret = secrets.token_bytes(32)
        self._entries: cachetools.TTLCache[tuple[str, str, bytes], list[_Entry]] = (
            cachetools.TTLCache(
                self._max_bytes, self._ttl, timer=self._clock.monotonic, getsizeof=_variants_size
            )
        )

    def __repr__(self) -> str:
        return (
            f"ResponseCache(maxsize={self._maxsize}, ttl={self._ttl:g}, "
            f"max_body_bytes={self._max_body_bytes}, max_bytes={self._max_bytes})"
        )

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def currsize(self) -> int:
        """Bytes held now (bodies and headers of every variant, plus the overhead per entry)."""
        return int(self._entries.currsize)

    @property
    def identity_headers(self) -> tuple[str, ...]:
        """The request headers (lower case) that key the responses per caller."""
        return self._identity

    def clear(self) -> None:
        """Forget every stored response."""
        self._entries.clear()

    # -- storing -------------------------------------------------------------------------------

    def observe(self, result: Any, context: Context) -> Any:
        """Store ``result`` if it is a response worth keeping; return it to pass on."""
        if not isinstance(result, _flavour.RESPONSES):
            return result
        request = context.request or result.request
        if request.method not in _CACHEABLE_METHODS or not self._storable(request, result):
            return result
        try:
            content = result.content
        except _flavour.RESPONSE_NOT_READ:
            # Not read yet (a transport, or a streamed request): keep a copy as it is read.
            tee = _tee_class(_flavour.of(result).AsyncByteStream)
            result.stream = tee(
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
        headers = response.headers
        # A Set-Cookie replayed to someone else hands them the session it sets.
        if "set-cookie" in headers:
            return False
        directives = _directives(headers.get("cache-control"))
        if "no-store" in directives or "private" in directives:
            return False
        if "no-store" in _directives(request.headers.get("cache-control")):
            return False
        if "*" in _directives(headers.get("vary")):
            return False
        length = headers.get("content-length")
        if length is None:
            return True
        size = ascii_int(length)
        return size is None or size <= self._max_body_bytes

    def _store(
        self, request: httpx.Request, response: httpx.Response, body: bytes, *, decoded: bool
    ) -> None:
        names = tuple(sorted(name.encode() for name in _directives(response.headers.get("vary"))))
        vary = (names, self._digest(request, frozenset(names)))
        # A decoded body no longer matches the encoding and length the server sent.
        recoded = decoded and "content-encoding" in response.headers
        headers = tuple(
            (name, value)
            for name, value in response.headers.raw
            if not recoded or name.lower() not in (b"content-encoding", b"content-length")
        )
        age = ascii_int(response.headers.get("age", "0"))
        entry = _Entry(
            vary=vary,
            status=response.status_code,
            headers=headers,
            content=body,
            stored_at=self._clock.monotonic(),
            age=0 if age is None else min(age, _MAX_AGE),
            size=len(body) + sum(len(k) + len(v) for k, v in headers) + _ENTRY_OVERHEAD,
        )
        if entry.size > self._max_bytes:
            return
        key = self._key(request)
        entries = self._entries
        variants = [e for e in entries.get(key, ()) if e.vary != vary]
        variants.append(entry)
        variants = variants[-_MAX_VARIANTS:]
        while _variants_size(variants) > self._max_bytes:
            del variants[0]
        entries[key] = variants  # evicts the least recently used beyond max_bytes
        while len(entries) > self._maxsize:
            entries.popitem()

    def _key(self, request: httpx.Request) -> tuple[str, str, bytes]:
        url = request.url
        if url.userinfo:  # identity, in the digest; never kept in clear
            url = url.copy_with(username=None, password=None)
        return (request.method, str(url), self._digest(request, self._identity_raw, user=True))

    def _digest(
        self, request: httpx.Request, names: frozenset[bytes], *, user: bool = False
    ) -> bytes:
        """A keyed hash of the raw bytes of the request's headers named in ``names`` (and, for
        ``user``, of the URL's userinfo); empty when the request has none of them."""
        values = sorted(
            ((name.lower(), value) for name, value in request.headers.raw if name.lower() in names),
            key=lambda item: item[0],  # by name only: repeated headers keep their order
        )
        userinfo = request.url.userinfo if user else b""
        if not values and not userinfo:
            return b""
        digest = hashlib.blake2b(key=self._secret, digest_size=32)
        # Each part is preceded by its length, so no two different sets of headers hash alike.
        for part in (userinfo, *(p for item in values for p in item)):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return digest.digest()

    # -- serving -------------------------------------------------------------------------------

    async def answer(self, outcome: Outcome[Any], context: Context) -> Outcome[Any] | None:
        """A stored copy for the context's request, if there is one."""
        request = context.request
        if request is None or request.method not in _CACHEABLE_METHODS:
            return None
        key_request = request
        if never_sent(outcome, context):
            # Refused before httpx's auth flow ran: look it up as it would have been sent.
            try:
                key_request = await as_sent(request)
            except Exception:
                return None
        for entry in reversed(self._entries.get(self._key(key_request), ())):
            names, digest = entry.vary
            if self._digest(key_request, frozenset(names)) == digest:
                context.report.from_cache = True
                return Outcome(result=self._served(entry, request))
        return None

    def _served(self, entry: _Entry, request: httpx.Request) -> httpx.Response:
        age = min(entry.age + int(self._clock.monotonic() - entry.stored_at), _MAX_AGE)
        headers = [(k, v) for k, v in entry.headers if k.lower() != b"age"]
        headers.append((b"age", str(age).encode()))
        if not any(k.lower() in (b"content-length", b"transfer-encoding") for k, _ in headers):
            headers.append((b"content-length", str(len(entry.content)).encode()))
        flavour = _flavour.of(request)
        response = flavour.Response(
            entry.status, headers=headers, stream=flavour.ByteStream(entry.content), request=request
        )
        response.read()  # decodes a body stored as it was sent (gzip...)
        return response
