"""The OpenAI and Anthropic SDKs through ``ResilientClient(profiles=Profile.model_api())``, with
their own retries off, against a loopback fake of their APIs (``_fake_llm``).

Both SDKs are built on httpx2: they get ``httpx_resilience.httpx2.ResilientClient``. OpenAI's
also takes an httpx client (through its compatibility shim), so it runs on
``httpx_resilience.ResilientClient`` too. All of it on asyncio and trio.

The retries are the pipeline's: every request the fake receives says
``x-stainless-retry-count: 0`` (the SDK sent the call once). The pipeline's clock skips the
waits between tries (the report still says how long each was), and keeps real timers: a
``FakeClock`` would move time to the attempt timeout while the test waits on a real socket.
The 90 s generation runs on a clock 100 times faster than the wall, against a server that
really takes 0.9 s, so that the attempt timeout is the one that would cut a real 90 s call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

import httpx_resilience
from httpx_resilience import Clock, Pipeline, Profile, Registry, SystemClock
from httpx_resilience.http import classify
from httpx_resilience.testing import LoopbackServer, Reply

from ._fake_llm import TEXT, anthropic_error, fake_model_api, openai_error

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
resilient_httpx2 = pytest.importorskip("httpx_resilience.httpx2")

#: (SDK, the package of the ResilientClient it is given).
SDKS = [("openai", "httpx2"), ("anthropic", "httpx2"), ("openai", "httpx")]

#: The SDKs pick their package: this module is not run once per flavour (tests/flavours.py).
ONE_FLAVOUR = True

MESSAGES = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def api() -> Iterator[LoopbackServer]:
    with LoopbackServer(fake_model_api) as server:
        yield server


@dataclass
class SDK:
    """One SDK client on a ResilientClient, and how to make its calls."""

    name: str
    client: Any

    async def create(self, **extra: Any) -> Any:
        """A non-streamed call, raw: the parsed answer and the httpx response."""
        if self.name == "openai":
            raw = await self.client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES, **extra
            )
            return raw.parse().choices[0].message.content, raw.http_response
        raw = await self.client.messages.with_raw_response.create(
            model="claude-sonnet-5-5", max_tokens=64, messages=MESSAGES, **extra
        )
        return (await raw.parse()).content[0].text, raw.http_response

    async def stream(self) -> str:
        """A streamed call, its text put together from the events."""
        pieces = []
        if self.name == "openai":
            chunks = await self.client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            async with chunks:  # closes the stream (and its generator) at the end, on trio too
                async for chunk in chunks:
                    if chunk.choices and chunk.choices[0].delta.content:
                        pieces.append(chunk.choices[0].delta.content)
            return "".join(pieces)
        async with self.client.messages.stream(
            model="claude-sonnet-5-5", max_tokens=64, messages=MESSAGES
        ) as events:
            async for text in events.text_stream:
                pieces.append(text)
        return "".join(pieces)

    def error(self, status: int, **headers: str) -> Reply:
        """An error answer as this SDK's API sends it."""
        if self.name == "openai":
            return openai_error(status, **headers)
        return anthropic_error(status, **headers)


def resilient_client(package: str, **kwargs: Any) -> Any:
    """A ``ResilientClient`` for ``package`` (``"httpx"`` or ``"httpx2"``)."""
    module: Any = resilient_httpx2 if package == "httpx2" else httpx_resilience
    return module.ResilientClient(**kwargs)


def sdk_client(name: str, http: Any, base_url: str) -> Any:
    if name == "openai":
        return openai.AsyncOpenAI(
            api_key="sk-test", base_url=f"{base_url}/v1", http_client=http, max_retries=0
        )
    return anthropic.AsyncAnthropic(
        api_key="sk-ant-test", base_url=base_url, http_client=http, max_retries=0
    )


class NoWaits(SystemClock):
    """The system clock, whose sleeps (the waits between tries) end at once."""

    async def sleep(self, seconds: float) -> None:
        await anyio.lowlevel.checkpoint()


def model_api(clock: Clock) -> Registry:
    """The preset, on ``clock``."""
    return Registry({"default": Profile.model_api()}, clock=clock)


@pytest.fixture(params=SDKS, ids=lambda p: f"{p[0]}-on-{p[1]}")
async def sdk(request: pytest.FixtureRequest, api: LoopbackServer) -> AsyncIterator[SDK]:
    name, package = request.param
    async with resilient_client(package, profiles=model_api(NoWaits())) as http:
        yield SDK(name, sdk_client(name, http, api.url))


def sdk_stream_generators(test: Any) -> Any:
    """On trio, the OpenAI SDK's stream leaves its inner generators (its own, and the response's
    ``aiter_bytes``) to the garbage collector even once closed: its code, not the pipeline's.
    Their ResourceWarnings are not this test's failure."""
    test = pytest.mark.filterwarnings("ignore:Async generator:ResourceWarning")(test)
    return pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")(test)


def sent_once_by_the_sdk(api: LoopbackServer) -> bool:
    """Every request reached the fake as the SDK's first (its own retries are off)."""
    return all(r.headers.get("x-stainless-retry-count") == "0" for r in api.requests)


@pytest.mark.anyio
async def test_a_429_with_retry_after_ms_is_retried_once_after_that_wait(
    sdk: SDK, api: LoopbackServer
) -> None:
    api.script(sdk.error(429, **{"retry-after-ms": "1500"}))
    text, response = await sdk.create()
    assert text == TEXT
    report = response.extensions["resilience"]
    assert [a.delay for a in report.attempts] == [1.5, None]
    assert len(api.requests) == 2
    assert sent_once_by_the_sdk(api)


@pytest.mark.anyio
@pytest.mark.parametrize("status", [529, 500])
async def test_an_overloaded_or_failing_api_is_retried_once(
    sdk: SDK, api: LoopbackServer, status: int
) -> None:
    api.script(sdk.error(status))
    text, response = await sdk.create()
    assert text == TEXT
    attempts = response.extensions["resilience"].attempts
    assert [a.result.status_code if a.result else a.exception for a in attempts] == [status, 200]
    assert len(api.requests) == 2
    assert sent_once_by_the_sdk(api)


@pytest.mark.anyio
async def test_x_should_retry_false_stops_retrying(sdk: SDK, api: LoopbackServer) -> None:
    api.script(sdk.error(503, **{"x-should-retry": "false"}))
    error = openai.APIStatusError if sdk.name == "openai" else anthropic.APIStatusError
    with pytest.raises(error) as info:
        await sdk.create()
    assert getattr(info.value, "status_code", None) == 503
    assert len(api.requests) == 1


@pytest.mark.anyio
@sdk_stream_generators
async def test_a_streamed_call_survives_a_503_before_its_first_byte(
    sdk: SDK, api: LoopbackServer
) -> None:
    api.script(sdk.error(503))
    assert await sdk.stream() == TEXT
    assert len(api.requests) == 2
    assert sent_once_by_the_sdk(api)


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["openai", "anthropic"])
async def test_sdk_retries_left_on_multiply_the_tries_and_are_warned_of(
    name: str,
    api: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(classify, "_warned_of_sdk_retries", False)  # as if first in the process
    error = openai_error if name == "openai" else anthropic_error
    # retry-after-ms: 1 keeps the SDK's own waits short.
    api.set_handler(lambda request: error(503, **{"retry-after-ms": "1"}))
    with caplog.at_level(logging.WARNING, logger="httpx_resilience"):
        async with resilient_client("httpx2", profiles=model_api(NoWaits())) as http:
            if name == "openai":
                client = openai.AsyncOpenAI(
                    api_key="sk-test", base_url=f"{api.url}/v1", http_client=http, max_retries=2
                )
            else:
                client = anthropic.AsyncAnthropic(
                    api_key="sk-ant-test", base_url=api.url, http_client=http, max_retries=2
                )
            failed = openai.InternalServerError if name == "openai" else anthropic.APIStatusError
            with pytest.raises(failed):
                await SDK(name, client).create()
    # 3 tries of the SDK's x 3 of the pipeline's.
    counts = [r.headers.get("x-stainless-retry-count") for r in api.requests]
    assert counts == ["0"] * 3 + ["1"] * 3 + ["2"] * 3
    warnings = [r.getMessage() for r in caplog.records if "max_retries=0" in r.getMessage()]
    assert len(warnings) == 1


class FastClock:
    """A clock that runs ``speed`` times faster than the wall: a policy's 600 s take 6 s."""

    def __init__(self, speed: float) -> None:
        self.speed = speed

    def monotonic(self) -> float:
        return time.monotonic() * self.speed

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds / self.speed)


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "package"), SDKS, ids=lambda p: str(p))
async def test_a_90_s_generation_is_not_cut_by_the_attempt_timeout(
    name: str, package: str, api: LoopbackServer
) -> None:
    clock = FastClock(100.0)  # the server's 0.9 s are 90 s to the pipeline
    api.set_handler(lambda request: _slowly(fake_model_api(request), 0.9))
    async with resilient_client(package, profiles=model_api(clock)) as http:
        text, response = await SDK(name, sdk_client(name, http, api.url)).create()
    assert text == TEXT
    assert len(response.extensions["resilience"].attempts) == 1

    # The standard pipeline's 10 s attempt timeout (0.1 s here) would have cut it.
    standard = Pipeline.builder(clock=clock).timeout(10.0).build()
    timed_out = openai.APITimeoutError if name == "openai" else anthropic.APITimeoutError
    async with resilient_client(package, pipeline=standard) as http:
        with pytest.raises(timed_out):
            await SDK(name, sdk_client(name, http, api.url)).create()


def _slowly(reply: Reply, delay: float) -> Reply:
    return Reply(reply.status, headers=reply.headers, body=reply.body, delay=delay)


@pytest.mark.anyio
@sdk_stream_generators
@pytest.mark.parametrize("name", ["openai", "anthropic"])
async def test_for_a_stream_the_attempt_timeout_bounds_the_wait_for_its_first_byte(
    name: str, api: LoopbackServer
) -> None:
    # 30 s on a clock 100 times faster: 0.3 s of the wall.
    profile = Profile(**{**vars(Profile.model_api()), "attempt_timeout": 30.0})
    registry = Registry({"default": profile}, clock=FastClock(100.0))
    streamed = fake_model_api  # its events are written in 4 pieces
    api.set_handler(
        lambda request: Reply(**{**vars(streamed(request)), "chunk_delay": 0.15})  # 0.45 s
    )
    async with resilient_client("httpx2", profiles=registry) as http:
        sdk = SDK(name, sdk_client(name, http, api.url))
        # Events that take longer than the attempt timeout in all are not cut.
        assert await sdk.stream() == TEXT
        assert len(api.requests) == 1
        # Headers later than it are: the try is cut and retried.
        api.script(Reply(**{**vars(streamed(api.requests[0])), "delay": 0.6}))
        assert await sdk.stream() == TEXT
        assert len(api.requests) == 3


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["openai", "anthropic"])
async def test_the_sdk_recipe_on_a_transport(name: str, api: LoopbackServer) -> None:
    """For an httpx2 client made elsewhere: the transport takes the profile as well."""
    httpx2 = pytest.importorskip("httpx2")
    transport = resilient_httpx2.ResilienceTransport(model_api(NoWaits()))
    async with httpx2.AsyncClient(transport=transport) as http:
        sdk = SDK(name, sdk_client(name, http, api.url))
        api.script(sdk.error(529))
        text, response = await sdk.create()
    assert text == TEXT
    assert len(response.extensions["resilience"].attempts) == 2
    assert sent_once_by_the_sdk(api)
