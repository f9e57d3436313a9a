"""Profiles from a TOML file: one client, each dependency with its own timeouts, limits and
breaker, chosen per request by route or by name.

Run it: python examples/profiles.py  (it starts two local upstreams to talk to)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from httpx_resilience import Registry, ResilientClient
from httpx_resilience.testing import LoopbackServer, Reply

HERE = Path(__file__).parent


async def main() -> None:
    registry = Registry.from_toml(HERE / "profiles.toml")
    print("profiles:", ", ".join(registry.names))

    with LoopbackServer() as payments, LoopbackServer() as search:
        payments.set_handler(lambda request: Reply(200, body=b'{"status": "paid"}'))
        search.script(Reply(503), Reply(200, body=b'{"hits": 3}'))  # one blip, then fine

        # Routes match by host (or URL prefix); these upstreams are both on 127.0.0.1, so the
        # example names the profile per request instead.
        async with ResilientClient(profiles=registry) as client:
            paid = await client.post(
                f"{payments.url}/charges",
                json={"amount": 4200},
                headers={"Idempotency-Key": "order-17"},
                extensions={"resilience.profile": "payments"},
            )
            found = await client.get(
                f"{search.url}/v2/query?q=shoes",
                extensions={"resilience.profile": "search"},
            )

    for response in (paid, found):
        report = response.extensions["resilience"]
        print(
            f"{response.request.method} {response.request.url.path}: {response.status_code} "
            f"via profile {report.profile!r} in {len(report.attempts)} attempt(s)"
        )


if __name__ == "__main__":
    asyncio.run(main())
