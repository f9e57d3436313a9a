"""A simulated rate-limited upstream on a FakeClock, for pacing tests (exact, deterministic)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import httpx

from httpx_resilience import Clock, Pipeline, by_origin
from httpx_resilience.http.classify import transient
from httpx_resilience.outcome import handle_results
from httpx_resilience.testing import FakeClock


class FixedWindow:
    """An upstream that accepts ``limit`` requests per fixed window of ``window`` seconds
    (windows start at time 0 of ``now``) and answers the rest 429 with ``Retry-After`` in
    whole seconds (the time to the window's end, rounded up, as servers write it).

    With ``headers``, every answer also carries the IETF draft's ``RateLimit-Policy`` and
    ``RateLimit`` fields (calls left, seconds to the window's end rounded up).
    """

    def __init__(
        self,
        now: Callable[[], float],
        *,
        limit: int,
        window: float,
        headers: bool = False,
        retry_after: Callable[[float], str] | None = None,
    ) -> None:
        self.now = now
        self.limit = limit
        self.window = window
        self.headers = headers
        self.retry_after = retry_after or (lambda left: str(math.ceil(left)))
        self.accepted: Counter[int] = Counter()
        self.refused: Counter[int] = Counter()

    def answer(self) -> tuple[int, list[tuple[str, str]]]:
        """The status and headers of the answer to a request received now."""
        now = self.now()
        index = int(now // self.window)
        left = (index + 1) * self.window - now
        if self.accepted[index] < self.limit:
            self.accepted[index] += 1
            status = 200
            headers = []
        else:
            self.refused[index] += 1
            status = 429
            headers = [("Retry-After", self.retry_after(left))]
        if self.headers:
            remaining = self.limit - self.accepted[index]
            headers += [
                ("RateLimit-Policy", f'"default";q={self.limit};w={self.window:g}'),
                ("RateLimit", f'"default";r={remaining};t={math.ceil(left)}'),
            ]
        return status, headers

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            status, headers = self.answer()
            return httpx.Response(status, headers=headers, content=b"ok")

        return httpx.MockTransport(handle)

    def windows(self) -> list[int]:
        """The windows that saw a request, in order."""
        return sorted(set(self.accepted) | set(self.refused))


def fake_upstream(clock: FakeClock, **options: object) -> FixedWindow:
    return FixedWindow(clock.monotonic, **options)  # type: ignore[arg-type]


def standard_with_pacing(clock: Clock | None = None) -> Pipeline:
    """The pipeline proposed as standard: Pipeline.standard()'s policies with the pacing gate
    between the breaker and the attempt timeout. The breaker here ignores 429s, as issue 13
    asks of it (another item of the issue; its default is not changed by this work)."""
    not_429 = transient & ~handle_results(lambda r: r.status_code == 429)
    return (
        Pipeline.builder(clock=clock)
        .timeout(30.0)
        .retry(max_attempts=3, base_delay=0.2, max_delay=10.0)
        .circuit_breaker(
            failure_ratio=0.1,
            minimum_throughput=100,
            sampling_duration=30.0,
            break_duration=5.0,
            key=by_origin,
            handle=not_429,
        )
        .pacing()
        .timeout(10.0)
        .build()
    )
