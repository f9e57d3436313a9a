"""Checks of the values only profiles hold: Redis and HTTP URLs, lists of header names and of
status codes.

A URL may carry a password, so every message shows it through :func:`masked_url`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .._validate import Rule, choice
from ..http._identity import identity_headers
from ..http.classify import _status_codes

#: Whether a policy keeps one state per origin (``"origin"``) or one for all (``"none"``).
_PARTITION = choice("none", "origin")


def masked_url(url: str) -> str:
    """``url`` with the password of its userinfo, if any, replaced by ``***``
    (``redis://user:***@host:6379/0``), for messages and ``check``. Works on text no parser
    accepts too: a malformed URL is exactly the one an error message shows."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}{rest[end:]}"


def _show_url(value: Any) -> str:
    return repr(masked_url(value)) if isinstance(value, str) else repr(value)


def _redis_url(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    if parts.scheme not in ("redis", "rediss", "unix"):
        return False
    try:
        from redis.asyncio.connection import parse_url
    except ImportError:  # pragma: no cover - the extra is installed in the test runs
        return True  # building the backend reports the missing extra
    try:
        parse_url(value)
    except ValueError:
        return False
    return True


def _http_url(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    import httpx

    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError, ValueError):
        return False
    return url.scheme in ("http", "https") and bool(url.host)


_REDIS_URL = Rule("a redis://, rediss:// or unix:// URL", _redis_url, show=_show_url)
_HTTP_URL = Rule("an http:// or https:// URL with a host", _http_url, show=_show_url)


def _header_names(value: Any) -> bool:
    try:
        identity_headers("profiles", value)
    except ValueError:
        return False
    return True


_HEADER_NAMES = Rule("a list of header names", _header_names, tuple)
# Private responses are never stored (one user's answer must not reach another): the key stays
# readable so that old files load, but only as false.
_NEVER = Rule("false (private responses are never stored)", lambda v: v is False)


def _statuses(value: Any) -> bool:
    if not isinstance(value, (list, tuple)) or not value:
        return False
    try:
        _status_codes(value, "profiles")
    except ValueError:
        return False
    return True


#: What a retry retries (``retry.statuses``): codes and classes, as ``retry_statuses`` takes.
_STATUSES = Rule(
    "a non-empty list of status codes (100 to 599) and classes ('1xx' to '5xx')",
    _statuses,
    tuple,
)
