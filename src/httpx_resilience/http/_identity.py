"""Which request headers say who the caller is: what the response cache keys on and what an
alternate on another origin must not receive."""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable

import httpx

from ._flavour import of as _flavour_of

#: Request headers that carry credentials or a session, in lower case. A response cache keys
#: on all of them; an alternate on another origin does not receive them. Names not listed here
#: (a ``X-Tenant``, a header of your own) are added with ``identity_headers=``.
IDENTITY_HEADERS: tuple[str, ...] = (
    "authorization",
    "proxy-authorization",
    "cookie",
    # API keys and tokens as the common APIs and gateways take them.
    "api-key",
    "apikey",
    "x-api-key",
    "x-apikey",
    "x-api-token",
    "x-auth-token",
    "x-access-token",
    "x-session-token",
    "x-csrf-token",
    "x-xsrf-token",
    "x-amz-security-token",  # AWS temporary credentials
    "x-goog-api-key",  # Google Cloud
    "ocp-apim-subscription-key",  # Azure API Management
    "x-functions-key",  # Azure Functions
    "private-token",  # GitLab
    "x-vault-token",  # HashiCorp Vault
)

#: The auth a :class:`~httpx_resilience.ResilientClient` will send a request with (when it has
#: one), for a response cache whose lookup comes before httpx's auth flow has added the
#: credentials to the request: an open breaker refused it before it was sent.
REQUEST_AUTH: weakref.WeakKeyDictionary[httpx.Request, httpx.Auth] = weakref.WeakKeyDictionary()


async def as_sent(request: httpx.Request) -> httpx.Request:
    """``request`` as httpx sends it first (after the first step of its auth flow), for a
    request the pipeline refused before sending. ``request`` itself is left untouched."""
    auth = REQUEST_AUTH.get(request)
    if auth is None:
        if not request.url.userinfo:
            return request
        # httpx's own rule when no auth is given: the URL's userinfo is sent as Basic auth.
        auth = _flavour_of(request).BasicAuth(request.url.username, request.url.password)
    copy = type(request)(
        request.method,
        request.url,
        headers=request.headers,
        stream=request.stream,
        extensions=request.extensions,
    )
    flow = auth.async_auth_flow(copy)
    try:
        return await flow.__anext__()
    finally:
        await flow.aclose()


# RFC 9110 field-name: a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def identity_headers(owner: str, names: Iterable[str]) -> tuple[str, ...]:
    """:data:`IDENTITY_HEADERS` and ``names`` (validated), lower case, without repeats."""
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise ValueError(
            f"{owner}: identity_headers must be a collection of header names, got {names!r}"
        )
    extra: list[str] = []
    for name in names:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(f"{owner}: identity_headers must be header names, got {name!r}")
        extra.append(name.lower())
    return tuple(dict.fromkeys((*IDENTITY_HEADERS, *extra)))


def same_origin(url: httpx.URL, other: httpx.URL) -> bool:
    """Whether credentials for ``url`` may go to ``other``: the same scheme, host and port,
    or the same host over https instead of http (as httpx decides for a redirect)."""
    if url.host != other.host:
        return False
    if (url.scheme, url.port) == (other.scheme, other.port):
        return True
    return url.scheme == "http" and other.scheme == "https" and url.port is other.port is None
