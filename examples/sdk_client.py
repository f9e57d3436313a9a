"""An SDK that takes an ``httpx.AsyncClient`` (here OpenAI's), made resilient by handing it a
ResilientClient.

Most API SDKs accept your own httpx client (``http_client=``): give them a ResilientClient and
every call the SDK makes runs through the pipeline, with its timeouts, backoff, retry budget and
circuit breaker, the same as your other outbound calls. This script points the SDK at a local
fake of ``POST /chat/completions`` whose first answer is a 503, and shows the pipeline retrying.

Run it: python examples/sdk_client.py  (needs ``pip install openai``; no network, no API key:
it starts its own fake API on 127.0.0.1)
"""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
from openai import AsyncOpenAI

from httpx_resilience import ExecutionReport, ResilientClient
from httpx_resilience.testing import LoopbackServer, ReceivedRequest, Reply

# The smallest body the SDK's ChatCompletion model accepts.
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Hello from the fake API."},
        }
    ],
}


def fake_api(request: ReceivedRequest) -> Reply:
    if request.method == "POST" and request.path == "/v1/chat/completions":
        return Reply(
            200,
            headers=[("content-type", "application/json")],
            body=json.dumps(COMPLETION).encode(),
        )
    return Reply(404, body=b'{"error": {"message": "not found"}}')


async def main() -> None:
    with LoopbackServer(fake_api) as api:
        api.script(Reply(503, body=b'{"error": {"message": "overloaded"}}'))  # one blip first

        async with ResilientClient() as http:
            openai = AsyncOpenAI(
                api_key="sk-test",  # the fake API does not check it
                base_url=f"{api.url}/v1",
                http_client=http,
                # The SDK retries on its own too (2 retries by default). Two layers of retries
                # multiply (up to 3 x 3 = 9 tries per call), and to the pipeline each of the
                # SDK's retries is a new request, which its retry budget cannot hold back:
                # turn the SDK's off and let the pipeline be the one that retries.
                max_retries=0,
            )
            # A POST is retried only when repeating it is safe. Rather than
            # retry_non_idempotent=True, which would make every POST of this client retryable
            # (file uploads, batch creations...), mark the calls you know are safe with an
            # Idempotency-Key: one per logical call, so every try of it carries the same key.
            # (A repeated chat completion changes no state; at worst it costs tokens twice.)
            raw = await openai.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Say hello."}],
                extra_headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            completion = raw.parse()

        received = len(api.requests)

    # with_raw_response exposes the httpx response, and with it the pipeline's report.
    report: ExecutionReport = raw.http_response.extensions["resilience"]
    tries = ", then ".join(
        str(a.result.status_code) if isinstance(a.result, httpx.Response) else repr(a.exception)
        for a in report.attempts
    )
    print(f"answer: {completion.choices[0].message.content}")
    print(f"1 SDK call, {received} HTTP requests to the API: {tries}")
    print(f"retried by the pipeline: {len(report.attempts) - 1} (SDK retries: off)")


if __name__ == "__main__":
    asyncio.run(main())
