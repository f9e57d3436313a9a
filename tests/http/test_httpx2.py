"""httpx2 is first class (issue 14): ``httpx_resilience.httpx2`` on httpx2's classes, beside
httpx in one process, and after ``httpx2.alias_httpx()``.

The rest of the HTTP tests run on both packages too (tests/flavours.py); these are the
behaviours that only exist because there are two.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import httpx
import pytest

import httpx_resilience
from httpx_resilience import (
    BrokenCircuitError,
    Outcome,
    Pipeline,
    ResponseCache,
    TimeoutRejected,
)
from httpx_resilience._loopback import LoopbackServer, Reply
from httpx_resilience.http.classify import HTTP_CLASSIFIER, transient
from httpx_resilience.testing import FakeClock

pytest.importorskip("httpx2", reason="httpx2 is not installed (Python >= 3.11)")
import httpx2

from httpx_resilience import httpx2 as layer2

ONE_FLAVOUR = True  # these tests use both packages themselves
pytestmark = pytest.mark.anyio


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer().start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_an_httpx2_client_takes_the_httpx2_transport_and_retries(
    server: LoopbackServer,
) -> None:
    # The first failure: httpx2.AsyncClient(transport=ResilienceTransport()) raised a
    # bare AssertionError (the transport answered with an httpx.Response).
    server.script(Reply(503), Reply(200, body=b"second"))
    pipeline = Pipeline.builder(clock=FakeClock()).retry(max_attempts=2).build()
    transport = layer2.ResilienceTransport(pipeline)
    async with httpx2.AsyncClient(transport=transport, base_url=server.url) as client:
        response = await client.get("/")
    assert isinstance(response, httpx2.Response)
    assert response.text == "second"
    assert len(response.extensions["resilience"].attempts) == 2


async def test_the_httpx2_client_is_an_httpx2_client(server: LoopbackServer) -> None:
    server.script(Reply(200, body=b"hi"))
    async with layer2.ResilientClient(base_url=server.url, timeout=2.0) as client:
        assert isinstance(client, httpx2.AsyncClient)
        assert httpx.AsyncClient not in type(client).__mro__
        response = await client.get("/")
    assert isinstance(response, httpx2.Response)
    assert response.text == "hi"


def _open_breaker() -> Pipeline:
    return (
        Pipeline.builder()
        .circuit_breaker(failure_ratio=1.0, minimum_throughput=1, break_duration=60.0)
        .build()
    )


async def test_a_rejection_through_httpx2_is_an_httpx2_error_and_pickles() -> None:
    pipeline = _open_breaker()
    transport = httpx2.MockTransport(lambda request: httpx2.Response(503))
    async with layer2.ResilientClient(pipeline=pipeline, transport=transport) as client:
        await client.get("http://api.test/")  # opens the circuit
        with pytest.raises(httpx2.TransportError) as raised:
            await client.get("http://api.test/")
    error = raised.value
    assert type(error) is layer2.BrokenCircuitError
    assert issubclass(layer2.BrokenCircuitError, BrokenCircuitError)
    assert httpx.TransportError not in type(error).__mro__  # not the other package's error
    assert error.request.url == "http://api.test/"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is layer2.BrokenCircuitError
    assert issubclass(layer2.TimeoutRejected, httpx2.TimeoutException)
    assert issubclass(layer2.TimeoutRejected, TimeoutRejected)


async def test_httpx_and_httpx2_clients_share_one_pipeline_in_one_process() -> None:
    cache = ResponseCache()
    pipeline = Pipeline.builder().fallback(cache=cache).build()
    healthy = [True]

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200 if healthy[0] else 503, content=b"fresh")

    def handle2(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200 if healthy[0] else 503, content=b"fresh")

    one = httpx_resilience.ResilientClient(pipeline=pipeline, transport=httpx.MockTransport(handle))
    two = layer2.ResilientClient(pipeline=pipeline, transport=httpx2.MockTransport(handle2))
    async with one, two:
        assert (await one.get("http://a.test/x")).text == "fresh"
        assert (await two.get("http://b.test/y")).text == "fresh"
        healthy[0] = False
        served_one = await one.get("http://a.test/x")
        served_two = await two.get("http://b.test/y")
    # Each from the cache, as a response of its own client's package.
    assert served_one.extensions["resilience"].from_cache
    assert served_two.extensions["resilience"].from_cache
    assert type(served_one) is httpx.Response
    assert type(served_two) is httpx2.Response


def test_the_classifier_reads_httpx2_outcomes() -> None:
    request = httpx2.Request("GET", "http://api.test/")
    assert transient(Outcome(exception=httpx2.ConnectError("refused", request=request)))
    assert not transient(Outcome(exception=httpx2.UnsupportedProtocol("ftp", request=request)))
    assert transient(Outcome(result=httpx2.Response(503)))
    failed = httpx2.Response(429, headers={"Retry-After": "7"}, request=request)
    status_error = httpx2.HTTPStatusError("429", request=request, response=failed)
    assert transient(Outcome(exception=status_error))
    assert HTTP_CLASSIFIER.retry_after(Outcome(result=failed)) == 7.0
    assert HTTP_CLASSIFIER.retry_after(Outcome(exception=status_error)) == 7.0


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_after_alias_httpx_both_imports_are_the_same_httpx2_classes() -> None:
    result = _run(
        """
        import httpx2
        httpx2.alias_httpx()  # before anything imports httpx

        import anyio, httpx
        import httpx_resilience
        from httpx_resilience import Pipeline
        from httpx_resilience.httpx2 import ResilientClient, ResilienceTransport, BulkheadRejected

        assert httpx is httpx2
        assert ResilientClient is httpx_resilience.ResilientClient
        assert ResilienceTransport is httpx_resilience.ResilienceTransport
        assert issubclass(ResilientClient, httpx2.AsyncClient)
        assert issubclass(BulkheadRejected, httpx2.TransportError)

        async def main():
            pipeline = Pipeline.builder().bulkhead(max_concurrent=1, max_queue=0).build()
            calls = []
            def handle(request):
                calls.append(request)
                return httpx2.Response(200, content=b"ok")
            transport = httpx2.MockTransport(handle)
            async with ResilientClient(pipeline=pipeline, transport=transport) as c:
                response = await c.get("http://api.test/")
            assert type(response) is httpx2.Response and response.text == "ok"
        anyio.run(main)
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_alias_httpx_after_importing_the_library_is_refused_by_httpx2() -> None:
    result = _run(
        """
        import httpx_resilience, httpx2
        try:
            httpx2.alias_httpx()
        except RuntimeError as exc:
            print("refused:", exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused: httpx was already imported")


async def test_the_other_packages_transport_in_a_client_is_a_clear_error() -> None:
    # Before: httpx's transport in an httpx2 client failed with a bare AssertionError.
    upstream = httpx.MockTransport(lambda request: httpx.Response(200))
    transport = httpx_resilience.ResilienceTransport(transport=upstream)
    async with httpx2.AsyncClient(transport=transport) as client:  # type: ignore[arg-type, unused-ignore]
        with pytest.raises(TypeError, match=r"httpx_resilience\.httpx2\.ResilienceTransport"):
            await client.get("http://api.test/")


def test_wrapping_the_other_packages_transport_is_refused() -> None:
    with pytest.raises(TypeError, match="transport must be a httpx2 transport"):
        layer2.ResilienceTransport(transport=httpx.AsyncHTTPTransport())  # type: ignore[arg-type, unused-ignore]
    with pytest.raises(TypeError, match="transport must be a httpx transport"):
        httpx_resilience.ResilienceTransport(transport=httpx2.AsyncHTTPTransport())  # type: ignore[arg-type, unused-ignore]


def test_httpx2_errors_are_transient_without_importing_the_httpx2_layer() -> None:
    # A pipeline around the application's own httpx2 calls, handle=transient: httpx2 imported
    # after the library, and httpx_resilience.httpx2 never.
    result = _run(
        """
        import sys
        from httpx_resilience import Outcome
        from httpx_resilience.http.classify import HTTP_CLASSIFIER, transient
        import httpx2

        request = httpx2.Request("GET", "http://api.test/")
        assert transient(Outcome(exception=httpx2.ReadTimeout("slow", request=request)))
        response = httpx2.Response(503, headers={"Retry-After": "3"})
        assert HTTP_CLASSIFIER.retry_after(Outcome(result=response)) == 3.0
        assert "httpx_resilience.httpx2" not in sys.modules
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
