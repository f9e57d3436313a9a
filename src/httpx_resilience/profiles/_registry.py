"""The :class:`Registry`: named profiles, each built once into one shared pipeline, and the
routes that pick one per request."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._clock import Clock
from ..errors import ConfigError
from ..pipeline import Pipeline
from ..telemetry import Listener, PathRedaction, _path_redactor
from ._environment import _apply_environment
from ._loading import (
    _alternate_problems,
    _parse_profiles,
    _parse_routes,
    _read_profiles,
    _read_toml,
    _resolve_extends,
)
from ._routing import PROFILE_EXTENSION, _route_matches, _route_problems
from ._schema import DEFAULT_PROFILE, Profile

if TYPE_CHECKING:
    import httpx


class Registry:
    """Named profiles, each built once into one shared :class:`~httpx_resilience.Pipeline`.

    Args:
        profiles: Profiles (or ready pipelines) by name.
        routes: ``(pattern, profile)`` pairs, tried in order: an exact host
            (``"api.payments.example"``), a ``"*.suffix"`` host wildcard, or a URL prefix
            (``"https://search.example/v2/"``).
        clock: The clock of every policy built (default: the system clock).
        listeners: Event listeners given to every pipeline built.
        include_query: Let events show the query string of request URLs.
        redact_path: Redact URL paths in events (see :meth:`Pipeline.builder
            <httpx_resilience.Pipeline.builder>`).

    A request whose profile is not named otherwise uses ``"default"``; without a profile of
    that name, :meth:`Profile.standard` is used.
    """

    def __init__(
        self,
        profiles: Mapping[str, Profile | Pipeline] | None = None,
        *,
        routes: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        clock: Clock | None = None,
        listeners: Iterable[Listener] = (),
        include_query: bool = False,
        source: str | None = None,
        redact_path: PathRedaction | None = None,
    ) -> None:
        self._clock = clock
        self._listeners = tuple(listeners)
        self._include_query = include_query
        self._redact_path = _path_redactor(redact_path)
        self._source = source
        self._profiles: dict[str, Profile | Pipeline] = {}
        self._pipelines: dict[str, Pipeline] = {}
        self._building: set[str] = set()
        for name, profile in (profiles or {}).items():
            self.register(name, profile)
        pairs = routes.items() if isinstance(routes, Mapping) else routes
        self._routes: tuple[tuple[str, str], ...] = tuple(pairs)
        unknown = [
            f"routes.{pattern!r}: no profile named {name!r}"
            for pattern, name in self._routes
            if name not in self._profiles and name != DEFAULT_PROFILE
        ]
        unknown.extend(_route_problems(pattern for pattern, _name in self._routes))
        if unknown:
            raise ConfigError(self._located(unknown))

    def _located(self, problems: Sequence[str]) -> list[str]:
        if self._source is None:
            return list(problems)
        return [f"{self._source}: {p}" for p in problems]

    def register(self, name: str, profile: Profile | Pipeline) -> None:
        """Add (or replace, before first use) the profile or pipeline called ``name``."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"profile names must be non-empty strings, got {name!r}")
        if not isinstance(profile, (Profile, Pipeline)):
            raise ConfigError(f"profiles.{name}: expected a Profile or a Pipeline, got {profile!r}")
        if name in self._pipelines:
            raise ConfigError(f"profiles.{name}: already in use, it cannot be replaced")
        self._profiles[name] = profile

    @property
    def names(self) -> tuple[str, ...]:
        """The registered profile names, in registration order."""
        return tuple(self._profiles)

    @property
    def routes(self) -> tuple[tuple[str, str], ...]:
        """The ``(pattern, profile)`` routes, in the order they are tried."""
        return self._routes

    def profile(self, name: str) -> Profile | None:
        """The :class:`Profile` registered as ``name`` (``None`` for a ready pipeline)."""
        self._known(name)
        found = self._profiles.get(name)
        if found is None:
            return Profile.standard()
        return found if isinstance(found, Profile) else None

    def _known(self, name: str) -> None:
        if name not in self._profiles and name != DEFAULT_PROFILE:
            known = ", ".join(repr(n) for n in self._profiles) or "none"
            close = difflib.get_close_matches(name, list(self._profiles), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown profile {name!r} (known: {known}){hint}")

    def get(self, name: str) -> Pipeline:
        """The pipeline of profile ``name``, built on first use and shared after."""
        pipeline = self._pipelines.get(name)
        if pipeline is not None:
            return pipeline
        self._known(name)
        if name in self._building:
            raise ConfigError(f"profiles.{name}: its fallback alternate leads back to itself")
        found = self._profiles.get(name, Profile.standard())
        if isinstance(found, Pipeline):
            pipeline = found
        else:
            self._building.add(name)
            try:
                pipeline = found.build(
                    clock=self._clock,
                    listeners=self._listeners,
                    include_query=self._include_query,
                    registry=self,
                    redact_path=self._redact_path,
                )
            finally:
                self._building.discard(name)
        self._pipelines[name] = pipeline
        return pipeline

    def retry_non_idempotent(self, name: str) -> bool:
        """Whether profile ``name`` retries POST and PATCH without an ``Idempotency-Key``."""
        found = self._profiles.get(name)
        return isinstance(found, Profile) and found.retry_non_idempotent

    def route(self, request: httpx.Request, routes: Sequence[tuple[str, str]] = ()) -> str:
        """The profile for ``request``: its ``resilience.profile`` extension, else the first
        route matching (``routes`` first, then the registry's), else ``"default"``."""
        named = request.extensions.get(PROFILE_EXTENSION)
        if named is not None:
            if not isinstance(named, str):
                raise TypeError(
                    f"the {PROFILE_EXTENSION!r} request extension must be a profile name "
                    f"(a str), got {named!r}"
                )
            self._known(named)
            return named
        url = request.url
        for pattern, name in (*routes, *self._routes):
            if _route_matches(pattern, url):
                return name
        return DEFAULT_PROFILE

    def describe(self) -> dict[str, Any]:
        """Every profile's pipeline (built ones with their live state) and the routes."""
        return {
            "profiles": {name: self.get(name).describe() for name in self.names},
            "routes": [list(route) for route in self._routes],
        }

    async def aclose(self) -> None:
        """Release what the built pipelines hold (see :meth:`Pipeline.aclose`)."""
        for pipeline in self._pipelines.values():
            await pipeline.aclose()

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def from_mapping(
        cls,
        mapping: Mapping[str, Any],
        *,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        listeners: Iterable[Listener] = (),
        include_query: bool = False,
        source: str | None = None,
        redact_path: PathRedaction | None = None,
    ) -> Registry:
        """A registry from a mapping shaped like the file (``{"profiles": ..., "routes": ...}``).

        Args:
            mapping: The configuration.
            environ: Where ``HTTPX_RESILIENCE__...`` overrides are read (default:
                :data:`os.environ`; pass ``{}`` to ignore the environment).
            clock: The clock of every policy built.
            listeners: Event listeners of every pipeline built.
            include_query: Let events show the query string of request URLs.
            source: What to call the configuration in messages (a file name).
            redact_path: Redact URL paths in events (see :meth:`Pipeline.builder
                <httpx_resilience.Pipeline.builder>`).

        Raises:
            ConfigError: with one message per problem found.
        """
        prefix = f"{source}: " if source else ""
        problems: list[str] = []
        raw_profiles = _read_profiles(mapping, prefix, problems)
        _apply_environment(raw_profiles, os.environ if environ is None else environ, problems)
        extended = _resolve_extends(raw_profiles)
        profiles = _parse_profiles(extended, problems)
        routes = _parse_routes(mapping.get("routes", {}), raw_profiles, problems)
        merged = {name: p.merged for name, p in extended.items() if p.merged is not None}
        problems.extend(_alternate_problems(raw_profiles, merged))
        if problems:
            raise ConfigError([f"{prefix}{p}" for p in dict.fromkeys(problems)])
        return cls(
            profiles,
            routes=routes,
            clock=clock,
            listeners=listeners,
            include_query=include_query,
            source=source,
            redact_path=redact_path,
        )

    @classmethod
    def from_toml(
        cls,
        path: str | os.PathLike[str],
        *,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        listeners: Iterable[Listener] = (),
        include_query: bool = False,
        redact_path: PathRedaction | None = None,
    ) -> Registry:
        """A registry from a TOML file (its format: see ``httpx_resilience.profiles``)."""
        return cls.from_mapping(
            _read_toml(path),
            environ=environ,
            clock=clock,
            listeners=listeners,
            include_query=include_query,
            source=str(path),
            redact_path=redact_path,
        )

    def __repr__(self) -> str:
        return f"Registry(names={list(self._profiles)!r}, routes={len(self._routes)})"
