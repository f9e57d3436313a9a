"""The benchmark scripts must keep running: a quick pass of each (figures are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Benchmarks in subprocesses, some with upstream processes of their own: run alone (see
# "serial" in noxfile.py).
pytestmark = pytest.mark.serial

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def _run(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``benchmarks/script`` with ``args``; it must exit 0 (its stderr shows if not)."""
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_the_overhead_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "overhead.json"
    result = _run("overhead.py", "--quick", "--json", str(out), timeout=120)
    assert "ours: full stack" in result.stdout
    figures = json.loads(out.read_text())
    assert figures


def test_the_redis_limiter_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    import pytest

    from .integration.redis_backend._server import redis_server_executable

    pytest.importorskip("redis", reason="the redis extra is not installed")
    redis_server_executable()  # skips (or, in CI, fails) without redis-server, like the Redis tests
    out = tmp_path / "redis_limiter.json"
    result = _run("redis_limiter.py", "--quick", "--json", str(out), timeout=120)
    assert "Redis acquisition / bare PING round trip" in result.stdout
    figures = json.loads(out.read_text())
    assert {row["case"] for row in figures["cases"]} >= {
        "redis PING",
        "RateLimiter + RedisBackend",
        "RateLimiter (in memory)",
    }


def test_the_partition_memory_benchmark_runs() -> None:
    result = _run(
        "partitions_memory.py",
        "--seconds",
        "2",
        "--rate",
        "200",
        "--max-partitions",
        "100",
        timeout=120,
    )
    assert "partitions at most 100" in result.stdout


def test_the_breaker_defaults_benchmark_runs() -> None:
    result = _run("breaker_defaults.py", "--quick", timeout=120)
    assert "standard: 0.3 / 100, break 0.5 s" in result.stdout


def test_the_adaptive_limit_candidates_benchmark_runs() -> None:
    result = _run("adaptive_limit.py", "--duration", "2", timeout=300)
    assert "| vegas | 3x |" in result.stdout


def test_the_overload_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "overload.json"
    result = _run(
        "overload.py",
        "--quick",
        "--loads",
        "3",
        "--change-seconds",
        "1",
        "--json",
        str(out),
        timeout=180,
    )
    assert "offered 3x capacity" in result.stdout
    assert "capacity halves" in result.stdout
    figures = json.loads(out.read_text())
    clients = set(figures["loads"]["3.0"])
    assert {"httpx.AsyncClient", "ResilientClient()"} <= clients
    # The tenacity stack needs the benchmark peers (nox -s bench installs them), else it says so.
    assert (
        "by hand (tenacity)" in clients
        or "by hand (tenacity) skipped: it needs aiobreaker and aiolimiter" in result.stdout
    )
    assert set(figures["halving"]) == clients
    for row in figures["loads"]["3.0"].values():
        # The upstream process counted the requests: the client got some through.
        assert row["upstream_per_call"] > 0


def test_the_many_callers_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "many.json"
    result = _run("many_callers.py", "--quick", "--json", str(out), timeout=180)
    assert "50 closed-loop callers x 2 GETs" in result.stdout
    figures = json.loads(out.read_text())
    assert set(figures) == {"httpx.AsyncClient", "ResilientClient()"}
    # A fast upstream, callers who wait: plain httpx answers every call.
    assert figures["httpx.AsyncClient"]["answered"] == 100
    for row in figures.values():
        assert row["answered"] + row["failed"] == 100
        assert row["upstream_requests"] >= row["answered"]
