"""A loopback fake of the two model APIs the SDK tests call: OpenAI's chat completions and
Anthropic's messages, each as JSON and as a server-sent event stream.

It is a handler for :class:`~httpx_resilience.testing.LoopbackServer`; failures are scripted
before it (``server.script(Reply(529, ...))``), so each test says which answers come first
and the fake answers the rest. Bodies are the smallest the current SDKs parse.
"""

from __future__ import annotations

import json
from typing import Any

from httpx_resilience.testing import ReceivedRequest, Reply

#: The text every answer carries, whole or in pieces.
TEXT = "Hello from the fake API."
_PIECES = ("Hello ", "from the ", "fake API.")

JSON = [("content-type", "application/json")]
SSE = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]


def openai_error(status: int, message: str = "try again", **headers: str) -> Reply:
    """An OpenAI error answer."""
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return Reply(status, headers=[*JSON, *headers.items()], body=json.dumps(body).encode())


def anthropic_error(status: int, kind: str = "overloaded_error", **headers: str) -> Reply:
    """An Anthropic error answer (529 is ``overloaded_error``)."""
    body = {"type": "error", "error": {"type": kind, "message": "try again"}}
    return Reply(status, headers=[*JSON, *headers.items()], body=json.dumps(body).encode())


def _chat_completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": TEXT},
            }
        ],
    }


def _chat_chunks(model: str) -> bytes:
    events = []
    for index, piece in enumerate(_PIECES):
        delta: dict[str, Any] = {"content": piece}
        if index == 0:
            delta["role"] = "assistant"
        chunk = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        events.append(f"data: {json.dumps(chunk)}\n\n")
    last = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    }
    events.append(f"data: {json.dumps(last)}\n\n")
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


def _message(model: str) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 6},
    }


def _message_events(model: str) -> bytes:
    start = {**_message(model), "content": [], "stop_reason": None}
    start["usage"] = {"input_tokens": 5, "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
            for p in _PIECES
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 6},
        },
        {"type": "message_stop"},
    ]
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def fake_model_api(request: ReceivedRequest) -> Reply:
    """Answer ``POST /v1/chat/completions`` (OpenAI) and ``POST /v1/messages`` (Anthropic),
    streamed when the body asks for ``"stream": true``: the events are written in pieces, as a
    model generates them."""
    if request.method != "POST":
        return Reply(405, body=b"")
    payload = json.loads(request.body or b"{}")
    model = str(payload.get("model", "model"))
    stream = bool(payload.get("stream"))
    if request.path == "/v1/chat/completions":
        if stream:
            return Reply(200, headers=SSE, body=_chat_chunks(model), chunks=4)
        return Reply(200, headers=JSON, body=json.dumps(_chat_completion(model)).encode())
    if request.path == "/v1/messages":
        if stream:
            return Reply(200, headers=SSE, body=_message_events(model), chunks=4)
        return Reply(200, headers=JSON, body=json.dumps(_message(model)).encode())
    return openai_error(404, "not found")
