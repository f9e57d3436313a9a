"""An alternate keeps the primary's credentials to the primary's origin, and outlives the
clients that share it (issue 11), against real loopback servers."""

from __future__ import annotations

import asyncio
import threading

import anyio
import anyio.to_thread
import httpx
import pytest

from httpx_resilience import Alternate, Pipeline, ResilienceTransport, ResilientClient
from httpx_resilience._loopback import LoopbackServer, ReceivedRequest, Reply

pytestmark = pytest.mark.anyio

CREDENTIALS = {
    "Authorization": "Bearer primary-token",
    "Cookie": "session=primary",
    "X-Api-Key": "primary-key",
    "X-Tenant": "acme",
}


@pytest.mark.parametrize("kind", ["client", "transport"])
async def test_an_alternate_on_another_origin_receives_no_credentials(
    server: LoopbackServer, mirror: LoopbackServer, kind: str
) -> None:
    server.set_handler(lambda r: Reply(503))
    alternate = Alternate(mirror.url, identity_headers=["X-Tenant"])
    pipeline = Pipeline.builder().fallback(alternate=alternate).build()
    headers = {**CREDENTIALS, "Accept": "application/json"}
    url = server.url.replace("http://", "http://user:pw@") + "/account"
    client = (
        ResilientClient(pipeline=pipeline)
        if kind == "client"
        else httpx.AsyncClient(transport=ResilienceTransport(pipeline))
    )
    async with client:
        response = await client.get(url, headers=headers)
    assert response.status_code == 200
    (received,) = mirror.requests
    assert received.headers["accept"] == "application/json"
    for name in [*CREDENTIALS, "Authorization"]:
        assert name.lower() not in received.headers, name
    # The primary got them all.
    assert server.requests[0].headers["x-api-key"] == "primary-key"


async def test_credentials_go_to_the_alternate_when_asked_or_on_the_same_origin(
    server: LoopbackServer, mirror: LoopbackServer
) -> None:
    server.set_handler(lambda r: Reply(503))
    forwarding = Alternate(mirror.url, forward_credentials=True)
    statuses = []
    async with httpx.AsyncHTTPTransport() as own:  # given, so the test closes it
        same_origin = Alternate(transport=own)
        for alternate in (forwarding, same_origin):
            pipeline = Pipeline.builder().fallback(alternate=alternate).build()
            async with ResilientClient(pipeline=pipeline, base_url=server.url) as client:
                statuses.append((await client.get("/a", headers=CREDENTIALS)).status_code)
    assert statuses == [200, 503]
    assert len(server.requests) == 3
    forwarded = mirror.requests[0].headers
    assert forwarded["authorization"] == "Bearer primary-token"
    assert forwarded["x-api-key"] == "primary-key"
    # The same-origin alternate sent it back to the primary (which failed again), with them.
    assert server.requests[-1].headers["cookie"] == "session=primary"


def test_alternate_options_are_validated() -> None:
    with pytest.raises(ValueError, match="Alternate: identity_headers must be header names"):
        Alternate("http://mirror.test", identity_headers=["bad header"])


async def test_closing_one_client_leaves_the_others_alternate_working(
    server: LoopbackServer, mirror: LoopbackServer
) -> None:
    server.set_handler(lambda r: Reply(503))
    arrived = threading.Event()
    release = threading.Event()

    async def slow_mirror(request: ReceivedRequest) -> Reply:
        arrived.set()
        await asyncio.to_thread(release.wait, 5.0)
        return Reply(200, body=b"from the mirror")

    mirror.set_handler(slow_mirror)
    pipeline = Pipeline.builder().fallback(alternate=mirror.url).build()
    first = ResilientClient(pipeline=pipeline, base_url=server.url)
    second = ResilientClient(pipeline=pipeline, base_url=server.url)
    results: list[httpx.Response] = []

    async def get() -> None:
        results.append(await second.get("/quote"))

    async with second, anyio.create_task_group() as tg:
        tg.start_soon(get)
        # The second client's request is at the mirror when the first client is closed.
        assert await anyio.to_thread.run_sync(arrived.wait, 5.0)
        await first.aclose()
        release.set()
    assert [(r.status_code, r.text) for r in results] == [(200, "from the mirror")]
    # And the alternate still works for later requests.
    mirror.set_handler(lambda r: Reply(200, body=b"again"))
    async with ResilientClient(pipeline=pipeline, base_url=server.url) as third:
        assert (await third.get("/quote")).text == "again"
