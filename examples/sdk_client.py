"""The OpenAI and Anthropic SDKs made resilient: one line each, then the pipeline retries.

Both SDKs take an httpx2 client (``http_client=``); give them the httpx2 flavour of
ResilientClient with the model-API profile, and turn their own retries off:

    AsyncOpenAI(http_client=ResilientClient(profiles=Profile.model_api()), max_retries=0)

The profile retries their POSTs (they send no Idempotency-Key) on 408, 409, 429 and 5xx (529:
overloaded), obeys x-should-retry and waits what retry-after-ms asks, with attempt timeouts
sized for generation. This script points both SDKs at a local fake of their APIs whose first
answer to each call is a failure, and shows the pipeline retrying.

Run it: python examples/sdk_client.py  (needs ``pip install 'httpx-resilience[httpx2]' openai
anthropic``; no network, no API key: it starts its own fake API on 127.0.0.1)
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from httpx_resilience import ExecutionReport, Profile
from httpx_resilience.httpx2 import ResilientClient
from httpx_resilience.testing import LoopbackServer, ReceivedRequest, Reply

TEXT = "Hello from the fake API."
JSON = [("content-type", "application/json")]
SSE = [("content-type", "text/event-stream")]

# The smallest bodies the SDKs' models accept.
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": TEXT}}
    ],
}
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-5-5",
    "content": [{"type": "text", "text": TEXT}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 5, "output_tokens": 6},
}


def message_events() -> bytes:
    """A streamed message, as Anthropic's API sends its server-sent events."""
    start = {**MESSAGE, "content": [], "stop_reason": None}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": TEXT}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 6},
        },
        {"type": "message_stop"},
    ]
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def fake_api(request: ReceivedRequest) -> Reply:
    """OpenAI's chat completions and Anthropic's messages (JSON, or streamed when asked)."""
    if request.path == "/v1/chat/completions":
        return Reply(200, headers=JSON, body=json.dumps(COMPLETION).encode())
    if request.path == "/v1/messages":
        if json.loads(request.body).get("stream"):
            return Reply(
                200, headers=[("content-type", "text/event-stream")], body=message_events()
            )
        return Reply(200, headers=JSON, body=json.dumps(MESSAGE).encode())
    return Reply(404, headers=JSON, body=b'{"error": {"message": "not found"}}')


def error(status: int, kind: str, **headers: str) -> Reply:
    body = {"type": "error", "error": {"type": kind, "message": kind}}
    return Reply(status, headers=[*JSON, *headers.items()], body=json.dumps(body).encode())


def tries(api: LoopbackServer, before: int) -> str:
    return f"{len(api.requests) - before} HTTP requests"


def statuses(report: ExecutionReport) -> str:
    return ", then ".join(str(a.result.status_code) for a in report.attempts if a.result)


async def main() -> None:
    with LoopbackServer(fake_api) as api:
        async with ResilientClient(profiles=Profile.model_api()) as http:
            # The SDKs retry on their own too (twice by default). Left on, the two layers'
            # tries multiply (3 x 3 = 9 requests when the API is down), and the pipeline
            # logs a warning: turn the SDKs' off and let the pipeline be the one that retries.
            openai = AsyncOpenAI(
                api_key="sk-test",  # the fake API does not check it
                base_url=f"{api.url}/v1",
                http_client=http,
                max_retries=0,
            )
            claude = AsyncAnthropic(
                api_key="sk-ant-test", base_url=api.url, http_client=http, max_retries=0
            )
            messages = [{"role": "user", "content": "Say hello."}]

            # OpenAI, rate limited: a 429 that asks for 300 ms (retry-after-ms).
            api.script(error(429, "rate_limit_exceeded", **{"retry-after-ms": "300"}))
            raw = await openai.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=messages
            )
            completion = raw.parse()
            # with_raw_response exposes the HTTP response, and on it the pipeline's report.
            report: ExecutionReport = raw.http_response.extensions["resilience"]
            waited = report.attempts[0].delay or 0.0
            print(f"openai: {completion.choices[0].message.content}")
            print(f"  {statuses(report)}; waited {'at least' if waited >= 0.3 else 'under'} 0.3 s")

            # Anthropic, overloaded: a 529, which the SDKs retry and the standard profile would not.
            api.script(error(529, "overloaded_error"))
            raw_message = await claude.messages.with_raw_response.create(
                model="claude-sonnet-5-5", max_tokens=64, messages=messages
            )
            message = await raw_message.parse()
            print(f"anthropic: {message.content[0].text}")
            print(f"  {statuses(raw_message.http_response.extensions['resilience'])}")

            # A streamed message whose first answer is a 503: retried before its first byte.
            api.script(error(503, "api_error"))
            before = len(api.requests)
            async with claude.messages.stream(
                model="claude-sonnet-5-5", max_tokens=64, messages=messages
            ) as stream:
                streamed = "".join([text async for text in stream.text_stream])
            print(f"anthropic, streamed: {streamed}")
            print(f"  {tries(api, before)}: 503, then the stream")

        counts = {r.headers.get("x-stainless-retry-count") for r in api.requests}
    print(f"{len(api.requests)} HTTP requests for 3 SDK calls; SDK retries: {counts}")


if __name__ == "__main__":
    asyncio.run(main())
