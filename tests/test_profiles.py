from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from httpx_resilience import (
    BrokenCircuitError,
    CircuitBreaker,
    CircuitState,
    ConfigError,
    Pipeline,
    Profile,
    RateLimiter,
    Registry,
    ResilienceTransport,
    ResilientClient,
    RetryBudget,
    by_origin,
)
from httpx_resilience.profiles import (
    BudgetOptions,
    BulkheadOptions,
    CircuitBreakerOptions,
    FallbackOptions,
    RetryOptions,
    settings,
)

EXAMPLE = Path(__file__).parent.parent / "examples" / "profiles.toml"
NO_ENV: dict[str, str] = {}


def load(mapping: dict[str, Any], environ: dict[str, str] | None = None) -> Registry:
    return Registry.from_mapping(mapping, environ=NO_ENV if environ is None else environ)


def problems_of(mapping: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(mapping, environ)
    return info.value.problems


# -- Profile in code ------------------------------------------------------------------------


def test_an_empty_profile_has_no_policies_and_the_standard_one_matches_the_pipeline() -> None:
    assert Pipeline.builder().build().policies == Profile().build().policies
    standard = Profile.standard().build().describe()
    assert standard == Pipeline.standard().describe()


def test_a_profile_in_code_is_validated_with_every_problem_named() -> None:
    with pytest.raises(ConfigError) as info:
        RetryOptions(max_attempts=0, base_delay=-1)
    assert info.value.problems == [
        "RetryOptions.max_attempts: expected an integer >= 1, got 0",
        "RetryOptions.base_delay: expected a finite number >= 0, got -1",
    ]
    with pytest.raises(ConfigError, match=r"Profile.retry: expected RetryOptions or None"):
        Profile(retry={"max_attempts": 3})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"Profile\.attempt_timeout: expected at most"):
        Profile(total_timeout=1.0, attempt_timeout=2.0)
    with pytest.raises(ConfigError, match="sampling_duration: expected at least twice"):
        Profile(attempt_timeout=10.0, circuit_breaker=CircuitBreakerOptions(sampling_duration=15))
    with pytest.raises(ConfigError, match="FallbackOptions: expected a cache, an alternate"):
        FallbackOptions()
    with pytest.raises(ConfigError, match="slow_call_ratio: needs slow_call_duration"):
        CircuitBreakerOptions(slow_call_ratio=0.5)


def test_profiles_and_builder_code_make_the_same_pipeline() -> None:
    profile = Profile(
        total_timeout=20.0,
        attempt_timeout=4.0,
        retry=RetryOptions(max_attempts=4, budget=BudgetOptions(ratio=0.1)),
        circuit_breaker=CircuitBreakerOptions(failure_ratio=0.5, minimum_throughput=20),
        bulkhead=BulkheadOptions(max_concurrent=8, max_queue=16),
    )
    by_code = (
        Pipeline.builder()
        .timeout(20.0)
        .retry(max_attempts=4, budget=RetryBudget(ratio=0.1))
        .circuit_breaker(failure_ratio=0.5, minimum_throughput=20, key=by_origin)
        .bulkhead(max_concurrent=8, max_queue=16)
        .timeout(4.0)
        .build()
    )
    assert profile.build().describe() == by_code.describe()
    registry = load({"profiles": {"p": {
        "total_timeout": 20.0, "attempt_timeout": 4.0,
        "retry": {"max_attempts": 4, "budget": {"ratio": 0.1}},
        "circuit_breaker": {"failure_ratio": 0.5, "minimum_throughput": 20},
        "bulkhead": {"max_concurrent": 8, "max_queue": 16},
    }}})  # fmt: skip
    assert registry.profile("p") == profile
    assert registry.get("p").describe() == by_code.describe()


# -- loading: inheritance -------------------------------------------------------------------


def test_the_example_file_loads_with_inheritance_applied() -> None:
    registry = Registry.from_toml(EXAMPLE, environ=NO_ENV)
    assert registry.names == ("default", "payments", "search", "internal")
    payments = registry.profile("payments")
    assert payments is not None
    assert (payments.total_timeout, payments.attempt_timeout) == (15.0, 5.0)
    assert payments.retry == RetryOptions(max_attempts=3, base_delay=0.2, max_delay=10.0)
    assert payments.bulkhead == BulkheadOptions(max_concurrent=20, max_queue=50)
    assert payments.rate_limit is not None
    assert payments.rate_limit.burst == 100
    search = registry.profile("search")
    assert search is not None
    assert search.retry is not None
    # A nested table overrides only the keys it names.
    assert (search.retry.max_attempts, search.retry.max_delay) == (2, 10.0)
    assert search.retry.budget == BudgetOptions(ratio=0.2)
    internal = registry.profile("internal")
    assert internal is not None
    assert internal.circuit_breaker is None  # false turns it off in the child
    assert internal.retry is not None
    assert registry.routes == (
        ("api.payments.example", "payments"),
        ("*.internal.example", "internal"),
        ("https://search.example/v2/", "search"),
    )


def test_extends_chains_and_a_table_can_turn_a_policy_back_on() -> None:
    registry = load({"profiles": {
        "base": {"total_timeout": 10.0, "retry": {"max_attempts": 5}},
        "middle": {"extends": "base", "retry": False},
        "leaf": {"extends": "middle", "retry": {"max_delay": 1.0}},
    }})  # fmt: skip
    middle, leaf = registry.profile("middle"), registry.profile("leaf")
    assert middle is not None
    assert middle.retry is None
    assert middle.total_timeout == 10.0
    assert leaf is not None
    assert leaf.retry == RetryOptions(max_delay=1.0)


def test_extending_an_undefined_default_extends_the_standard_profile() -> None:
    registry = load({"profiles": {"api": {"extends": "default", "attempt_timeout": 2.0}}})
    api = registry.profile("api")
    assert api is not None
    assert api.total_timeout == 30.0
    assert api.attempt_timeout == 2.0
    assert api.circuit_breaker == Profile.standard().circuit_breaker
    assert api.circuit_breaker == CircuitBreakerOptions(
        failure_ratio=0.3, break_duration=0.5, max_wait=1.0
    )
    assert registry.profile("default") == Profile.standard()


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        (
            {"profiles": {"a": {"extends": "b"}, "b": {"extends": "a"}}},
            ["profiles.a.extends: cycle a -> b -> a", "profiles.b.extends: cycle b -> a -> b"],
        ),
        (
            {"profiles": {"a": {"extends": "a"}}},
            ["profiles.a.extends: cycle a -> a"],
        ),
        (
            {"profiles": {"payments": {"extends": "defualt"}, "default": {}}},
            ["profiles.payments.extends: no profile named 'defualt'; did you mean 'default'?"],
        ),
        (
            {"profiles": {"a": {"extends": 3}}},
            ["profiles.a.extends: expected a profile name, got 3"],
        ),
    ],
)
def test_bad_inheritance(mapping: dict[str, Any], expected: list[str]) -> None:
    assert problems_of(mapping) == expected


# -- loading: validation ----------------------------------------------------------------------


def test_every_problem_is_reported_with_its_key_path() -> None:
    problems = problems_of({
        "profiles": {
            "payments": {
                "total_timeout": 5.0,
                "attempt_timeout": 10.0,
                "retry": {"max_attempts": -2, "max_atempts": 3, "budget": {"ratio": 1.5}},
                "circuit_breaker": {"failure_ratio": 0, "window": "sliding"},
                "bulkhead": {"max_queue": 5},
                "rate_limit": {"rate": "fast", "burst": 0.5, "partition": "tenant"},
                "hedging": {"max_hedged_attempts": 11},
                "fallback": "cache",
                "timeout": 3,
            }
        },
        "route": {},
    })  # fmt: skip
    assert problems == [
        "route: unknown key; did you mean 'routes'?",
        "profiles.payments.retry.max_attempts: expected an integer >= 1, got -2",
        "profiles.payments.retry.max_atempts: unknown key; did you mean 'max_attempts'?",
        "profiles.payments.retry.budget.ratio: expected a number between 0 and 1, got 1.5",
        "profiles.payments.circuit_breaker.failure_ratio: expected a number > 0 and <= 1, got 0",
        "profiles.payments.circuit_breaker.window: expected one of 'time', 'count', got 'sliding'",
        "profiles.payments.bulkhead.max_concurrent: required",
        "profiles.payments.rate_limit.rate: expected a finite number > 0, got 'fast'",
        "profiles.payments.rate_limit.burst: expected a finite number >= 1, got 0.5",
        "profiles.payments.rate_limit.partition: expected one of 'none', 'origin', got 'tenant'",
        "profiles.payments.hedging.max_hedged_attempts: expected an integer between 1 and 10, "
        "got 11",
        "profiles.payments.fallback: expected a table (or false to turn it off), got 'cache'",
        "profiles.payments.timeout: unknown key; did you mean 'total_timeout'?",
        "profiles.payments.attempt_timeout: expected at most total_timeout (5.0), got 10.0",
    ]


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (
            {"total_timeout": True},
            "profiles.p.total_timeout: expected a finite number > 0, got True",
        ),
        ({"total_timeout": float("inf")}, "profiles.p.total_timeout: expected a finite number > 0"),
        (
            {"retry_non_idempotent": "yes"},
            "profiles.p.retry_non_idempotent: expected true or false",
        ),
        (
            {"retry": {"respect_retry_after": 1}},
            "profiles.p.retry.respect_retry_after: expected true",
        ),
        (
            {"attempt_timeout": 10.0, "circuit_breaker": {"sampling_duration": 15.0}},
            "profiles.p.circuit_breaker.sampling_duration: expected at least twice "
            "attempt_timeout (20.0), got 15.0",
        ),
        (
            {"circuit_breaker": {"window": "count", "window_size": 10}},
            "profiles.p.circuit_breaker.minimum_throughput: expected at most window_size (10), "
            "got 100",
        ),
        (
            {"circuit_breaker": {"break_duration": 5.0, "break_duration_max": 1.0}},
            "profiles.p.circuit_breaker.break_duration_max: expected a number >= break_duration",
        ),
        ({"fallback": {}}, "profiles.p.fallback: expected a cache, an alternate or both"),
        (
            {"fallback": {"alternate": {"profile": "p"}}},
            "profiles.p.fallback.alternate.base_url: required",
        ),
        (
            {"fallback": {"alternate": {"base_url": "http://m.example", "profile": "nope"}}},
            "profiles.p.fallback.alternate.profile: no profile named 'nope'",
        ),
        (
            {"rate_limit": {"rate": 1, "backend": {"failure_mode": "maybe"}}},
            "profiles.p.rate_limit.backend.url: required",
        ),
    ],
)
def test_validation_error_paths(profile: dict[str, Any], expected: str) -> None:
    problems = problems_of({"profiles": {"p": profile}})
    assert any(p.startswith(expected) for p in problems), problems


def test_routes_must_name_profiles() -> None:
    assert problems_of({"profiles": {"a": {}}, "routes": {"x.example": "b", "y.example": 3}}) == [
        "routes.'x.example': no profile named 'b'",
        "routes.'y.example': expected a profile name, got 3",
    ]
    assert load({"routes": {"x.example": "default"}}).routes == (("x.example", "default"),)


def test_a_file_is_named_in_every_message(tmp_path: Path) -> None:
    path = tmp_path / "resilience.toml"
    path.write_text("[profiles.a]\nretry = { max_attempts = 0 }\n[routes]\n'h' = 'zz'\n")
    with pytest.raises(ConfigError) as info:
        Registry.from_toml(path, environ=NO_ENV)
    assert info.value.problems == [
        f"{path}: profiles.a.retry.max_attempts: expected an integer >= 1, got 0",
        f"{path}: routes.'h': no profile named 'zz'",
    ]


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=f"^{missing}: cannot be read"):
        Registry.from_toml(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("[profiles.a\n")
    with pytest.raises(ConfigError, match=f"^{broken}: not valid TOML"):
        Registry.from_toml(broken)


# -- the environment --------------------------------------------------------------------------


def test_environment_variables_override_single_fields_typed_by_the_schema() -> None:
    registry = load(
        {"profiles": {"payments": {"retry": {"max_attempts": 3}, "bulkhead": {"max_concurrent": 5}},
                      "search-v2": {"total_timeout": 1.0}}},
        {
            "HTTPX_RESILIENCE__PAYMENTS__RETRY__MAX_ATTEMPTS": "5",
            "HTTPX_RESILIENCE__PAYMENTS__RETRY__BASE_DELAY": "0.05",
            "HTTPX_RESILIENCE__PAYMENTS__RETRY__RESPECT_RETRY_AFTER": "False",
            "HTTPX_RESILIENCE__PAYMENTS__BULKHEAD": "false",
            "HTTPX_RESILIENCE__PAYMENTS__CIRCUIT_BREAKER__WINDOW": "count",
            "HTTPX_RESILIENCE__PAYMENTS__CIRCUIT_BREAKER__MINIMUM_THROUGHPUT": "20",
            "HTTPX_RESILIENCE__SEARCH_V2__TOTAL_TIMEOUT": "2.5",
            "UNRELATED": "x",
        },
    )  # fmt: skip
    payments = registry.profile("payments")
    assert payments is not None
    assert payments.retry is not None
    assert (payments.retry.max_attempts, payments.retry.base_delay) == (5, 0.05)
    assert payments.retry.respect_retry_after is False
    assert payments.bulkhead is None
    assert payments.circuit_breaker == CircuitBreakerOptions(window="count", minimum_throughput=20)
    search = registry.profile("search-v2")
    assert search is not None
    assert search.total_timeout == 2.5


def test_environment_overrides_reach_children_through_extends() -> None:
    registry = load(
        {"profiles": {"default": {"total_timeout": 10.0}, "api": {"extends": "default"}}},
        {"HTTPX_RESILIENCE__DEFAULT__TOTAL_TIMEOUT": "4"},
    )
    api = registry.profile("api")
    assert api is not None
    assert api.total_timeout == 4.0


def test_bad_environment_variables_are_errors() -> None:
    problems = problems_of(
        {"profiles": {"payments": {}}},
        {
            "HTTPX_RESILIENCE__PAYMNETS__TOTAL_TIMEOUT": "3",
            "HTTPX_RESILIENCE__PAYMENTS__TOTAL_TIMOUT": "3",
            "HTTPX_RESILIENCE__PAYMENTS__RETRY__MAX_ATTEMPTS": "many",
            "HTTPX_RESILIENCE__PAYMENTS": "x",
            "HTTPX_RESILIENCE__PAYMENTS__TOTAL_TIMEOUT__X": "1",
        },
    )
    assert problems == [
        "HTTPX_RESILIENCE__PAYMENTS: expected HTTPX_RESILIENCE__<PROFILE>__<FIELD>[__<KEY>]",
        "HTTPX_RESILIENCE__PAYMENTS__TOTAL_TIMEOUT__X (profiles.payments.total_timeout): "
        "'total_timeout' has no keys of its own",
        "HTTPX_RESILIENCE__PAYMENTS__TOTAL_TIMOUT (profiles.payments.total_timout): unknown key; "
        "did you mean 'total_timeout'?",
        "HTTPX_RESILIENCE__PAYMNETS__TOTAL_TIMEOUT: no profile named 'paymnets'",
        "profiles.payments.retry.max_attempts: expected an integer >= 1, got 'many'",
    ]


# -- the registry -----------------------------------------------------------------------------


def test_each_profile_is_built_once_and_shared() -> None:
    registry = Registry.from_toml(EXAMPLE, environ=NO_ENV)
    assert registry.get("payments") is registry.get("payments")
    assert registry.get("payments") is not registry.get("search")
    policies = [type(p).__name__ for p in registry.get("payments").policies]
    assert policies == [
        "Fallback", "Timeout", "Retry", "CircuitBreaker", "Bulkhead", "RateLimiter", "Timeout",
    ]  # fmt: skip
    assert [type(p).__name__ for p in registry.get("search").policies] == [
        "Timeout", "Retry", "Hedging", "CircuitBreaker", "Timeout",
    ]  # fmt: skip


def test_unknown_names_are_errors_with_a_suggestion() -> None:
    registry = Registry({"payments": Profile()})
    with pytest.raises(ConfigError, match=r"unknown profile 'paymnts' .*did you mean 'payments'"):
        registry.get("paymnts")
    with pytest.raises(ConfigError, match=r"profiles\.x: expected a Profile or a Pipeline"):
        registry.register("x", {"total_timeout": 1})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="profile names must be non-empty strings"):
        registry.register("", Profile())


def test_ready_pipelines_can_be_registered_but_not_replaced_once_used() -> None:
    pipeline = Pipeline.builder().timeout(1.0).build()
    registry = Registry({"custom": pipeline})
    assert registry.get("custom") is pipeline
    assert registry.profile("custom") is None
    with pytest.raises(ConfigError, match="already in use"):
        registry.register("custom", Profile())
    registry.register("later", Profile(total_timeout=2.0))
    assert registry.names == ("custom", "later")


def test_describe_lists_every_profile_and_the_routes() -> None:
    registry = Registry.from_toml(EXAMPLE, environ=NO_ENV)
    described = registry.describe()
    assert list(described["profiles"]) == ["default", "payments", "search", "internal"]
    assert described["routes"][0] == ["api.payments.example", "payments"]
    payments = described["profiles"]["payments"]["policies"]
    assert payments[4]["options"]["max_concurrent"] == 20


def test_settings_flatten_a_profile_in_schema_order() -> None:
    flat = settings(Profile(total_timeout=3.0, retry=RetryOptions(budget=None)))
    assert flat["total_timeout"] == 3.0
    assert flat["attempt_timeout"] is None
    assert flat["retry"] == "on"
    assert flat["retry.budget"] == "off"
    assert flat["bulkhead"] == "off"


# -- routing through the client -------------------------------------------------------------


class Hosts:
    """A MockTransport handler: each host answers with its own status; records requests."""

    def __init__(self, statuses: dict[str, int]) -> None:
        self.statuses = statuses
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.statuses.get(request.url.host, 200))


def routing_registry() -> Registry:
    fast = {"retry": {"max_attempts": 1}}
    return load({
        "profiles": {"default": fast, "payments": fast, "internal": fast, "search": fast},
        "routes": {
            "api.payments.example": "payments",
            "*.internal.example": "internal",
            "https://search.example/v2/": "search",
        },
    })  # fmt: skip


@pytest.mark.parametrize(
    ("url", "extensions", "expected"),
    [
        ("https://api.payments.example/charges", {}, "payments"),
        ("https://API.Payments.Example/charges", {}, "payments"),
        ("https://users.internal.example/u/1", {}, "internal"),
        ("https://a.b.internal.example/", {}, "internal"),
        ("https://internal.example/", {}, "default"),
        ("https://search.example/v2/q", {}, "search"),
        ("https://search.example/v1/q", {}, "default"),
        ("https://elsewhere.example/", {}, "default"),
        ("https://api.payments.example/x", {"resilience.profile": "search"}, "search"),
    ],
)
@pytest.mark.anyio
async def test_routing_precedence(url: str, extensions: dict[str, str], expected: str) -> None:
    upstream = Hosts({})
    async with ResilientClient(
        profiles=routing_registry(), transport=httpx.MockTransport(upstream)
    ) as client:
        response = await client.get(url, extensions=extensions)
    assert response.extensions["resilience"].profile == expected


@pytest.mark.anyio
async def test_client_routes_come_before_the_registrys() -> None:
    upstream = Hosts({})
    async with ResilientClient(
        profiles=routing_registry(),
        routes={"api.payments.example": "internal"},
        transport=httpx.MockTransport(upstream),
    ) as client:
        response = await client.get("https://api.payments.example/")
    assert response.extensions["resilience"].profile == "internal"


@pytest.mark.anyio
async def test_an_unknown_profile_in_a_request_is_an_error_before_anything_is_sent() -> None:
    upstream = Hosts({})
    async with ResilientClient(
        profiles=routing_registry(), transport=httpx.MockTransport(upstream)
    ) as client:
        with pytest.raises(ConfigError, match=r"unknown profile 'serach'.*did you mean 'search'"):
            await client.get("https://x.example/", extensions={"resilience.profile": "serach"})
    assert upstream.requests == []


@pytest.mark.anyio
async def test_two_profiles_keep_separate_breakers_on_one_client() -> None:
    breaker = {"failure_ratio": 1.0, "minimum_throughput": 2, "partition": "none"}
    registry = load({
        "profiles": {
            "payments": {"circuit_breaker": breaker},
            "search": {"circuit_breaker": breaker},
        },
        "routes": {"pay.example": "payments", "search.example": "search"},
    })  # fmt: skip
    upstream = Hosts({"pay.example": 503})
    async with ResilientClient(profiles=registry, transport=httpx.MockTransport(upstream)) as c:
        for _ in range(2):
            assert (await c.get("https://pay.example/")).status_code == 503
        with pytest.raises(BrokenCircuitError):
            await c.get("https://pay.example/")
        for _ in range(5):
            assert (await c.get("https://search.example/")).status_code == 200
    payments_breaker = registry.get("payments").policies[0]
    search_breaker = registry.get("search").policies[0]
    assert isinstance(payments_breaker, CircuitBreaker)
    assert isinstance(search_breaker, CircuitBreaker)
    assert payments_breaker.state is CircuitState.OPEN
    assert search_breaker.state is CircuitState.CLOSED


@pytest.mark.anyio
async def test_retry_non_idempotent_per_profile() -> None:
    registry = load({
        "profiles": {
            "safe": {"retry": {"max_attempts": 2, "base_delay": 0}, "retry_non_idempotent": True},
            "default": {"retry": {"max_attempts": 2, "base_delay": 0}},
        },
        "routes": {"safe.example": "safe"},
    })  # fmt: skip
    upstream = Hosts({"safe.example": 503, "other.example": 503})
    async with ResilientClient(profiles=registry, transport=httpx.MockTransport(upstream)) as c:
        await c.post("https://safe.example/")
        await c.post("https://other.example/")
    hosts = [r.url.host for r in upstream.requests]
    assert hosts == ["safe.example", "safe.example", "other.example"]


@pytest.mark.anyio
async def test_the_transport_routes_by_profile_too(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[profiles.api]\ntotal_timeout = 1.0\n[routes]\n"api.example" = "api"\n')
    upstream = Hosts({})
    transport = ResilienceTransport(str(path), httpx.MockTransport(upstream))
    assert transport.profiles is not None
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("https://api.example/")
    assert response.extensions["resilience"].profile == "api"


def test_a_client_takes_a_pipeline_or_profiles_and_routes_need_profiles() -> None:
    with pytest.raises(TypeError, match="give a pipeline or profiles, not both"):
        ResilientClient(pipeline=Pipeline(), profiles=Registry())
    with pytest.raises(TypeError, match="routes need profiles"):
        ResilientClient(routes={"a.example": "a"})
    with pytest.raises(ConfigError, match="unknown profile 'b'"):
        ResilientClient(profiles=Registry({"a": Profile()}), routes={"a.example": "b"})
    client = ResilientClient(profiles=Registry({"a": Profile()}))
    assert client.profiles is not None
    assert client.pipeline is client.profiles.get("default")


def test_a_rate_limit_on_redis_is_built_from_its_url() -> None:
    pytest.importorskip("redis")
    registry = load({"profiles": {"shared": {"rate_limit": {
        "rate": 50.0, "burst": 10, "backend": {"url": "redis://127.0.0.1:1/0", "prefix": "app"},
    }}}})  # fmt: skip
    limiter = registry.get("shared").policies[0]
    assert isinstance(limiter, RateLimiter)
    assert "shared=True" in repr(limiter)  # its buckets are in Redis, not in memory


def test_a_profile_bounds_the_redis_connections_its_limit_uses() -> None:
    pytest.importorskip("redis")
    from httpx_resilience.backends.redis import RedisBackend
    from httpx_resilience.profiles import RedisOptions, _redis_backend

    backend = _redis_backend(RedisOptions(url="redis://127.0.0.1:1/0", max_connections=8))
    assert isinstance(backend, RedisBackend)
    # One bound for the client's pool and for the acquisitions in Redis at once, so that
    # acquisitions beyond it wait for a connection rather than fail.
    assert backend.max_connections == 8
    client: Any = backend._client
    assert client.connection_pool.max_connections == 8
    default = _redis_backend(RedisOptions(url="redis://127.0.0.1:1/0"))
    default_client: Any = default._client
    assert default.max_connections == default_client.connection_pool.max_connections


def test_a_profile_refuses_a_redis_connection_bound_below_one() -> None:
    with pytest.raises(ConfigError, match=r"rate_limit\.backend\.max_connections.*got 0"):
        load({"profiles": {"p": {"rate_limit": {
            "rate": 1, "backend": {"url": "redis://127.0.0.1:1/0", "max_connections": 0},
        }}}})  # fmt: skip


def test_a_profile_sets_the_cache_and_alternate_identity_options() -> None:
    from httpx_resilience import Alternate, Fallback, ResponseCache

    registry = load({"profiles": {"p": {"fallback": {
        "cache": {"identity_headers": ["X-Tenant"], "max_bytes": 4096},
        "alternate": {"base_url": "https://backup.example", "forward_credentials": True},
    }}}})  # fmt: skip
    fallback = registry.get("p").policies[0]
    assert isinstance(fallback, Fallback)
    cache, alternate = fallback.sources
    assert isinstance(cache, ResponseCache)
    assert "x-tenant" in cache.identity_headers
    assert "max_bytes=4096" in repr(cache)
    assert isinstance(alternate, Alternate)
    assert alternate._forward_credentials is True


def test_a_profile_cannot_ask_to_store_private_responses() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"profiles": {"p": {"fallback": {"cache": {
            "store_private": True, "identity_headers": ["not a header"],
        }}}}})  # fmt: skip
    message = str(caught.value)
    assert "profiles.p.fallback.cache.store_private: expected false" in message
    assert "profiles.p.fallback.cache.identity_headers: expected a list of header names" in message
