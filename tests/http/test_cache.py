from __future__ import annotations

import gzip
from collections.abc import Callable

import httpx
import pytest

from httpx_resilience import Pipeline, ResilienceTransport, ResilientClient, ResponseCache
from httpx_resilience.testing import FakeClock

pytestmark = pytest.mark.anyio

Handler = Callable[[httpx.Request], httpx.Response]


class Switchable:
    """An upstream that answers with ``healthy`` until it is told to fail."""

    def __init__(self, healthy: Handler) -> None:
        self.healthy = healthy
        self.down = False
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            return httpx.Response(503, text="down")
        return self.healthy(request)


def echo(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text=f"body of {request.url.path}")


def cached_client(upstream: Switchable, cache: ResponseCache, **kwargs: object) -> ResilientClient:
    pipeline = Pipeline.builder().fallback(cache=cache).build()
    return ResilientClient(
        pipeline=pipeline,
        transport=httpx.MockTransport(upstream),
        base_url="http://api.test",
        **kwargs,  # type: ignore[arg-type]
    )


async def test_a_stored_response_is_served_when_the_upstream_fails() -> None:
    clock = FakeClock()
    cache = ResponseCache(maxsize=10, ttl=60.0, clock=clock)
    upstream = Switchable(echo)
    async with cached_client(upstream, cache) as client:
        fresh = await client.get("/items/1")
        assert fresh.extensions["resilience"].from_cache is False
        upstream.down = True
        clock.advance(12.5)
        stale = await client.get("/items/1")
        missing = await client.get("/items/2")
    assert stale.status_code == 200
    assert stale.text == "body of /items/1"
    assert stale.headers["age"] == "12"
    report = stale.extensions["resilience"]
    assert (report.from_cache, report.fallback, report.fallback_cause) == (
        True,
        "cache",
        "HTTP 503",
    )
    assert missing.status_code == 503  # nothing stored for it: the failure goes on


async def test_stored_responses_expire_after_the_ttl() -> None:
    clock = FakeClock()
    cache = ResponseCache(maxsize=10, ttl=60.0, clock=clock)
    upstream = Switchable(echo)
    async with cached_client(upstream, cache) as client:
        await client.get("/a")
        upstream.down = True
        clock.advance(59.9)
        assert (await client.get("/a")).status_code == 200
        clock.advance(0.1)
        assert (await client.get("/a")).status_code == 503


async def test_the_age_the_server_gave_is_added_to() -> None:
    clock = FakeClock()
    cache = ResponseCache(clock=clock)
    upstream = Switchable(lambda r: httpx.Response(200, text="x", headers={"Age": "100"}))
    async with cached_client(upstream, cache) as client:
        await client.get("/a")
        upstream.down = True
        clock.advance(5)
        assert (await client.get("/a")).headers["age"] == "105"


@pytest.mark.parametrize(
    ("response_headers", "request_headers", "stored"),
    [
        ({}, {}, True),
        ({"Cache-Control": "no-store"}, {}, False),
        ({"Cache-Control": "max-age=60, No-Store"}, {}, False),
        ({}, {"Cache-Control": "no-store"}, False),
        ({"Cache-Control": "private"}, {}, False),
        ({"Cache-Control": "public, max-age=0"}, {}, True),
        ({"Vary": "*"}, {}, False),
    ],
)
async def test_what_is_stored(
    response_headers: dict[str, str], request_headers: dict[str, str], stored: bool
) -> None:
    upstream = Switchable(lambda r: httpx.Response(200, text="x", headers=response_headers))
    cache = ResponseCache()
    async with cached_client(upstream, cache) as client:
        await client.get("/a", headers=request_headers)
        upstream.down = True
        served = await client.get("/a", headers=request_headers)
    assert (served.status_code == 200) is stored
    assert len(cache) == int(stored)


async def test_private_responses_are_never_stored_even_when_asked() -> None:
    upstream = Switchable(
        lambda r: httpx.Response(200, text="mine", headers={"Cache-Control": "private"})
    )
    with pytest.warns(DeprecationWarning, match="store_private=True is ignored"):
        cache = ResponseCache(store_private=True)
    async with cached_client(upstream, cache) as client:
        await client.get("/me", headers={"Authorization": "Bearer alice"})
        upstream.down = True
        alice = await client.get("/me", headers={"Authorization": "Bearer alice"})
    assert alice.status_code == 503
    assert len(cache) == 0


async def test_credentials_never_cross_users_even_for_public_responses() -> None:
    upstream = Switchable(lambda r: httpx.Response(200, text=r.headers.get("cookie", "-")))
    cache = ResponseCache()
    async with cached_client(upstream, cache) as client:
        await client.get("/cart", headers={"Cookie": "session=alice"})
        await client.get("/cart")
        upstream.down = True
        assert (await client.get("/cart", headers={"Cookie": "session=alice"})).text == (
            "session=alice"
        )
        assert (await client.get("/cart")).text == "-"
        assert (await client.get("/cart", headers={"Cookie": "session=bob"})).status_code == 503


async def test_vary_headers_select_the_variant() -> None:
    upstream = Switchable(
        lambda r: httpx.Response(
            200, text=r.headers.get("accept-language", "none"), headers={"Vary": "Accept-Language"}
        )
    )
    cache = ResponseCache()
    async with cached_client(upstream, cache) as client:
        await client.get("/greeting", headers={"Accept-Language": "fr"})
        await client.get("/greeting", headers={"Accept-Language": "de"})
        upstream.down = True
        assert (await client.get("/greeting", headers={"Accept-Language": "fr"})).text == "fr"
        assert (await client.get("/greeting", headers={"Accept-Language": "de"})).text == "de"
        served = await client.get("/greeting", headers={"Accept-Language": "en"})
    assert served.status_code == 503


async def test_only_successful_gets_and_heads_are_stored() -> None:
    statuses = iter([201, 206, 404, 500])
    upstream = Switchable(lambda r: httpx.Response(next(statuses), text="x"))
    cache = ResponseCache()
    async with cached_client(upstream, cache) as client:
        await client.post("/a")  # not retried, not stored: a POST
        for _ in range(3):
            await client.get("/b")
    assert len(cache) == 0


async def test_bodies_over_the_limit_are_not_stored() -> None:
    upstream = Switchable(lambda r: httpx.Response(200, content=b"x" * 101))
    cache = ResponseCache(max_body_bytes=100)
    async with cached_client(upstream, cache) as client:
        await client.get("/big")
    assert len(cache) == 0


class Chunks(httpx.AsyncByteStream):
    """A body that arrives in pieces, as over a real connection (MockTransport responses come
    already read)."""

    def __init__(self, body: bytes, size: int = 4) -> None:
        self.pieces = [body[i : i + size] for i in range(0, len(body), size)]

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        if not self.pieces:
            raise StopAsyncIteration
        return self.pieces.pop(0)


def streaming(upstream: Switchable, body: bytes, headers: dict[str, str]) -> httpx.MockTransport:
    """A transport answering with ``body`` streamed in chunks (a transport of the package
    under test: tests/flavours.py)."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if upstream.down:
            return httpx.Response(503)
        return httpx.Response(200, headers=headers, stream=Chunks(body))

    return httpx.MockTransport(handle)


async def test_streamed_and_transport_level_responses_are_stored_once_read() -> None:
    upstream = Switchable(echo)
    cache = ResponseCache()
    inner = streaming(upstream, gzip.compress(b"compressed body"), {"Content-Encoding": "gzip"})
    transport = ResilienceTransport(Pipeline.builder().fallback(cache=cache).build(), inner)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        async with client.stream("GET", "/gz") as streamed:
            assert len(cache) == 0  # nothing stored until the body is read
            assert await streamed.aread() == b"compressed body"
        assert len(cache) == 1
        upstream.down = True
        served = await client.get("/gz")
    assert served.text == "compressed body"
    assert served.headers["content-encoding"] == "gzip"


async def test_a_stream_abandoned_half_way_is_not_stored() -> None:
    upstream = Switchable(echo)
    cache = ResponseCache()
    inner = streaming(upstream, b"x" * 10_000, {})
    transport = ResilienceTransport(Pipeline.builder().fallback(cache=cache).build(), inner)
    # Closed unread (reading part of it would leave an async generator of httpx's own
    # unfinished, which trio reports): nothing may be stored either way.
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://api.test") as client,
        client.stream("GET", "/partial"),
    ):
        pass
    assert len(cache) == 0


async def test_a_streamed_body_over_the_limit_is_not_stored() -> None:
    upstream = Switchable(echo)
    cache = ResponseCache(max_body_bytes=10)
    inner = streaming(upstream, b"x" * 11, {})
    transport = ResilienceTransport(Pipeline.builder().fallback(cache=cache).build(), inner)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        assert (await client.get("/big")).content == b"x" * 11
    assert len(cache) == 0


async def test_a_decoded_body_is_served_without_the_encoding_it_no_longer_has() -> None:
    upstream = Switchable(
        lambda r: httpx.Response(
            200, content=gzip.compress(b"plain now"), headers={"Content-Encoding": "gzip"}
        )
    )
    cache = ResponseCache()
    async with cached_client(upstream, cache) as client:
        await client.get("/gz")
        upstream.down = True
        served = await client.get("/gz")
    assert served.text == "plain now"
    assert "content-encoding" not in served.headers
    assert served.headers["content-length"] == str(len(b"plain now"))


def test_cache_options_are_validated() -> None:
    with pytest.raises(ValueError, match="ResponseCache: maxsize must be an integer >= 1, got 0"):
        ResponseCache(maxsize=0)
    with pytest.raises(ValueError, match="ResponseCache: ttl must be a finite number > 0"):
        ResponseCache(ttl=0)
    cache = ResponseCache(maxsize=5, ttl=1)
    assert "maxsize=5" in repr(cache)
    cache.clear()
    assert len(cache) == 0
