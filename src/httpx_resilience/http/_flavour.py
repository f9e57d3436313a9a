"""httpx and httpx2: the two packages the HTTP layer is written once for.

``httpx2`` (Pydantic's continuation of httpx, ``import httpx2``) has httpx's API under another
module: the same classes, but not the same class objects, so an ``httpx2.AsyncClient`` asserts
that a transport's response is an ``httpx2`` one, and ``except httpx.TransportError`` does not
catch an ``httpx2.TransportError``. A :class:`Flavour` is one of the two modules, seen through
the names the HTTP layer needs. The code of the HTTP layer names the classes of the flavour it
serves (``self._flavour``, or the flavour of the request in hand, :func:`of`), never the
``httpx`` module's, so one implementation serves both; statically it is typed against httpx,
whose API httpx2 keeps.

A flavour is registered the first time it is used (``httpx`` on import; ``httpx2`` when
``httpx_resilience.httpx2`` is imported), and the tuples below then name the classes of every
flavour registered, so that a classifier recognises a response or an error of either.

When an application has called ``httpx2.alias_httpx()`` before importing this library,
``httpx`` *is* httpx2: there is one flavour, under both names.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import httpx

__all__ = ["HTTPX", "Flavour", "of", "rebase", "refresh", "register"]


class Flavour:
    """One httpx-shaped module (``httpx`` or ``httpx2``): the names the HTTP layer uses."""

    __slots__ = (
        "AsyncBaseTransport",
        "AsyncByteStream",
        "AsyncClient",
        "AsyncHTTPTransport",
        "Auth",
        "BasicAuth",
        "ByteStream",
        "HTTPError",
        "HTTPStatusError",
        "LocalProtocolError",
        "Request",
        "Response",
        "ResponseNotRead",
        "TimeoutException",
        "TransportError",
        "URL",
        "USE_CLIENT_DEFAULT",
        "UnsupportedProtocol",
        "module",
        "name",
        "rejections",
    )

    def __init__(self, module: ModuleType) -> None:
        # Typed as httpx's classes: httpx2 keeps httpx's API, so code checked against one is
        # right for the other.
        m: Any = module
        self.module = module
        self.name: str = module.__name__
        self.Request: type[httpx.Request] = m.Request
        self.Response: type[httpx.Response] = m.Response
        self.URL: type[httpx.URL] = m.URL
        self.ByteStream: type[httpx.ByteStream] = m.ByteStream
        self.AsyncByteStream: type[httpx.AsyncByteStream] = m.AsyncByteStream
        self.AsyncBaseTransport: type[httpx.AsyncBaseTransport] = m.AsyncBaseTransport
        self.AsyncHTTPTransport: type[httpx.AsyncHTTPTransport] = m.AsyncHTTPTransport
        self.AsyncClient: type[httpx.AsyncClient] = m.AsyncClient
        self.USE_CLIENT_DEFAULT: Any = m.USE_CLIENT_DEFAULT
        self.Auth: type[httpx.Auth] = m.Auth
        self.BasicAuth: type[httpx.BasicAuth] = m.BasicAuth
        self.HTTPError: type[httpx.HTTPError] = m.HTTPError
        self.TransportError: type[httpx.TransportError] = m.TransportError
        self.TimeoutException: type[httpx.TimeoutException] = m.TimeoutException
        self.HTTPStatusError: type[httpx.HTTPStatusError] = m.HTTPStatusError
        self.UnsupportedProtocol: type[httpx.UnsupportedProtocol] = m.UnsupportedProtocol
        self.LocalProtocolError: type[httpx.LocalProtocolError] = m.LocalProtocolError
        self.ResponseNotRead: type[httpx.ResponseNotRead] = m.ResponseNotRead
        #: Rejection class -> its subclass that is also this flavour's TransportError
        #: (filled by http/_errors.py).
        self.rejections: dict[type[Any], type[Any]] = {}

    def __repr__(self) -> str:
        return f"<Flavour {self.name}>"


_BY_CLASS: dict[type, Flavour] = {}
_FLAVOURS: dict[ModuleType, Flavour] = {}

# The classes of every registered flavour, for the checks that must recognise either.
RESPONSES: tuple[type[httpx.Response], ...] = ()
REQUESTS: tuple[type[httpx.Request], ...] = ()
URLS: tuple[type[httpx.URL], ...] = ()
BYTE_STREAMS: tuple[type[httpx.ByteStream], ...] = ()
ASYNC_TRANSPORTS: tuple[type[httpx.AsyncBaseTransport], ...] = ()
HTTP_ERRORS: tuple[type[httpx.HTTPError], ...] = ()
TRANSPORT_ERRORS: tuple[type[httpx.TransportError], ...] = ()
HTTP_STATUS_ERRORS: tuple[type[httpx.HTTPStatusError], ...] = ()
CALLERS_MISTAKES: tuple[type[httpx.TransportError], ...] = ()
RESPONSE_NOT_READ: tuple[type[httpx.ResponseNotRead], ...] = ()


def register(module: ModuleType) -> Flavour:
    """The flavour of ``module`` (``httpx`` or ``httpx2``), registered on first use."""
    global RESPONSES, REQUESTS, URLS, BYTE_STREAMS, ASYNC_TRANSPORTS
    global HTTP_ERRORS, TRANSPORT_ERRORS, HTTP_STATUS_ERRORS, CALLERS_MISTAKES, RESPONSE_NOT_READ
    known = _FLAVOURS.get(module)
    if known is not None:
        return known
    flavour = Flavour(module)
    _FLAVOURS[module] = flavour
    for cls in (flavour.Request, flavour.Response, flavour.URL):
        _BY_CLASS[cls] = flavour
    # Rebound, never mutated: a reader that took a tuple keeps a consistent one.
    RESPONSES += (flavour.Response,)
    REQUESTS += (flavour.Request,)
    URLS += (flavour.URL,)
    BYTE_STREAMS += (flavour.ByteStream,)
    ASYNC_TRANSPORTS += (flavour.AsyncBaseTransport,)
    HTTP_ERRORS += (flavour.HTTPError,)
    TRANSPORT_ERRORS += (flavour.TransportError,)
    HTTP_STATUS_ERRORS += (flavour.HTTPStatusError,)
    CALLERS_MISTAKES += (flavour.UnsupportedProtocol, flavour.LocalProtocolError)
    RESPONSE_NOT_READ += (flavour.ResponseNotRead,)
    return flavour


#: The flavour of ``import httpx`` (httpx2 itself when ``httpx2.alias_httpx()`` came first).
HTTPX = register(httpx)


def refresh() -> None:
    """Register httpx2 if the application has imported it, so that an outcome of httpx2 is
    recognised even where ``httpx_resilience.httpx2`` was never imported (a pipeline around
    the application's own httpx2 calls). Cheap; called on the paths that read a failure."""
    module = sys.modules.get("httpx2")
    if module is not None and module not in _FLAVOURS:
        register(module)


def of(obj: object) -> Flavour:
    """The flavour of a request, response or URL (httpx's for anything else)."""
    flavour = _BY_CLASS.get(type(obj))
    if flavour is not None:
        return flavour
    for cls in type(obj).__mro__[1:]:  # a subclass of a flavour's class
        flavour = _BY_CLASS.get(cls)
        if flavour is not None:
            return flavour
    return HTTPX


def rebase(cls: type[Any], base: type[Any], flavour: Flavour, module: str) -> type[Any]:
    """``cls`` (written against :data:`HTTPX`, reading what differs from ``self._flavour``)
    for another flavour: the same functions, on that flavour's ``base`` class.

    ``cls`` must derive from one base and call it by name (``self._flavour.AsyncClient``), not
    through ``super()``, whose implicit class would be the original. Keyword defaults that are
    httpx's ``USE_CLIENT_DEFAULT`` become the flavour's.
    """
    namespace: dict[str, Any] = {}
    for name, value in cls.__dict__.items():
        if name in ("__dict__", "__weakref__"):
            continue
        if callable(value) and getattr(value, "__kwdefaults__", None):
            value = _with_defaults(value, flavour)
        namespace[name] = value
    namespace["_flavour"] = flavour
    namespace["__module__"] = module
    rebased = type(cls.__name__, (base,), namespace)
    rebased.__qualname__ = cls.__qualname__
    return rebased


def _with_defaults(function: Any, flavour: Flavour) -> Any:
    defaults = function.__kwdefaults__
    mapped = {
        k: flavour.USE_CLIENT_DEFAULT if v is HTTPX.USE_CLIENT_DEFAULT else v
        for k, v in defaults.items()
    }
    if mapped == defaults:
        return function
    copy = type(function)(
        function.__code__,
        function.__globals__,
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    copy.__kwdefaults__ = mapped
    copy.__qualname__ = function.__qualname__
    copy.__doc__ = function.__doc__
    copy.__annotations__ = function.__annotations__
    copy.__module__ = function.__module__
    return copy
