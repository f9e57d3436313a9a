"""Which profile a request uses: its ``resilience.profile`` extension, else the first route
whose pattern matches its URL.

A pattern is an exact host (``"api.payments.example"``), a ``"*.suffix"`` host wildcard, or a
URL prefix (``"https://search.example/v2/"``) that matches on the origin and then on a path
segment boundary.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ._values import masked_url

if TYPE_CHECKING:
    import httpx

#: The request extension naming a profile: ``extensions={"resilience.profile": "payments"}``.
PROFILE_EXTENSION = "resilience.profile"


@functools.lru_cache(maxsize=256)
def _url_route(pattern: str) -> tuple[str, str, int | None, str, str]:
    """A URL-prefix route as (scheme, host, port, path, query), or ``ConfigError``."""
    import httpx

    where = f"routes.{masked_url(pattern)!r}"
    try:
        url = httpx.URL(pattern)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: not a valid URL ({exc})") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{where}: expected an http:// or https:// URL with a host")
    if url.userinfo or url.fragment:
        raise ConfigError(f"{where}: a route has no userinfo and no fragment")
    return url.scheme, url.host, url.port, url.path, url.query.decode("ascii")


def _route_matches(pattern: str, url: httpx.URL) -> bool:
    if "://" in pattern:
        # Origin equal, then the path on a segment boundary: "https://api.example" must not
        # match "https://api.example.evil.net", nor "/v2" match "/v2-beta". The request's
        # userinfo plays no part (httpx.URL keeps it apart from the host).
        scheme, host, port, path, query = _url_route(pattern)
        if url.scheme != scheme or url.host != host or url.port != port:
            return False
        if query:
            return url.path == path and url.query.decode("ascii").startswith(query)
        return (
            path in ("", "/")
            or url.path == path
            or url.path.startswith(path if path.endswith("/") else f"{path}/")
        )
    host = url.host.lower()
    if pattern.startswith("*."):
        return host.endswith(pattern[1:].lower())
    return host == pattern.lower()


def _route_problems(patterns: Iterable[str]) -> list[str]:
    problems = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            problems.append(f"routes.{pattern!r}: expected a non-empty string")
        elif "://" in pattern:
            try:
                _url_route(pattern)
            except ConfigError as error:
                problems.extend(error.problems)
    return problems
