from __future__ import annotations

from typing import Any, cast

import httpx
import pytest

from httpx_resilience import ExecutionReport, Pipeline, ResilientClient
from httpx_resilience.testing import (
    Error,
    FakeClock,
    FaultInjectionTransport,
    Latency,
    Outage,
    Status,
)

pytestmark = pytest.mark.anyio


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="real")


async def run(transport: FaultInjectionTransport, count: int) -> list[str]:
    outcomes = []
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(count):
            try:
                outcomes.append(str((await client.get("http://dep.test/")).status_code))
            except httpx.HTTPError as exc:
                outcomes.append(type(exc).__name__)
    return outcomes


async def test_the_same_seed_gives_the_same_run() -> None:
    def make() -> FaultInjectionTransport:
        return FaultInjectionTransport(
            httpx.MockTransport(ok),
            faults=[Error(httpx.ReadError, rate=0.2), Status(503, rate=0.3)],
            seed=42,
        )

    first, second = await run(make(), 200), await run(make(), 200)
    assert first == second
    assert 0.1 < first.count("ReadError") / 200 < 0.3
    assert {"200", "503", "ReadError"} == set(first)


async def test_latency_is_on_the_transports_clock(fake_clock: FakeClock) -> None:
    transport = FaultInjectionTransport(
        httpx.MockTransport(ok), faults=[Latency(2.5)], clock=fake_clock
    )
    assert await run(transport, 2) == ["200", "200"]
    assert fake_clock.monotonic() == 5.0
    assert transport.injected == ["latency", "passed", "latency", "passed"]


async def test_an_outage_takes_the_dependency_down_for_its_duration(
    fake_clock: FakeClock,
) -> None:
    transport = FaultInjectionTransport(
        httpx.MockTransport(ok),
        faults=[Outage(start=10.0, duration=5.0), Outage(start=20.0, duration=1.0, status=503)],
        clock=fake_clock,
    )
    seen = []
    for at in (0.0, 9.99, 10.0, 14.99, 15.0, 20.0, 21.0):
        fake_clock.advance(at - fake_clock.monotonic())
        seen.append((at, (await run(transport, 1))[0]))
    assert seen == [
        (0.0, "200"),
        (9.99, "200"),
        (10.0, "ConnectError"),
        (14.99, "ConnectError"),
        (15.0, "200"),
        (20.0, "503"),
        (21.0, "200"),
    ]


async def test_errors_get_the_request_and_factories_are_called_with_it() -> None:
    requests: list[httpx.Request] = []

    def factory(request: httpx.Request) -> Exception:
        requests.append(request)
        return httpx.RemoteProtocolError("made up", request=request)

    transport = FaultInjectionTransport(httpx.MockTransport(ok), faults=[Error(factory)])
    assert await run(transport, 1) == ["RemoteProtocolError"]
    assert str(requests[0].url) == "http://dep.test/"
    plain = FaultInjectionTransport(httpx.MockTransport(ok), faults=[Error(ValueError)])
    async with httpx.AsyncClient(transport=plain) as client:
        with pytest.raises(ValueError, match="fault injected"):
            await client.get("http://dep.test/")


async def test_statuses_carry_their_headers() -> None:
    transport = FaultInjectionTransport(
        httpx.MockTransport(ok), faults=[Status(429, headers={"Retry-After": "3"})]
    )
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("http://dep.test/")
    assert (response.status_code, response.headers["retry-after"]) == (429, "3")


async def test_a_resilient_client_rides_out_injected_faults(fake_clock: FakeClock) -> None:
    transport = FaultInjectionTransport(
        httpx.MockTransport(ok), faults=[Status(503, rate=0.3)], seed=7, clock=fake_clock
    )
    pipeline = Pipeline.builder(clock=fake_clock).retry(max_attempts=5).build()
    async with ResilientClient(pipeline=pipeline, transport=transport) as client:
        statuses = [(await client.get("http://dep.test/")).status_code for _ in range(50)]
    assert statuses == [200] * 50
    assert transport.injected.count("status") > 5


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (lambda: Latency(-1), "Latency: seconds must be a finite number >= 0, got -1"),
        (lambda: Error(rate=2), "Error: rate must be a number between 0 and 1, got 2"),
        (
            lambda: Error(cast(Any, "boom")),
            "Error: exception must be an exception class or a function",
        ),
        (lambda: Status(42), "Status: code must be an HTTP status code, got 42"),
        (lambda: Outage(start=0, duration=0), "Outage: duration must be a finite number > 0"),
    ],
)
def test_faults_are_validated(fault: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fault()


def test_only_faults_are_accepted() -> None:
    with pytest.raises(ValueError, match="faults must be Latency, Error, Status or Outage"):
        FaultInjectionTransport(faults=["slow"])  # type: ignore[list-item]


async def test_the_seed_covers_the_pipelines_jitter_too(fake_clock: FakeClock) -> None:
    async def run() -> tuple[list[str], list[float | None]]:
        waits: list[float | None] = []
        transport = FaultInjectionTransport(
            httpx.MockTransport(ok), faults=[Status(503, rate=0.5)], seed=11, clock=fake_clock
        )
        pipeline = Pipeline.builder(clock=fake_clock).retry(max_attempts=6, rng=transport.rng)
        async with ResilientClient(pipeline=pipeline.build(), transport=transport) as client:
            for _ in range(20):
                response = await client.get("http://dep.test/")
                waits.extend(a.delay for a in ExecutionReport.of(response).attempts)
        return transport.injected, waits

    first, again = await run(), await run()
    assert first == again  # the same faults, and the same waits between the retries
    assert len([w for w in first[1] if w is not None]) > 3
