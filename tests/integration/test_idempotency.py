"""Which requests may be sent twice: methods, Idempotency-Key, opt-in, replayable bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import tenacity

from httpx_resilience import ExecutionReport, Pipeline
from httpx_resilience._loopback import LoopbackServer, Reply
from httpx_resilience.testing import FakeClock

from .conftest import MakeClient

pytestmark = pytest.mark.anyio


def retrying() -> Pipeline:
    return (
        Pipeline.builder(clock=FakeClock())
        .retry(max_attempts=3, backoff=tenacity.wait_fixed(0.1))
        .build()
    )


def report_of(response: httpx.Response) -> ExecutionReport:
    report = response.extensions["resilience"]
    assert isinstance(report, ExecutionReport)
    return report


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_non_idempotent_request_is_sent_once(
    server: LoopbackServer, make_client: MakeClient, method: str
) -> None:
    server.script(Reply(503, body=b"busy"), Reply(200))
    async with make_client(retrying()) as client:
        response = await client.request(method, "/orders", content=b'{"qty": 1}')

    assert response.status_code == 503
    assert response.content == b"busy"
    assert [(r.method, r.body) for r in server.requests] == [(method, b'{"qty": 1}')]
    report = report_of(response)
    assert report.retry_stopped == "not_replayable"
    assert len(report.attempts) == 1


async def test_post_with_idempotency_key_is_retried(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.script(Reply(503), Reply(200, body=b"created"))
    async with make_client(retrying()) as client:
        response = await client.post(
            "/orders", json={"qty": 1}, headers={"Idempotency-Key": "order-42"}
        )

    assert response.status_code == 200
    assert response.content == b"created"
    assert len(server.requests) == 2
    for received in server.requests:
        assert received.method == "POST"
        assert received.headers["idempotency-key"] == "order-42"
        assert received.body == b'{"qty":1}'
    assert report_of(response).retry_stopped is None


async def test_retry_non_idempotent_retries_post(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.script(Reply(502), Reply(503), Reply(200, body=b"created"))
    async with make_client(retrying(), retry_non_idempotent=True) as client:
        response = await client.post("/orders", data={"qty": "1"})

    assert response.status_code == 200
    assert [(r.method, r.body) for r in server.requests] == [("POST", b"qty=1")] * 3
    assert [a.delay for a in report_of(response).attempts] == [0.1, 0.1, None]


async def test_put_with_bytes_body_is_retried(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.script(Reply(503), Reply(200))
    async with make_client(retrying()) as client:
        response = await client.put("/doc", content=b"v2")

    assert response.status_code == 200
    assert [(r.method, r.body) for r in server.requests] == [("PUT", b"v2")] * 2


async def test_put_with_streaming_body_is_sent_once(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    """A body from an async generator cannot be sent again, even for an idempotent method."""

    async def upload() -> AsyncIterator[bytes]:
        yield b"part 1, "
        yield b"part 2"

    server.script(Reply(503, body=b"busy"), Reply(200))
    async with make_client(retrying()) as client:
        response = await client.put("/doc", content=upload())

    assert response.status_code == 503
    assert [(r.method, r.body) for r in server.requests] == [("PUT", b"part 1, part 2")]
    report = report_of(response)
    assert report.retry_stopped == "not_replayable"
    assert len(report.attempts) == 1
