"""What a client or transport does with ``profiles=``: it, not the dispatch, reads a TOML path
into a registry, and it refuses what it cannot route with, before any file is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from httpx_resilience import Pipeline, Registry, ResilienceTransport, ResilientClient


def test_a_path_is_read_into_a_registry_by_the_client_and_the_transport(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[profiles.api]\ntotal_timeout = 1.0\n[routes]\n"api.example" = "api"\n')
    for profiles in (ResilientClient(profiles=path).profiles, ResilienceTransport(path).profiles):
        assert isinstance(profiles, Registry)
        assert profiles.names == ("api",)


def test_a_pipeline_with_a_path_is_refused_before_the_file_is_read(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(TypeError, match="ResilientClient: give a pipeline or profiles, not both"):
        ResilientClient(pipeline=Pipeline(), profiles=missing)


@pytest.mark.parametrize("profiles", [{"default": {}}, 3])
def test_profiles_that_are_neither_a_registry_nor_a_path_are_refused(profiles: object) -> None:
    message = "profiles must be a Registry, a Profile or the path of a TOML file, got "
    with pytest.raises(TypeError, match=f"ResilientClient: {message}"):
        ResilientClient(profiles=profiles)  # type: ignore[arg-type]


def test_a_bad_pipeline_without_profiles_is_named_as_a_bad_pipeline() -> None:
    with pytest.raises(TypeError, match="ResilientClient: pipeline must be a Pipeline, got 3"):
        ResilientClient(pipeline=3)  # type: ignore[arg-type]
