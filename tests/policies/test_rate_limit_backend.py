"""RateLimiter(backend=...) without a server: key escaping, option checks, the in-memory path.

The behaviour against a real Redis is in tests/integration/redis_backend/.
"""

from __future__ import annotations

import importlib.abc
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from httpx_resilience import Context, RateLimiter
from httpx_resilience.backends import RateLimitBackend, StoreUnavailable, TokenStore
from httpx_resilience.telemetry import EVENT_NAMES

redis_asyncio = pytest.importorskip("redis.asyncio", reason="the redis extra is not installed")

from httpx_resilience.backends.redis import RedisBackend, bucket_key  # noqa: E402

parts = st.none() | st.text(max_size=12)


@given(a=st.tuples(parts, parts), b=st.tuples(parts, parts))
def test_distinct_profiles_and_partitions_never_share_a_key(
    a: tuple[str | None, str | None], b: tuple[str | None, str | None]
) -> None:
    if a != b:
        assert bucket_key("p", *a) != bucket_key("p", *b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("x", "a:b"), ("x", "a%3Ab")),  # a separator, and its escape spelled out by hand
        (("x:y", "z"), ("x", "y:z")),  # the separator moved between the parts
        (("x", "%all"), ("x", None)),  # a partition named like the "not partitioned" part
        (("%none", "y"), (None, "y")),  # a profile named like the "no profile" part
        (("x", ""), ("x", None)),
        (("x", "{tag}"), ("x", "%7Btag%7D")),
        (("x", "é"), ("x", "%C3%A9")),
    ],
)
def test_keys_that_differ_only_by_escaped_characters_differ(
    a: tuple[str | None, str | None], b: tuple[str | None, str | None]
) -> None:
    assert bucket_key("httpx-resilience", *a) != bucket_key("httpx-resilience", *b)


def test_a_key_is_prefix_profile_partition_with_each_part_escaped() -> None:
    assert bucket_key("rl", "payments", "tenant-7") == "rl:payments:tenant-7"
    assert bucket_key("rl", None, None) == "rl:%none:%all"
    assert bucket_key("rl", "a b", "https://h:443") == "rl:a%20b:https%3A%2F%2Fh%3A443"
    # Only letters, digits, "_.-~" and %XX: no ":" (separator) and no "{" (cluster hash tag).
    assert bucket_key("rl", "{x}:%", "\x00\n\ud800") == "rl:%7Bx%7D%3A%25:%00%0A%ED%A0%80"


def test_the_backend_names_the_keys_with_its_prefix() -> None:
    backend = RedisBackend(redis_asyncio.Redis(), prefix="app")
    assert backend.key("p", "k") == "app:p:k"
    store = backend.token_store(rate=10.0, burst=5.0)
    assert isinstance(store, TokenStore)
    assert store.bucket_name("p", None) == b"app:p:%all"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prefix": ""}, "prefix must be a non-empty string, got ''"),
        ({"prefix": 3}, "prefix must be a non-empty string, got 3"),
        ({"failure_mode": "half"}, "failure_mode must be 'open' or 'closed', got 'half'"),
        ({"timeout": 0}, "timeout must be a finite number > 0, got 0"),
        ({"timeout": float("inf")}, "timeout must be a finite number > 0, got inf"),
        ({"retry_interval": -1}, "retry_interval must be a finite number >= 0, got -1"),
        ({"max_connections": 0}, "max_connections must be an integer >= 1, got 0"),
        ({"max_connections": 2.5}, "max_connections must be an integer >= 1, got 2.5"),
        ({"max_connections": True}, "max_connections must be an integer >= 1, got True"),
        (
            {"max_connections": 101},
            r"max_connections must be at most the size of the client's connection pool "
            r"\(100\), got 101",
        ),
    ],
)
def test_bad_backend_options_are_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^RedisBackend: {message}"):
        RedisBackend(redis_asyncio.Redis(), **options)


def test_max_connections_defaults_to_the_clients_pool_and_may_be_less() -> None:
    assert RedisBackend(redis_asyncio.Redis()).max_connections == 100
    small = redis_asyncio.Redis(max_connections=8)
    assert RedisBackend(small).max_connections == 8
    assert RedisBackend(small, max_connections=3).max_connections == 3
    with pytest.raises(ValueError, match=r"pool \(8\), got 9$"):
        RedisBackend(small, max_connections=9)
    blocking = redis_asyncio.Redis.from_pool(redis_asyncio.BlockingConnectionPool())
    assert RedisBackend(blocking).max_connections == 50
    cluster = redis_asyncio.RedisCluster(host="127.0.0.1", port=1, max_connections=20)
    assert RedisBackend(cluster).max_connections == 20


def test_the_client_must_be_an_asyncio_redis_client() -> None:
    import redis

    with pytest.raises(ValueError, match=r"^RedisBackend: client must be a redis\.asyncio\.Redis"):
        RedisBackend(redis.Redis())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got 'redis://localhost'"):
        RedisBackend("redis://localhost")  # type: ignore[arg-type]


def test_the_backend_repr_never_shows_the_client() -> None:
    client = redis_asyncio.Redis.from_url("redis://user:secret@localhost:6379/0")
    backend = RedisBackend(client, failure_mode="closed")
    assert "secret" not in repr(backend)
    assert repr(backend) == (
        "RedisBackend(prefix='httpx-resilience', failure_mode='closed', timeout=0.1, "
        "retry_interval=1, max_connections=100)"
    )
    assert isinstance(backend, RateLimitBackend)


def test_a_limiter_with_a_backend_is_a_rate_limiter_drawing_from_the_store() -> None:
    backend = RedisBackend(redis_asyncio.Redis())
    limiter = RateLimiter(rate=5, burst=2, backend=backend)
    # One class: the token source (memory or the store) is chosen when it is built.
    assert type(limiter) is RateLimiter
    assert repr(limiter) == (
        "RateLimiter(rate=5, burst=2, max_wait=0, partitioned=False, shared=True)"
    )
    assert limiter.describe()["options"]["backend"] == "shared"
    assert type(RateLimiter(rate=5)) is RateLimiter
    assert RateLimiter(rate=5, backend=None).describe()["options"]["backend"] is None


def test_a_bad_backend_is_named() -> None:
    with pytest.raises(ValueError, match=r"^RateLimiter: backend must be None or a rate-limit"):
        RateLimiter(rate=1, backend="redis://localhost")  # type: ignore[arg-type]


def test_the_backend_failure_event_is_a_known_event() -> None:
    assert "rate_limit_backend_failed" in EVENT_NAMES
    failure = StoreUnavailable("ConnectionError", retry_after=1.0)
    assert (failure.error, failure.retry_after) == ("ConnectionError", 1.0)


def test_the_library_imports_without_redis() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"  # any import of redis now fails
        "import httpx_resilience, httpx_resilience.backends\n"
        "from httpx_resilience import RateLimiter\n"
        "RateLimiter(rate=1)\n"
        "try:\n"
        "    httpx_resilience.RedisBackend\n"
        "except ImportError:\n"
        "    print('lazy')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "lazy"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio_the_redis_backend_says_it_needs_asyncio() -> None:
    limiter = RateLimiter(rate=1, backend=RedisBackend(redis_asyncio.Redis(port=1)))

    async def noop() -> None:
        return None

    with pytest.raises(RuntimeError, match="RedisBackend runs on asyncio only"):
        await limiter.execute(lambda context: noop(), Context())


def test_the_backend_is_importable_from_the_package_and_shows_its_options() -> None:
    import httpx_resilience
    import httpx_resilience.backends

    assert httpx_resilience.RedisBackend is RedisBackend
    assert httpx_resilience.backends.RedisBackend is RedisBackend
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        httpx_resilience.backends.Nothing  # noqa: B018
    backend = RedisBackend(
        redis_asyncio.Redis(), prefix="a", failure_mode="closed", timeout=0.5, retry_interval=0
    )
    options = (backend.prefix, backend.failure_mode, backend.timeout, backend.retry_interval)
    assert options == ("a", "closed", 0.5, 0.0)


def test_the_redis_backend_needs_no_sniffio() -> None:
    # anyio no longer brings sniffio, and the package does not declare it: a fresh install of
    # the redis extra has none. The backend, a profile built on it, and its trio check must work.
    # (trio needs sniffio and brings it: it and anyio are imported before sniffio is taken away.)
    code = (
        "import sys, anyio, trio\n"
        "sys.modules['sniffio'] = None\n"  # any import of sniffio now fails
        "from httpx_resilience import Context\n"
        "from httpx_resilience.backends.redis import RedisBackend\n"
        "from httpx_resilience.profiles import Registry\n"
        "registry = Registry.from_mapping({'profiles': {'p': {'rate_limit': {\n"
        "    'rate': 1, 'backend': {'url': 'redis://127.0.0.1:1/0'}}}}}, environ={})\n"
        "[limiter] = registry.get('p').policies\n"
        "async def noop(context):\n"
        "    return None\n"
        "async def main():\n"
        "    try:\n"
        "        await limiter.execute(noop, Context())\n"
        "    except RuntimeError as exc:\n"
        "        print(exc)\n"
        "trio.run(main)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("RedisBackend runs on asyncio only"), result.stdout


class _Missing(importlib.abc.MetaPathFinder):
    """Makes importing ``target`` fail as if module ``missing`` (which it needs) were absent."""

    def __init__(self, target: str, missing: str) -> None:
        self.target = target
        self.missing = missing

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        # Asked first for every import; answers only for the target, by failing.
        if fullname == self.target:
            raise ModuleNotFoundError(f"No module named {self.missing!r}", name=self.missing)


def redis_profile() -> dict[str, Any]:
    return {"profiles": {"p": {"rate_limit": {"rate": 1, "backend": {"url": "redis://h/0"}}}}}


def test_a_profile_names_the_module_the_redis_backend_misses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from httpx_resilience.errors import ConfigError
    from httpx_resilience.profiles import Registry

    # The redis extra is there, but something the backend imports is not.
    monkeypatch.delitem(sys.modules, "httpx_resilience.backends.redis")
    finder = _Missing("httpx_resilience.backends.redis", "some_dependency")
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    with pytest.raises(ConfigError) as info:
        Registry.from_mapping(redis_profile(), environ={}).get("p")
    message = str(info.value)
    assert "rate_limit.backend" in message
    assert "'some_dependency'" in message
    assert "httpx-resilience[redis]" not in message  # installing the extra would not help


@pytest.mark.parametrize("module", ["redis", "redis.asyncio"])
def test_a_profile_says_to_install_the_extra_only_when_redis_is_missing(
    monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    from httpx_resilience.errors import ConfigError
    from httpx_resilience.profiles import Registry

    monkeypatch.setitem(sys.modules, module, None)  # any import of it now fails
    with pytest.raises(ConfigError, match=r"install 'httpx-resilience\[redis\]'"):
        Registry.from_mapping(redis_profile(), environ={}).get("p")
