"""Configuration that used to be accepted and then failed on the first request (issue 11):
each is a ConfigError when loaded, every problem at once, naming file, profile and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from httpx_resilience import ConfigError, Registry

NO_ENV: dict[str, str] = {}


def problems_of(mapping: Any, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Registry.from_mapping(mapping, environ=NO_ENV if environ is None else environ)
    return info.value.problems


def profile(**options: Any) -> dict[str, Any]:
    return {"profiles": {"p": options}}


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (
            {"rate_limit": {"rate": 1, "backend": {"url": "localhost:6379"}}},
            "profiles.p.rate_limit.backend.url: expected a redis://, rediss:// or unix:// URL, "
            "got 'localhost:6379'",
        ),
        (
            {"rate_limit": {"rate": 1, "backend": {"url": "redis://h:port/0"}}},
            "profiles.p.rate_limit.backend.url: expected a redis://, rediss:// or unix:// URL, "
            "got 'redis://h:port/0'",
        ),
        (
            {"fallback": {"alternate": {"base_url": "ftp://mirror.example/"}}},
            "profiles.p.fallback.alternate.base_url: expected an http:// or https:// URL with a "
            "host, got 'ftp://mirror.example/'",
        ),
        (
            {"circuit_breaker": {"window": "count", "window_size": 10**20}},
            "profiles.p.circuit_breaker.window_size: expected an integer between 1 and 1000000, "
            "got 100000000000000000000",
        ),
        (
            {"circuit_breaker": {"slow_call_duration": 1.0, "slow_call_ratio": 0}},
            "profiles.p.circuit_breaker.slow_call_ratio: expected a number > 0 and <= 1, got 0",
        ),
        (
            {"retry": {"respect_retry_after": "false"}},
            "profiles.p.retry.respect_retry_after: expected true or false, got 'false'",
        ),
        (
            {"retry": {"budget": {"ttl": 1e-320}}},
            "profiles.p.retry.budget.ttl: expected at least 1e-280 "
            "(clock readings are divided by it), got 1e-320",
        ),
        (
            {"retry": {"budget": {"ttl": 1e308}}},
            "profiles.p.retry.budget.ttl: expected small enough that min_per_second * ttl is "
            "finite, got min_per_second=10.0, ttl=1e+308",
        ),
        (
            {"rate_limit": {"rate": 1e-320}},
            "profiles.p.rate_limit.rate: expected at least 1e-300 (1 / rate must be finite), "
            "got 1e-320",
        ),
    ],
)
def test_values_that_would_fail_when_built_are_refused_when_loaded(
    options: dict[str, Any], problem: str
) -> None:
    assert problems_of(profile(**options)) == [problem]


def test_a_malformed_redis_url_is_refused_without_showing_its_password() -> None:
    options = {"rate": 1, "backend": {"url": "redis://app:s3cret@cache:port/0"}}
    [problem] = problems_of(profile(rate_limit=options))
    assert "s3cret" not in problem
    assert problem.endswith("got 'redis://app:***@cache:port/0'")


def test_an_alternate_through_its_own_profile_is_refused() -> None:
    alternate = {"base_url": "https://mirror.example", "profile": "p"}
    assert problems_of(profile(fallback={"alternate": alternate})) == [
        "profiles.p.fallback.alternate.profile: leads back to 'p' (p -> p)"
    ]


def test_two_profiles_whose_alternates_run_through_each_other_are_refused() -> None:
    def through(name: str) -> dict[str, Any]:
        return {"fallback": {"alternate": {"base_url": "https://m.example", "profile": name}}}

    assert problems_of({"profiles": {"a": through("b"), "b": through("a")}}) == [
        "profiles.a.fallback.alternate.profile: leads back to 'a' (a -> b -> a)",
        "profiles.b.fallback.alternate.profile: leads back to 'b' (b -> a -> b)",
    ]


def test_an_alternate_chain_without_a_cycle_is_accepted() -> None:
    registry = Registry.from_mapping(
        {
            "profiles": {
                "a": {"fallback": {"alternate": {"base_url": "https://m.example", "profile": "b"}}},
                "b": {"total_timeout": 1.0},
            }
        },
        environ=NO_ENV,
    )
    assert registry.get("a") is not registry.get("b")


@pytest.mark.parametrize(
    ("mapping", "problem"),
    [
        (None, "expected a table of profiles and routes, got None"),
        (["profiles"], "expected a table of profiles and routes, got ['profiles']"),
        ({"profiles": {5: {}}}, "profiles.5: a profile name must be a non-empty string"),
        ({"profiles": {"": {}}}, "profiles.'': a profile name must be a non-empty string"),
        (
            {"profiles": {"p": {"retry": {7: 1}}}},
            "profiles.p.retry.7: unknown key (keys are strings, got 7)",
        ),
        ({5: {}}, "5: unknown key (keys are strings, got 5)"),
    ],
)
def test_mappings_of_the_wrong_shape_are_config_errors(mapping: Any, problem: str) -> None:
    assert problems_of(mapping) == [problem]


def test_a_broken_extends_does_not_hide_the_profiles_other_problems() -> None:
    mapping = profile(
        extends="nope",
        retry={"max_attempts": -1},
        bulkhead={"max_queue": 5},  # max_concurrent may come from the base: not "required"
    )
    assert problems_of(mapping) == [
        "profiles.p.extends: no profile named 'nope'",
        "profiles.p.retry.max_attempts: expected an integer >= 1, got -1",
    ]


def test_a_cyclic_extends_does_not_hide_the_profiles_other_problems() -> None:
    mapping = {"profiles": {"a": {"extends": "b", "total_timeout": -1}, "b": {"extends": "a"}}}
    problems = problems_of(mapping)
    assert "profiles.a.total_timeout: expected a finite number > 0, got -1" in problems
    assert any("cycle" in problem for problem in problems)


# -- the environment ------------------------------------------------------------------------


def test_true_from_the_environment_keeps_the_files_table() -> None:
    mapping = profile(retry={"max_attempts": 7, "base_delay": 0.5})
    registry = Registry.from_mapping(mapping, environ={"HTTPX_RESILIENCE__P__RETRY": "true"})
    retry = registry.profile("p").retry  # type: ignore[union-attr]
    assert retry is not None
    assert (retry.max_attempts, retry.base_delay) == (7, 0.5)


def test_true_in_a_file_keeps_the_table_of_the_profile_it_extends() -> None:
    mapping = {
        "profiles": {
            "base": {"retry": {"max_attempts": 7}},
            "child": {"extends": "base", "retry": True},
        }
    }
    registry = Registry.from_mapping(mapping, environ=NO_ENV)
    retry = registry.profile("child").retry  # type: ignore[union-attr]
    assert retry is not None
    assert retry.max_attempts == 7


def test_true_on_a_policy_nobody_configured_turns_it_on_with_its_defaults() -> None:
    registry = Registry.from_mapping(profile(), environ={"HTTPX_RESILIENCE__P__RETRY": "true"})
    retry = registry.profile("p").retry  # type: ignore[union-attr]
    assert retry is not None
    assert retry.max_attempts == 3


def test_profiles_sharing_one_environment_name_are_refused() -> None:
    assert problems_of({"profiles": {"my-prof": {}, "my_prof": {}}}) == [
        "profiles.my-prof and profiles.my_prof: both are HTTPX_RESILIENCE__MY_PROF__... in the "
        "environment; rename one"
    ]


def test_the_built_in_default_profile_can_be_overridden_from_the_environment() -> None:
    registry = Registry.from_mapping(
        profile(), environ={"HTTPX_RESILIENCE__DEFAULT__RETRY__MAX_ATTEMPTS": "5"}
    )
    default = registry.profile("default")
    assert default is not None
    assert default.retry is not None
    assert default.retry.max_attempts == 5
    assert default.total_timeout == 30.0  # the rest is the built-in default's


def test_the_built_in_default_overridden_from_the_environment_is_still_validated() -> None:
    environ = {"HTTPX_RESILIENCE__DEFAULT__TOTAL_TIMEOUT": "5"}
    assert problems_of(profile(), environ) == [
        "profiles.default.attempt_timeout: expected at most total_timeout (5.0), got 10.0"
    ]


@pytest.mark.parametrize("text", ["²", "\u0663", "1_0", "\uff11"])  # ², ٣, fullwidth 1
def test_environment_numbers_are_ascii_digits_only(text: str) -> None:
    environ = {"HTTPX_RESILIENCE__P__RETRY__MAX_ATTEMPTS": text}
    assert problems_of(profile(retry={}), environ) == [
        f"profiles.p.retry.max_attempts: expected an integer >= 1, got {text!r}"
    ]


@pytest.mark.parametrize(("text", "value"), [("4", 4), (" 12 ", 12), ("2.5", 2.5)])
def test_environment_numbers_in_ascii_digits_are_read(text: str, value: float) -> None:
    environ = {"HTTPX_RESILIENCE__P__TOTAL_TIMEOUT": text}
    registry = Registry.from_mapping(profile(), environ=environ)
    assert registry.profile("p").total_timeout == value  # type: ignore[union-attr]


def test_every_problem_of_a_file_is_reported_at_once_with_the_file_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        "[profiles.a]\n"
        'extends = "missing"\n'
        "circuit_breaker = { slow_call_duration = 1.0, slow_call_ratio = 0 }\n"
        "[profiles.b]\n"
        'rate_limit = { rate = 1, backend = { url = "redis//cache" } }\n'
        'fallback = { alternate = { base_url = "https://m.example", profile = "b" } }\n'
    )
    with pytest.raises(ConfigError) as info:
        Registry.from_toml(path, environ={"HTTPX_RESILIENCE__B__RETRY__MAX_ATTEMPTS": "²"})
    assert info.value.problems == [
        f"{path}: profiles.a.extends: no profile named 'missing'",
        f"{path}: profiles.a.circuit_breaker.slow_call_ratio: expected a number > 0 and <= 1, "
        "got 0",
        f"{path}: profiles.b.rate_limit.backend.url: expected a redis://, rediss:// or unix:// "
        "URL, got 'redis//cache'",
        f"{path}: profiles.b.retry.max_attempts: expected an integer >= 1, got '²'",
        f"{path}: profiles.b.fallback.alternate.profile: leads back to 'b' (b -> b)",
    ]
