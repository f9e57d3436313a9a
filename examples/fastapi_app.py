"""A FastAPI service calling two dependencies through one ResilientClient, one profile each.

``GET /products/{sku}`` asks the inventory service and the pricing service at once. Inventory
is critical (no stock figure, no answer), so it gets patient retries; pricing is not (a product
page can show a recent price, or none), so it gets a short timeout, a breaker that opens
quickly, and a cache of the last prices to fall back on. The client is opened and closed in the
app's lifespan, so every request shares its connections, breakers and cache.

When run, this script starts fake inventory and pricing services on 127.0.0.1, runs the app
in-process through ``httpx.ASGITransport`` (no port, no server), sends a few requests, takes
pricing down, and prints what the app answered.

Run it: python examples/fastapi_app.py  (needs ``pip install fastapi``)
In production, serve ``create_app(...)`` with uvicorn or any ASGI server instead.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, HTTPException, Request

from httpx_resilience import CircuitBreaker, Profile, Registry, ResilientClient
from httpx_resilience.profiles import (
    CacheOptions,
    CircuitBreakerOptions,
    FallbackOptions,
    RetryOptions,
)
from httpx_resilience.testing import LoopbackServer, ReceivedRequest, Reply


def dependency_profiles() -> Registry:
    """One profile per dependency: each gets its own timeouts, retries and breaker."""
    return Registry(
        {
            # Critical: worth waiting a little for, and retrying a few times.
            "inventory": Profile(
                total_timeout=3.0,
                attempt_timeout=1.0,
                retry=RetryOptions(max_attempts=3, base_delay=0.05, max_delay=0.5),
                circuit_breaker=CircuitBreakerOptions(
                    failure_ratio=0.5,
                    minimum_throughput=20,
                    sampling_duration=10.0,
                    break_duration=5.0,
                    partition="none",  # one service behind one URL: one breaker
                ),
            ),
            # Optional: fail fast, stop calling it soon once it is down (the breaker opens when
            # half of at least 4 calls in 10 s failed, and stays open 30 s), and meanwhile
            # answer from the last prices seen (stale-if-error, up to 10 minutes old).
            "pricing": Profile(
                total_timeout=1.5,
                attempt_timeout=0.5,
                retry=RetryOptions(max_attempts=2, base_delay=0.05, max_delay=0.2),
                circuit_breaker=CircuitBreakerOptions(
                    failure_ratio=0.5,
                    minimum_throughput=4,
                    sampling_duration=10.0,
                    break_duration=30.0,
                    partition="none",
                ),
                fallback=FallbackOptions(cache=CacheOptions(maxsize=10_000, ttl=600.0)),
            ),
        }
    )


def http_client(request: Request) -> ResilientClient:
    """The app's ResilientClient, for endpoints to depend on."""
    client: ResilientClient = request.app.state.http
    return client


# At module level: FastAPI resolves the endpoints' annotations in the module's namespace.
Http = Annotated[ResilientClient, Depends(http_client)]


def create_app(inventory_url: str, pricing_url: str) -> FastAPI:
    """The service; the dependencies' URLs come from its configuration."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One client for the app's lifetime: breakers and caches only work if they are shared.
        # Requests are routed to a profile by URL prefix (the trailing "/" keeps
        # "http://host:80" from matching "http://host:8080" too).
        routes = {f"{inventory_url}/": "inventory", f"{pricing_url}/": "pricing"}
        async with ResilientClient(profiles=dependency_profiles(), routes=routes) as client:
            app.state.http = client
            yield

    app = FastAPI(lifespan=lifespan)

    async def fetch_stock(http: ResilientClient, sku: str) -> int:
        try:
            response = await http.get(f"{inventory_url}/stock/{sku}")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            # Every rejection of the pipeline (open breaker, timeout) is an httpx error too.
            raise HTTPException(503, f"inventory unavailable: {type(exc).__name__}") from exc
        stock: int = response.json()["in_stock"]
        return stock

    async def fetch_price(http: ResilientClient, sku: str) -> tuple[float | None, str]:
        try:
            response = await http.get(f"{pricing_url}/prices/{sku}")
            response.raise_for_status()
        except httpx.HTTPError:
            # Down, and no cached price for this SKU: degrade, do not fail the page.
            return None, "unavailable"
        source = "cache" if response.extensions["resilience"].from_cache else "live"
        price: float = response.json()["price"]
        return price, source

    @app.get("/products/{sku}")
    async def product(sku: str, http: Http) -> dict[str, Any]:
        # Both at once; fetch_price never raises, so gather never leaves it running alone.
        stock, (price, source) = await asyncio.gather(
            fetch_stock(http, sku), fetch_price(http, sku)
        )
        return {"sku": sku, "in_stock": stock, "price": price, "price_source": source}

    @app.get("/health/dependencies")
    async def dependencies(http: Http) -> dict[str, str]:
        """The circuit of each dependency, for dashboards and alerts."""
        assert http.profiles is not None
        states = {}
        for name in http.profiles.names:
            for policy in http.profiles.get(name).policies:
                if isinstance(policy, CircuitBreaker):
                    states[name] = str(policy.state)
        return states

    return app


# -- the demonstration: fake dependencies, the app in-process, a few requests -------------------


def fake_inventory(request: ReceivedRequest) -> Reply:
    stock = {"sku-1": 7, "sku-2": 3}
    sku = request.path.rsplit("/", 1)[-1]
    return Reply(200, body=json.dumps({"in_stock": stock.get(sku, 0)}).encode())


def fake_pricing(request: ReceivedRequest) -> Reply:
    prices = {"sku-1": 19.99, "sku-2": 4.5}
    sku = request.path.rsplit("/", 1)[-1]
    return Reply(200, body=json.dumps({"price": prices.get(sku)}).encode())


async def main() -> None:
    with LoopbackServer(fake_inventory) as inventory, LoopbackServer(fake_pricing) as pricing:
        app = create_app(inventory.url, pricing.url)
        # ASGITransport does not run the lifespan (a server such as uvicorn does): enter it here.
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://shop"
            ) as shop,
        ):

            async def show(path: str) -> None:
                response = await shop.get(path)
                print(f"GET {path} -> {response.status_code} {json.dumps(response.json())}")

            await show("/products/sku-1")

            print("-- pricing goes down: every request answers 503 --")
            pricing.set_handler(lambda request: Reply(503))
            before = len(pricing.requests)
            for _ in range(3):
                await show("/products/sku-1")  # the last price seen, from the cache
            await show("/products/sku-2")  # never priced before: served without a price
            await show("/health/dependencies")
            print(
                f"pricing received {len(pricing.requests) - before} requests during the outage; "
                "the open breaker answered the rest without calling it"
            )


if __name__ == "__main__":
    asyncio.run(main())
