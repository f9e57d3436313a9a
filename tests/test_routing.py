"""Which profile a request goes through: URL-prefix routes match on the origin and on whole
path segments, ignore userinfo, and a bad ``resilience.profile`` extension is a clear error
(issue 11)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from httpx_resilience import ConfigError, Profile, Registry, ResilientClient


def registry() -> Registry:
    return Registry(
        {"api": Profile(), "v2": Profile()},
        routes=[("https://api.example.com", "api"), ("https://search.example/v2", "v2")],
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.example.com", "api"),
        ("https://api.example.com/", "api"),
        ("https://api.example.com/x?y=1", "api"),
        ("https://API.Example.com:443/x", "api"),  # the same origin, spelled otherwise
        ("https://api.example.com.evil.net/", "default"),
        ("https://api.example.community/", "default"),
        ("https://api.example.com:8443/", "default"),
        ("http://api.example.com/", "default"),
        ("https://search.example/v2", "v2"),
        ("https://search.example/v2/q", "v2"),
        ("https://search.example/v2-beta/q", "default"),
        ("https://search.example/v20", "default"),
    ],
)
def test_a_url_prefix_matches_its_origin_and_whole_path_segments(url: str, expected: str) -> None:
    assert registry().route(httpx.Request("GET", url)) == expected


@pytest.mark.parametrize(
    "url", ["https://user@api.example.com/x", "https://user:secret@api.example.com/x"]
)
def test_userinfo_in_the_request_url_does_not_skip_prefix_routes(url: str) -> None:
    assert registry().route(httpx.Request("GET", url)) == "api"


def test_a_prefix_ending_in_a_slash_matches_below_it_only() -> None:
    routes = Registry({"v2": Profile()}, routes=[("https://search.example/v2/", "v2")])
    assert routes.route(httpx.Request("GET", "https://search.example/v2/q")) == "v2"
    assert routes.route(httpx.Request("GET", "https://search.example/v2x")) == "default"


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("ftp://files.example/", "routes.'ftp://files.example/': expected an http:// or "
         "https:// URL with a host"),
        ("https://u:secret@api.example/", "routes.'https://u:***@api.example/': a route has no "
         "userinfo and no fragment"),
    ],
)  # fmt: skip
def test_a_url_route_that_can_never_match_is_refused_when_loaded(
    pattern: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Registry.from_mapping({"routes": {pattern: "default"}}, environ={})
    assert info.value.problems == [problem]


@pytest.mark.parametrize("value", [5, b"api", ["api"]])
@pytest.mark.anyio
async def test_a_profile_extension_that_is_not_a_string_is_a_clear_error(value: Any) -> None:
    sent: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    async with ResilientClient(
        profiles=registry(), transport=httpx.MockTransport(upstream)
    ) as client:
        with pytest.raises(TypeError) as info:
            await client.get("https://api.example.com/", extensions={"resilience.profile": value})
    assert str(info.value) == (
        f"the 'resilience.profile' request extension must be a profile name (a str), got {value!r}"
    )
    assert sent == []


@pytest.mark.anyio
async def test_a_client_routes_a_lookalike_host_to_the_default_profile() -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200)

    async with ResilientClient(
        profiles=registry(), transport=httpx.MockTransport(upstream)
    ) as client:
        genuine = await client.get("https://api.example.com/charges")
        lookalike = await client.get("https://api.example.com.evil.net/charges")
        with_user = await client.get("https://me@api.example.com/charges")
    assert genuine.extensions["resilience"].profile == "api"
    assert lookalike.extensions["resilience"].profile == "default"
    assert with_user.extensions["resilience"].profile == "api"
