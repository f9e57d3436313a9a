"""``profiles`` as a package (issue 12): every name stays importable where it was, and the
steps of ``Registry.from_mapping`` report every problem in the order the file gives them."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from httpx_resilience import ConfigError, Registry

# What users, the command line (check) and the HTTP layer import from httpx_resilience.profiles.
IMPORTED = [
    "AdaptiveThrottleOptions",  # issue 13
    "AdaptiveLimitOptions",  # issue 13
    "AlternateOptions",
    "BudgetOptions",
    "BulkheadOptions",
    "CacheOptions",
    "CircuitBreakerOptions",
    "FallbackOptions",
    "HedgingOptions",
    "PacingOptions",  # issue 13
    "Profile",
    "RateLimitOptions",
    "RedisOptions",
    "Registry",
    "RetryOptions",
    "DEFAULT_PROFILE",
    "PROFILE_EXTENSION",
    "masked_url",
    "settings",
    "_OFF",
    "_redis_backend",
]


@pytest.mark.parametrize("name", IMPORTED)
def test_names_are_importable_from_profiles(name: str) -> None:
    module = importlib.import_module("httpx_resilience.profiles")
    assert getattr(module, name) is not None


def test_public_names_of_profiles_are_unchanged() -> None:
    from httpx_resilience import profiles

    assert sorted(profiles.__all__) == sorted(IMPORTED[: IMPORTED.index("DEFAULT_PROFILE")])


def problems_of(mapping: Any, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Registry.from_mapping(mapping, environ=environ, source="f.toml")
    return info.value.problems


def test_a_broken_extends_is_reported_with_its_profile_in_file_order() -> None:
    mapping = {
        "profiles": {
            "a": {"retry": {"max_attempts": 0}},
            "b": {"extends": "nope", "total_timeout": -1},
            "c": {"extends": "b", "bulkhead": {}},
        },
        "routes": {"h": "zz"},
    }
    environ = {"HTTPX_RESILIENCE__B__RETRY__MAX_ATTEMPTS": "-3", "HTTPX_RESILIENCE__Q__X": "1"}
    assert problems_of(mapping, environ) == [
        "f.toml: HTTPX_RESILIENCE__Q__X: no profile named 'q'",
        "f.toml: profiles.a.retry.max_attempts: expected an integer >= 1, got 0",
        "f.toml: profiles.b.extends: no profile named 'nope'",
        "f.toml: profiles.b.total_timeout: expected a finite number > 0, got -1",
        "f.toml: profiles.b.retry.max_attempts: expected an integer >= 1, got '-3'",
        "f.toml: routes.'h': no profile named 'zz'",
    ]


def test_each_profile_on_a_cycle_reports_the_cycle_from_itself() -> None:
    mapping = {
        "profiles": {
            "a": {"extends": "b", "retry": {"max_atempts": 1}},
            "b": {"extends": "c"},
            "c": {"extends": "b", "total_timeout": 0},
            "d": {"extends": 3},
        }
    }
    assert problems_of(mapping, {}) == [
        "f.toml: profiles.a.extends: cycle a -> b -> c -> b",
        "f.toml: profiles.a.retry.max_atempts: unknown key; did you mean 'max_attempts'?",
        "f.toml: profiles.b.extends: cycle b -> c -> b",
        "f.toml: profiles.c.extends: cycle c -> b -> c",
        "f.toml: profiles.c.total_timeout: expected a finite number > 0, got 0",
        "f.toml: profiles.d.extends: expected a profile name, got 3",
    ]
