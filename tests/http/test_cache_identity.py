"""ResponseCache never serves one user's response to another (issue 11, root cause 2)."""

from __future__ import annotations

import httpx
import pytest

from httpx_resilience import (
    BrokenCircuitError,
    CircuitBreaker,
    Context,
    Pipeline,
    ResilienceTransport,
    ResilientClient,
    ResponseCache,
)
from httpx_resilience.testing import FakeClock

from .test_cache import Switchable, cached_client

pytestmark = pytest.mark.anyio


def whoami(request: httpx.Request) -> httpx.Response:
    """The account of whoever the request says it is, by any header."""
    who = ",".join(f"{k}={v}" for k, v in request.headers.items() if k.startswith(("x-", "api")))
    return httpx.Response(200, text=who or "anonymous")


@pytest.mark.parametrize(
    "header",
    [
        "X-Api-Key",
        "Api-Key",
        "X-Auth-Token",
        "X-Access-Token",
        "X-Csrf-Token",
        "X-Amz-Security-Token",
        "X-Goog-Api-Key",
    ],
)
async def test_identity_in_any_known_credential_header_is_part_of_the_key(header: str) -> None:
    upstream = Switchable(whoami)
    cache = ResponseCache()
    async with cached_client(upstream, cache) as client:
        alice = await client.get("/account", headers={header: "alice"})
        upstream.down = True
        bob = await client.get("/account", headers={header: "bob"})
        anonymous = await client.get("/account")
        again = await client.get("/account", headers={header: "alice"})
    assert bob.status_code == anonymous.status_code == 503
    assert again.text == alice.text


async def test_headers_the_user_names_are_part_of_the_key() -> None:
    upstream = Switchable(whoami)
    cache = ResponseCache(identity_headers=["X-Tenant"])
    async with cached_client(upstream, cache) as client:
        await client.get("/account", headers={"X-Tenant": "alice"})
        upstream.down = True
        bob = await client.get("/account", headers={"x-tenant": "bob"})
        alice = await client.get("/account", headers={"x-tenant": "alice"})
    assert bob.status_code == 503
    assert alice.text == "x-tenant=alice"
    assert "x-tenant" in cache.identity_headers
    assert "authorization" in cache.identity_headers


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("X-Tenant", "identity_headers must be a collection of header names, got 'X-Tenant'"),
        (["X Tenant"], "identity_headers must be header names, got 'X Tenant'"),
        ([""], "identity_headers must be header names, got ''"),
        ([3], "identity_headers must be header names, got 3"),
    ],
)
def test_identity_headers_are_validated(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"ResponseCache: {message}"):
        ResponseCache(identity_headers=value)  # type: ignore[arg-type]


async def test_non_latin1_cookies_do_not_collide() -> None:
    upstream = Switchable(lambda r: httpx.Response(200, text=r.headers.get("cookie", "-")))
    cache = ResponseCache()
    async with cached_client(upstream, cache) as client:
        await client.get("/cart", headers={b"Cookie": "session=\u4f60\u597d".encode()})
        upstream.down = True
        other = await client.get("/cart", headers={b"Cookie": "session=\u4e16\u754c".encode()})
        same = await client.get("/cart", headers={b"Cookie": "session=\u4f60\u597d".encode()})
    assert other.status_code == 503
    assert same.status_code == 200


async def test_credentials_in_the_url_are_identity_and_not_kept_in_clear() -> None:
    upstream = Switchable(lambda r: httpx.Response(200, text=r.headers.get("authorization", "-")))
    cache = ResponseCache()
    async with cached_client(upstream, cache) as client:
        await client.get("http://alice:secret@api.test/me")
        upstream.down = True
        bob = await client.get("http://bob:secret@api.test/me")
        alice = await client.get("http://alice:secret@api.test/me")
    assert bob.status_code == 503
    assert alice.status_code == 200
    assert "secret" not in repr(list(cache._entries.keys()))


@pytest.mark.parametrize(
    "headers",
    [
        {"Set-Cookie": "session=alice; Path=/"},
        {"Cache-Control": "private"},
        {"Cache-Control": "max-age=60, Private"},
    ],
)
async def test_responses_with_a_session_or_marked_private_are_never_stored(
    headers: dict[str, str],
) -> None:
    upstream = Switchable(lambda r: httpx.Response(200, text="x", headers=headers))
    with pytest.warns(DeprecationWarning, match="store_private"):
        ResponseCache(store_private=True)
    cache = ResponseCache()
    async with cached_client(upstream, cache) as client:
        await client.get("/a")
        upstream.down = True
        assert (await client.get("/a")).status_code == 503
    assert len(cache) == 0


async def test_a_session_cookie_is_never_replayed_into_another_users_jar() -> None:
    upstream = Switchable(
        lambda r: httpx.Response(200, text="home", headers={"Set-Cookie": "session=alice"})
    )
    cache = ResponseCache()
    transport = ResilienceTransport(
        Pipeline.builder().fallback(cache=cache).build(), httpx.MockTransport(upstream)
    )
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://api.test") as alice,
        httpx.AsyncClient(transport=transport, base_url="http://api.test") as bob,
    ):
        await alice.get("/home")
        assert alice.cookies.get("session") == "alice"
        upstream.down = True
        served = await bob.get("/home")
    assert served.status_code == 503
    assert bob.cookies.get("session") is None


async def test_auth_credentials_key_the_entry_even_when_nothing_was_sent() -> None:
    # The same user, with auth=, whose request is refused by an open breaker before httpx adds
    # the Authorization header: it must find the entry its earlier request stored.
    upstream = Switchable(lambda r: httpx.Response(200, text=r.headers.get("authorization", "-")))
    cache = ResponseCache()
    breaker = CircuitBreaker(minimum_throughput=1)
    pipeline = Pipeline.builder().fallback(cache=cache).add(breaker).build()
    async with ResilientClient(
        pipeline=pipeline, transport=httpx.MockTransport(upstream), base_url="http://api.test"
    ) as client:
        stored = await client.get("/me", auth=httpx.BasicAuth("alice", "pw"))
        breaker.isolate()
        alice = await client.get("/me", auth=httpx.BasicAuth("alice", "pw"))
        bob_call = client.get("/me", auth=("bob", "pw"))
        with pytest.raises(BrokenCircuitError):
            await bob_call
        with pytest.raises(BrokenCircuitError):
            await client.get("/me")
    assert alice.status_code == 200
    assert alice.text == stored.text
    assert alice.extensions["resilience"].from_cache is True
    assert len(upstream.requests) == 1


async def test_client_auth_and_url_credentials_key_the_entry_even_when_nothing_was_sent() -> None:
    upstream = Switchable(lambda r: httpx.Response(200, text=r.headers.get("authorization", "-")))
    cache = ResponseCache()
    breaker = CircuitBreaker(minimum_throughput=1)
    pipeline = Pipeline.builder().fallback(cache=cache).add(breaker).build()
    async with ResilientClient(
        pipeline=pipeline,
        transport=httpx.MockTransport(upstream),
        auth=("carol", "pw"),
    ) as client:
        await client.get("http://api.test/me")
        await client.get("http://dave:pw@api.test/me", auth=None)
        breaker.isolate()
        carol = await client.get("http://api.test/me")
        dave = await client.get("http://dave:pw@api.test/me", auth=None)
    assert carol.extensions["resilience"].from_cache is True
    assert carol.text.startswith("Basic ")
    assert dave.extensions["resilience"].from_cache is True
    assert dave.text != carol.text


async def test_vary_variants_are_bounded_by_bytes() -> None:
    upstream = Switchable(
        lambda r: httpx.Response(200, content=b"x" * 1000, headers={"Vary": "Accept-Language"})
    )
    cache = ResponseCache(maxsize=100, max_bytes=5000)
    async with cached_client(upstream, cache) as client:
        for n in range(20):
            await client.get(f"/page/{n % 3}", headers={"Accept-Language": f"l{n}"})
        upstream.down = True
        newest = await client.get("/page/1", headers={"Accept-Language": "l19"})
    assert cache.currsize <= 5000
    assert newest.status_code == 200


def test_max_bytes_is_validated() -> None:
    with pytest.raises(ValueError, match="ResponseCache: max_bytes must be an integer >= 1, got 0"):
        ResponseCache(max_bytes=0)
    assert "max_bytes=" in repr(ResponseCache())


@pytest.mark.parametrize(
    ("age", "served"), [("\u00b2", "5"), ("12", "17"), ("9" * 40, "2147483648")]
)
async def test_an_age_header_is_read_as_ascii_digits_only(age: str, served: str) -> None:
    clock = FakeClock()
    upstream = Switchable(
        lambda r: httpx.Response(
            200, text="x", headers={b"Age": age.encode(), b"Content-Length": b"1"}
        )
    )
    cache = ResponseCache(clock=clock)
    async with cached_client(upstream, cache) as client:
        assert (await client.get("/a")).status_code == 200
        upstream.down = True
        clock.advance(5)
        assert (await client.get("/a")).headers["age"] == served


async def test_a_content_length_in_non_ascii_digits_does_not_crash() -> None:
    cache = ResponseCache(max_body_bytes=10)
    request = httpx.Request("GET", "http://api.test/a")
    response = httpx.Response(
        200,
        headers={b"Content-Length": "\u0661".encode()},
        stream=httpx.ByteStream(b"x"),
        request=request,
    )
    assert cache.observe(response, Context(request=request)) is response
