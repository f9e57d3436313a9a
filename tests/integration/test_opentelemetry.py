"""OpenTelemetry traces of HTTP requests against a real server, with
opentelemetry-instrumentation-httpx installed as its users install it: one span for the logical
call, one child span per try carrying ``http.request.resend_count``, in client and transport
mode, each try propagating its own trace context."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import tenacity
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from httpx_resilience import Pipeline, ResilienceTransport, ResilientClient
from httpx_resilience._loopback import LoopbackServer, Reply
from httpx_resilience.telemetry import OpenTelemetryListener
from httpx_resilience.testing import FakeClock

from ..flavours import httpx_only
from .conftest import TEST_TIMEOUT

pytestmark = pytest.mark.anyio


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider, spans
    provider.shutdown()


def traced_pipeline(provider: TracerProvider) -> Pipeline:
    listener = OpenTelemetryListener(MeterProvider(), tracer_provider=provider)
    return (
        Pipeline.builder(clock=FakeClock(), listeners=[listener])
        .retry(max_attempts=3, backoff=tenacity.wait_fixed(0.1))
        .build()
    )


def check_trace(spans: tuple[ReadableSpan, ...], server: LoopbackServer) -> None:
    """One logical span; under it, one client span per try, the tries after the first with
    their resend count, each try having sent its own span's context."""
    (logical,) = [s for s in spans if s.name == "resilience"]
    assert logical.kind is SpanKind.INTERNAL
    # URLs as events show them: without the query string, which may carry secrets.
    assert (logical.attributes or {})["url.full"] == f"{server.url}/a"
    tries = sorted(
        (s for s in spans if s.kind is SpanKind.CLIENT and s.parent == logical.context),
        key=lambda s: s.start_time or 0,
    )
    assert [s.name for s in tries] == ["GET", "GET", "GET"]
    assert [(s.attributes or {}).get("http.request.resend_count") for s in tries] == [None, 1, 2]
    assert [(s.attributes or {}).get("http.response.status_code") for s in tries] == [
        503,
        502,
        200,
    ]
    # No second client span per try from the instrumentation below (nor anywhere else).
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert len(clients) == 3 or logical.parent is not None
    sent = [r.headers["traceparent"].split("-")[1:3] for r in server.requests]
    assert sent == [[f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}"] for s in tries]


async def test_client_mode_traces_each_try_under_the_logical_call(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, spans = exporter
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider)  # every AsyncHTTPTransport, process-wide
    try:
        with LoopbackServer() as server:
            server.script(Reply(503), Reply(502), Reply(200))
            async with ResilientClient(
                pipeline=traced_pipeline(provider), base_url=server.url, timeout=TEST_TIMEOUT
            ) as client:
                response = await client.get("/a?token=secret")
            assert response.status_code == 200
            finished = spans.get_finished_spans()
            check_trace(finished, server)
            assert len([s for s in finished if s.kind is SpanKind.CLIENT]) == 3
    finally:
        instrumentor.uninstrument()


@httpx_only  # opentelemetry-instrumentation-httpx instruments httpx's transports only
async def test_transport_mode_traces_each_try_under_the_logical_call(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, spans = exporter
    with LoopbackServer() as server:
        server.script(Reply(503), Reply(502), Reply(200))
        transport = ResilienceTransport(traced_pipeline(provider))
        async with httpx.AsyncClient(
            transport=transport, base_url=server.url, timeout=TEST_TIMEOUT
        ) as client:
            # The instrumentation wraps the client's transport: here, the ResilienceTransport.
            HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
            response = await client.get("/a?token=secret")
        assert response.status_code == 200
        finished = spans.get_finished_spans()
        check_trace(finished, server)
        # The instrumentation's span is around the whole exchange: the parent of the logical one.
        (outer,) = [s for s in finished if s.kind is SpanKind.CLIENT and s.parent is None]
        (logical,) = [s for s in finished if s.name == "resilience"]
        assert logical.parent == outer.context
