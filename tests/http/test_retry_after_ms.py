"""``retry-after-ms``: the milliseconds OpenAI's and Anthropic's APIs ask a client to wait,
read before ``Retry-After`` as their SDKs read them."""

from __future__ import annotations

import httpx
import pytest
import tenacity

from httpx_resilience import Context, Outcome, Pipeline
from httpx_resilience.http.classify import HTTP_CLASSIFIER, retry_statuses
from httpx_resilience.testing import FakeClock


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"retry-after-ms": "1500"}, 1.5, id="ms"),
        pytest.param({"retry-after-ms": "250.5"}, 0.2505, id="ms-fraction"),
        pytest.param({"retry-after-ms": "1500", "retry-after": "9"}, 1.5, id="ms-first"),
        pytest.param({"retry-after-ms": "soon", "retry-after": "9"}, 9.0, id="ms-garbage"),
        pytest.param({"retry-after-ms": "-5", "retry-after": "9"}, 9.0, id="ms-negative"),
        pytest.param({"retry-after-ms": "0"}, None, id="ms-zero"),
        # Arabic-Indic 30, in UTF-8 bytes as a server would send it.
        pytest.param({"retry-after-ms": "\u0663\u0660".encode()}, None, id="ms-non-ascii"),
    ],
)
def test_retry_after_ms(headers: dict[str, str | bytes], expected: float | None) -> None:
    raw = [
        (name.encode(), v if isinstance(v, bytes) else v.encode()) for name, v in headers.items()
    ]
    response = httpx.Response(429, headers=raw)
    assert HTTP_CLASSIFIER.retry_after(Outcome(result=response)) == expected


@pytest.mark.anyio
async def test_a_retry_waits_as_long_as_retry_after_ms_asks() -> None:
    clock = FakeClock()
    pipeline = (
        Pipeline.builder(clock=clock)
        .retry(max_attempts=3, backoff=tenacity.wait_fixed(0.1), handle=retry_statuses(429))
        .build()
    )
    replies = iter([httpx.Response(429, headers={"retry-after-ms": "1500"}), httpx.Response(200)])

    async def call() -> httpx.Response:
        return next(replies)

    context = Context(classifier=HTTP_CLASSIFIER)
    response = await pipeline.execute(call, context)
    assert response.status_code == 200
    assert [a.delay for a in context.report.attempts] == [1.5, None]
    assert clock.monotonic() == 1.5
