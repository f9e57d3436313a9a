"""Quickstart: ResilientClient with its defaults against an upstream that fails now and then.

``ResilientClient()`` is an ``httpx.AsyncClient`` whose every request runs through
``Pipeline.standard()``: a 30 s total timeout, 3 attempts with full-jitter backoff that honours
``Retry-After``, a retry budget, a circuit breaker per host and a 10 s timeout per attempt. This
script sends five GETs to a local upstream scripted to misbehave (503s, a connection reset in
the middle of a body, a ``Retry-After``) and prints, from ``response.extensions["resilience"]``,
what the client did for each.

Run it: python examples/quickstart.py  (it starts its own upstream on 127.0.0.1)
"""

from __future__ import annotations

import asyncio

import httpx

from httpx_resilience import Attempt, ExecutionReport, ResilientClient
from httpx_resilience.testing import LoopbackServer, Reply


def order(number: int) -> Reply:
    return Reply(200, body=b'{"order": %d, "status": "shipped"}' % number)


# What the upstream answers, request by request (scripted, so every run is the same).
UPSTREAM = (
    order(1),  # /orders/1: fine
    Reply(503),  # /orders/2: a blip...
    order(2),  # ...then fine
    Reply(200, body=b"x" * 4096, reset_after=512),  # /orders/3: reset mid-body...
    order(3),  # ...then fine
    Reply(503, headers=[("Retry-After", "1")]),  # /orders/4: "come back in 1 s"...
    order(4),  # ...then fine
    Reply(503),  # /orders/5: down for longer than three attempts
    Reply(503),
    Reply(503),
)


def describe(attempt: Attempt) -> str:
    """One try, as a status code or the name of the exception it raised."""
    if isinstance(attempt.result, httpx.Response):
        return str(attempt.result.status_code)
    return type(attempt.exception).__name__


async def main() -> None:
    with LoopbackServer() as upstream:
        upstream.script(*UPSTREAM)

        # The defaults are the point here: nothing to configure. (Only base_url is httpx's.)
        async with ResilientClient(base_url=upstream.url) as client:
            responses = [await client.get(f"/orders/{n}") for n in range(1, 6)]

        sent = len(upstream.requests)

    retries = 0
    for response in responses:
        # Every response carries the report of what the pipeline did to get it.
        report: ExecutionReport = response.extensions["resilience"]
        tries = ", ".join(describe(a) for a in report.attempts)
        retries += len(report.attempts) - 1
        # A retry that gives up returns the last response (a 503 here) rather than raising:
        # the caller decides, as with plain httpx (response.raise_for_status()).
        stopped = f", gave up: {report.retry_stopped}" if report.retry_stopped else ""
        print(
            f"GET {response.request.url.path}: {response.status_code} after "
            f"{len(report.attempts)} attempt(s) [{tries}]{stopped}; "
            f"waited {report.total_wait:.2f} s"
        )

    ok = sum(r.is_success for r in responses)
    print(
        f"summary: {ok}/{len(responses)} succeeded, {retries} retries, "
        f"{sent} requests reached the upstream"
    )


if __name__ == "__main__":
    asyncio.run(main())
