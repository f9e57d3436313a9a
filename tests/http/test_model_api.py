"""What a model API's clients need of the HTTP layer: the statuses its SDKs retry and the
``x-should-retry`` header."""

from __future__ import annotations

import logging

import httpx
import pytest

from httpx_resilience import Context, Outcome, Pipeline, ResilientClient, TimeoutRejected
from httpx_resilience.http import classify
from httpx_resilience.http.classify import HTTP_CLASSIFIER, retry_statuses
from httpx_resilience.testing import FakeClock

REQUEST = httpx.Request("POST", "http://127.0.0.1/v1/messages")
MODEL_API = retry_statuses(408, 409, 429, "5xx")


def answer(status: int, **headers: str) -> Outcome[httpx.Response]:
    return Outcome(result=httpx.Response(status, headers=headers, request=REQUEST))


@pytest.mark.parametrize("status", [408, 409, 429, 500, 501, 502, 503, 504, 529, 599])
def test_the_statuses_a_model_api_sdk_retries(status: int) -> None:
    assert MODEL_API(answer(status))


@pytest.mark.parametrize("status", [200, 201, 301, 400, 401, 403, 404, 413, 422])
def test_statuses_it_does_not_retry(status: int) -> None:
    assert not MODEL_API(answer(status))


def test_529_overloaded_is_retried_though_the_default_classifier_ignores_it() -> None:
    assert not HTTP_CLASSIFIER.failed_result(httpx.Response(529))
    assert MODEL_API(answer(529))


@pytest.mark.parametrize("value", ["false", "False", " false "])
def test_x_should_retry_false_is_never_retried(value: str) -> None:
    assert not MODEL_API(answer(503, **{"x-should-retry": value}))
    assert not MODEL_API(answer(429, **{"x-should-retry": value}))


def test_x_should_retry_true_forces_a_retry_of_an_error() -> None:
    assert MODEL_API(answer(400, **{"x-should-retry": "true"}))
    # A success is a success whatever the header says; other values are ignored.
    assert not MODEL_API(answer(200, **{"x-should-retry": "true"}))
    assert MODEL_API(answer(503, **{"x-should-retry": "maybe"}))
    assert not MODEL_API(answer(400, **{"x-should-retry": "maybe"}))


def test_a_status_error_counts_as_the_response_it_carries() -> None:
    def raised(status: int, **headers: str) -> Outcome[httpx.Response]:
        response = httpx.Response(status, headers=headers, request=REQUEST)
        error = httpx.HTTPStatusError("status", request=REQUEST, response=response)
        return Outcome(exception=error)

    assert MODEL_API(raised(529))
    assert not MODEL_API(raised(404))
    assert not MODEL_API(raised(503, **{"x-should-retry": "false"}))


def test_exceptions_are_judged_as_the_default_judges_them() -> None:
    assert MODEL_API(Outcome(exception=httpx.ConnectError("refused", request=REQUEST)))
    assert MODEL_API(Outcome(exception=TimeoutRejected("attempt timeout", timeout=1.0)))
    assert not MODEL_API(Outcome(exception=httpx.UnsupportedProtocol("ftp", request=REQUEST)))
    assert not MODEL_API(Outcome(exception=ValueError("a bug")))
    assert not MODEL_API(Outcome(result="not a response"))


def test_codes_and_classes_are_named_in_describe() -> None:
    assert str(MODEL_API) == "retry_statuses(408, 409, 429, '5xx')"
    assert retry_statuses(503)(answer(503))
    assert not retry_statuses(503)(answer(502))
    assert retry_statuses("4xx")(answer(418))


@pytest.mark.parametrize("bad", [99, 600, "5XX", "6xx", "500", True, 503.0, None])
def test_a_bad_status_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match=rf"retry_statuses: statuses must .* got {bad!r}"):
        retry_statuses(429, bad)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_x_should_retry_false_ends_retrying_with_that_answer() -> None:
    pipeline = Pipeline.builder(clock=FakeClock()).retry(max_attempts=3, handle=MODEL_API).build()
    calls = 0

    async def call() -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503, headers={"x-should-retry": "false"})

    response = await pipeline.execute(call, Context(classifier=HTTP_CLASSIFIER))
    assert (response.status_code, calls) == (503, 1)


# -- an SDK's own retries left on -------------------------------------------------------------


@pytest.fixture
def warned_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The warning is logged once per process: as if this test's were the first."""
    monkeypatch.setattr(classify, "_warned_of_sdk_retries", False)


def sdk_api(statuses: list[int]) -> tuple[httpx.MockTransport, list[str]]:
    replies = iter(statuses)
    counts: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        counts.append(request.headers.get("x-stainless-retry-count", "-"))
        return httpx.Response(next(replies))

    return httpx.MockTransport(api), counts


async def sdk_call(client: ResilientClient, retry_count: int) -> httpx.Response:
    return await client.get(
        "https://api.example/v1/models", headers={"x-stainless-retry-count": str(retry_count)}
    )


SDK_WARNING = "x-stainless-retry-count: 1, so its SDK retries it too"


@pytest.mark.anyio
@pytest.mark.usefixtures("warned_once")
async def test_a_request_its_sdk_retried_and_the_pipeline_retries_is_warned_of_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline = Pipeline.builder(clock=FakeClock()).retry(max_attempts=2).build()
    transport, counts = sdk_api([503, 200, 503, 200])
    with caplog.at_level(logging.WARNING, logger="httpx_resilience"):
        async with ResilientClient(pipeline=pipeline, transport=transport) as client:
            await sdk_call(client, 1)
            await sdk_call(client, 1)
    assert counts == ["1", "1", "1", "1"]
    warnings = [r.getMessage() for r in caplog.records if "x-stainless" in r.getMessage()]
    assert len(warnings) == 1
    assert SDK_WARNING in warnings[0]
    assert "max_retries=0" in warnings[0]
    # The origin only: a path or query may hold a secret.
    assert "A GET request to https://api.example carries" in warnings[0]
    assert "/v1/models" not in warnings[0]


@pytest.mark.anyio
@pytest.mark.usefixtures("warned_once")
async def test_no_warning_for_a_first_request_or_one_that_is_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline = Pipeline.builder(clock=FakeClock()).retry(max_attempts=2).build()
    # The SDK's first request (count 0) retried by the pipeline, and its retry (count 1) that
    # succeeds at once: no layer multiplied the other's tries.
    transport, _counts = sdk_api([503, 200, 200])
    with caplog.at_level(logging.WARNING, logger="httpx_resilience"):
        async with ResilientClient(pipeline=pipeline, transport=transport) as client:
            await sdk_call(client, 0)
            await sdk_call(client, 1)
    assert not [r for r in caplog.records if "x-stainless" in r.getMessage()]
    assert not classify._warned_of_sdk_retries


def test_httpx2_answers_are_judged_alike() -> None:
    httpx2 = pytest.importorskip("httpx2")
    pytest.importorskip("httpx_resilience.httpx2")  # registers the flavour
    request = httpx2.Request("POST", "http://127.0.0.1/v1/messages")
    overloaded = httpx2.Response(529, headers={"retry-after-ms": "250"}, request=request)
    assert MODEL_API(Outcome(result=overloaded))
    assert HTTP_CLASSIFIER.retry_after(Outcome(result=overloaded)) == 0.25
    refused = httpx2.Response(503, headers={"x-should-retry": "false"}, request=request)
    assert not MODEL_API(Outcome(result=refused))
    error = httpx2.HTTPStatusError("status", request=request, response=overloaded)
    assert MODEL_API(Outcome(exception=error))
    assert MODEL_API(Outcome(exception=httpx2.ConnectError("refused", request=request)))
