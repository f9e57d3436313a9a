"""Per-request control through ``extensions=``, on any client, without a profile:
``resilience.retry`` and ``resilience.timeout``, against a real server."""

from __future__ import annotations

import httpx
import pytest
import tenacity

from httpx_resilience import ExecutionReport, Pipeline, TimeoutRejected
from httpx_resilience._loopback import LoopbackServer, Reply
from httpx_resilience.testing import FakeClock

from .conftest import MakeClient

pytestmark = pytest.mark.anyio


def retrying(clock: FakeClock | None = None) -> Pipeline:
    builder = Pipeline.builder() if clock is None else Pipeline.builder(clock=clock)
    return builder.retry(max_attempts=3, backoff=tenacity.wait_fixed(0.01)).build()


async def test_retry_false_sends_the_request_once(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.script(Reply(503), Reply(200))
    async with make_client(retrying(FakeClock())) as client:
        response = await client.get("/a", extensions={"resilience.retry": False})
    assert response.status_code == 503
    assert server.paths() == ["/a"]
    report = response.extensions["resilience"]
    assert isinstance(report, ExecutionReport)
    assert report.retry_stopped == "not_replayable"


async def test_retry_true_retries_a_post_without_an_idempotency_key(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    server.script(Reply(503), Reply(200))
    async with make_client(retrying(FakeClock())) as client:
        response = await client.post("/a", content=b"x", extensions={"resilience.retry": True})
        assert response.status_code == 200
        assert server.paths() == ["/a", "/a"]
        # Without it, the POST is sent once, as before.
        server.script(Reply(503), Reply(200))
        response = await client.post("/b", content=b"x")
    assert response.status_code == 503
    assert server.paths() == ["/a", "/a", "/b"]


async def test_timeout_bounds_the_whole_exchange(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    # The server answers after 5 s; the pipeline has no timeout of its own.
    server.script(Reply(200, delay=5.0))
    async with make_client(retrying()) as client:
        with pytest.raises(TimeoutRejected) as caught:
            await client.get("/slow", extensions={"resilience.timeout": 0.05})
    assert isinstance(caught.value, httpx.TimeoutException)  # what httpx callers catch


async def test_timeout_leaves_a_quick_exchange_alone(
    server: LoopbackServer, make_client: MakeClient
) -> None:
    async with make_client(retrying()) as client:
        response = await client.get("/a", extensions={"resilience.timeout": 5})
    assert response.status_code == 200
    assert isinstance(response.extensions["resilience"], ExecutionReport)


@pytest.mark.parametrize(
    ("extensions", "error", "message"),
    [
        ({"resilience.retry": "no"}, TypeError, "'resilience.retry'.* True or False, got 'no'"),
        ({"resilience.timeout": "5"}, TypeError, "'resilience.timeout'.* seconds, got '5'"),
        ({"resilience.timeout": True}, TypeError, "'resilience.timeout'.* got True"),
        ({"resilience.timeout": 0}, ValueError, "'resilience.timeout'.* finite .* got 0"),
        ({"resilience.timeout": float("inf")}, ValueError, "'resilience.timeout'.* got inf"),
    ],
)
async def test_bad_values_are_refused_before_anything_is_sent(
    server: LoopbackServer,
    make_client: MakeClient,
    extensions: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    async with make_client(retrying(FakeClock())) as client:
        with pytest.raises(error, match=message):
            await client.get("/a", extensions=extensions)
    assert server.paths() == []
