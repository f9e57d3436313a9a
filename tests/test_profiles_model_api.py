"""The model-API preset (``Profile.model_api()``, ``extends = "model-api"``) and the statuses a
profile's retry retries (``retry.statuses``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from httpx_resilience import (
    ConfigError,
    Profile,
    Registry,
    ResilienceTransport,
    ResilientClient,
)
from httpx_resilience.profiles import RetryOptions, settings
from httpx_resilience.testing import FakeClock

NO_ENV: dict[str, str] = {}


def load(mapping: dict[str, Any]) -> Registry:
    return Registry.from_mapping(mapping, environ=NO_ENV)


def test_the_model_api_preset() -> None:
    profile = Profile.model_api()
    assert profile.retry_non_idempotent is True
    assert profile.retry is not None
    assert profile.retry.statuses == (408, 409, 429, "5xx")
    assert (profile.retry.max_attempts, profile.retry.max_retry_after) == (3, 120.0)
    # Sized for generation: the SDKs' own request timeout, not the standard 10 s.
    assert profile.attempt_timeout == 600.0
    assert profile.total_timeout is not None
    assert profile.total_timeout >= 3 * 600.0
    retry = profile.build().describe()["policies"][1]
    assert retry["options"]["handle"] == "retry_statuses(408, 409, 429, '5xx')"


def test_retry_statuses_in_a_file() -> None:
    registry = load({"profiles": {"llm": {"retry": {"max_attempts": 2, "statuses": [429, "5xx"]}}}})
    retry = registry.profile("llm")
    assert retry is not None
    assert retry.retry is not None
    assert retry.retry.statuses == (429, "5xx")
    assert settings(retry)["retry.statuses"] == (429, "5xx")
    described = registry.get("llm").describe()["policies"][0]
    assert described["options"]["handle"] == "retry_statuses(429, '5xx')"


@pytest.mark.parametrize("statuses", [[], [600], ["6xx"], ["5XX"], [True], "5xx", 503])
def test_bad_statuses_are_named_with_their_key(statuses: object) -> None:
    with pytest.raises(ConfigError) as info:
        load({"profiles": {"llm": {"retry": {"statuses": statuses}}}})
    assert info.value.problems == [
        "profiles.llm.retry.statuses: expected a non-empty list of status codes (100 to 599) "
        f"and classes ('1xx' to '5xx'), got {statuses!r}"
    ]


def test_bad_statuses_in_code() -> None:
    with pytest.raises(ConfigError, match=r"RetryOptions.statuses: expected .* got \[99\]"):
        RetryOptions(statuses=[99])  # type: ignore[arg-type]


def test_a_file_extends_the_preset_without_defining_it(tmp_path: Path) -> None:
    path = tmp_path / "llm.toml"
    path.write_text(
        '[profiles.default]\nextends = "model-api"\nattempt_timeout = 300.0\n'
        '[profiles.strict]\nextends = "model-api"\nretry = { statuses = [429] }\n'
    )
    registry = Registry.from_toml(path, environ=NO_ENV)
    default, strict = registry.profile("default"), registry.profile("strict")
    assert default == Profile(**{**vars(Profile.model_api()), "attempt_timeout": 300.0})
    assert strict is not None
    assert strict.retry is not None
    assert strict.retry.statuses == (429,)
    assert strict.retry.max_attempts == 3  # the rest of the preset's retry stays
    assert registry.retry_non_idempotent("strict")


@pytest.mark.parametrize("owner", ["client", "transport"])
def test_one_profile_serves_every_request(owner: str) -> None:
    profile = Profile.model_api()
    if owner == "client":
        registry = ResilientClient(profiles=profile).profiles
    else:
        registry = ResilienceTransport(profile).profiles
    assert registry is not None
    assert registry.profile("default") is profile
    assert registry.retry_non_idempotent("default")


@pytest.mark.anyio
@pytest.mark.parametrize("status", [408, 409, 429, 500, 529])
async def test_a_post_to_a_model_api_is_retried(status: int) -> None:
    statuses = iter([status, 200])
    sent: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(next(statuses))

    registry = Registry({"default": Profile.model_api()}, clock=FakeClock())
    async with ResilientClient(profiles=registry, transport=httpx.MockTransport(api)) as client:
        response = await client.post("https://api.example/v1/messages", json={"model": "m"})
    assert response.status_code == 200
    assert sent == ["POST", "POST"]


@pytest.mark.anyio
async def test_the_standard_profile_still_sends_such_a_post_once() -> None:
    sent: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(529)

    registry = Registry(clock=FakeClock())
    async with ResilientClient(profiles=registry, transport=httpx.MockTransport(api)) as client:
        response = await client.post("https://api.example/v1/messages", json={"model": "m"})
    assert (response.status_code, sent) == (529, ["POST"])
