"""Every script in examples/ runs, against loopback servers only, and says what it did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"

# What each example must print: proof that it did its job, not only that it did not crash.
EXPECTED = {
    "profiles.py": [
        "profiles: default, payments, search, internal",
        "POST /charges: 200 via profile 'payments' in 1 attempt(s)",
        "GET /v2/query: 200 via profile 'search' in 2 attempt(s)",
    ],
    "quickstart.py": [
        "GET /orders/1: 200 after 1 attempt(s) [200]",
        "GET /orders/2: 200 after 2 attempt(s) [503, 200]",
        # The connection reset in the middle of the body, retried (the exception's name is
        # the platform's: ReadError on Linux).
        "GET /orders/3: 200 after 2 attempt(s) [",
        # Retry-After: 1 sets the wait, whatever the jitter.
        "GET /orders/4: 200 after 2 attempt(s) [503, 200]; waited 1.00 s",
        "GET /orders/5: 503 after 3 attempt(s) [503, 503, 503], gave up: max_attempts",
        "summary: 4/5 succeeded, 5 retries, 10 requests reached the upstream",
    ],
    "sdk_client.py": [
        "openai: Hello from the fake API.",
        # retry-after-ms: 300 sets the wait, whatever the jitter.
        "429, then 200; waited at least 0.3 s",
        "anthropic: Hello from the fake API.",
        "529, then 200",
        "anthropic, streamed: Hello from the fake API.",
        "2 HTTP requests: 503, then the stream",
        # The retries were the pipeline's: the SDKs sent every call once.
        "6 HTTP requests for 3 SDK calls; SDK retries: {'0'}",
    ],
    "fastapi_app.py": [
        'GET /products/sku-1 -> 200 {"sku": "sku-1", "in_stock": 7, "price": 19.99, '
        '"price_source": "live"}',
        'GET /products/sku-1 -> 200 {"sku": "sku-1", "in_stock": 7, "price": 19.99, '
        '"price_source": "cache"}',
        'GET /products/sku-2 -> 200 {"sku": "sku-2", "in_stock": 3, "price": null, '
        '"price_source": "unavailable"}',
        'GET /health/dependencies -> 200 {"inventory": "closed", "pricing": "open"}',
        "pricing received 3 requests during the outage",
    ],
    "redis_shared_limit.py": [
        "limit: 20/s, burst 5, shared by 2 replicas through Redis",
        "replica-a: ",
        "replica-b: ",
        "OK: together the replicas stayed within the one limit",
    ],
}

# Examples that need a Redis server: the test starts one of its own and passes its REDIS_URL.
NEEDS_REDIS = {"redis_shared_limit.py"}

# Examples that need packages which install only on some Pythons (httpx2: 3.11 and later).
NEEDS_PACKAGES = {"sdk_client.py": ("httpx2", "openai", "anthropic")}


def test_every_example_is_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str, request: pytest.FixtureRequest) -> None:
    for package in NEEDS_PACKAGES.get(name, ()):
        pytest.importorskip(package)
    env = dict(os.environ)
    if name in NEEDS_REDIS:
        # tests/conftest.py: skips without redis-server, fails with
        # HTTPX_RESILIENCE_REQUIRE_REDIS=1 (as in CI), so the example never takes its own
        # "no Redis here" exit in a run that counts.
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=EXAMPLES.parent,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    for line in EXPECTED[name]:
        assert line in result.stdout, result.stdout


def test_redis_example_without_redis_says_so(tmp_path: Path) -> None:
    """Without a server at REDIS_URL, the Redis example explains what it needs and exits 0."""
    pytest.importorskip("redis.asyncio", reason="the redis extra is not installed")
    from .integration.redis_backend._server import free_port

    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "redis_shared_limit.py")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "needs a Redis server" in result.stdout, result.stdout
