"""Reading profiles and routes from a mapping shaped like the file, in named steps.

:meth:`Registry.from_mapping` runs them in order, each adding what it finds wrong to one list so
that every problem is reported at once: read the tables (:func:`_read_profiles`), apply the
environment (``_environment``), resolve ``extends`` (:func:`_resolve_extends`), parse each
profile into its options classes (:func:`_parse_profiles`), parse the routes
(:func:`_parse_routes`), and look for alternates that name no profile or lead back to where they
started (:func:`_alternate_problems`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, NamedTuple

from .._validate import Rule
from ..errors import ConfigError
from ._options import _at, _field_types, _options_class, _Problems, _unknown
from ._routing import _route_problems
from ._schema import DEFAULT_PROFILE, Profile, _as_mapping, _built_in

if sys.version_info >= (3, 11):
    import tomllib as _tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as _tomllib


def _read_toml(path: str | os.PathLike[str]) -> Any:
    """The data of the TOML file at ``path``; ``ConfigError`` if it cannot be read or parsed."""
    location = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{location}: cannot be read ({exc.strerror or exc})") from exc
    try:
        return _tomllib.loads(text)
    except _tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{location}: not valid TOML: {exc}") from exc


def _read_profiles(
    mapping: Mapping[str, Any], prefix: str, problems: list[str]
) -> dict[str, dict[str, Any]]:
    """Step 1: each profile's raw table, by name (copied: later steps change them).

    A mapping that is not a table, or whose ``profiles`` is not, cannot be read further: that
    one problem is raised at once (``prefix`` names the source)."""
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{prefix}expected a table of profiles and routes, got {mapping!r}")
    for key in mapping:
        if key not in ("profiles", "routes"):
            problems.append(_unknown(key, ["profiles", "routes"], str(key)))
    tables = mapping.get("profiles", {})
    if not isinstance(tables, Mapping):
        raise ConfigError(f"{prefix}profiles: expected a table, got {tables!r}")
    raw_profiles: dict[str, dict[str, Any]] = {}
    for name, raw in tables.items():
        if not isinstance(name, str) or not name:
            problems.append(f"profiles.{name!r}: a profile name must be a non-empty string")
        elif isinstance(raw, Mapping):
            raw_profiles[name] = _merge({}, raw)
        else:
            problems.append(f"profiles.{name}: expected a table, got {raw!r}")
    return raw_profiles


class _Extended(NamedTuple):
    """One profile after :func:`_resolve_extends`."""

    #: Its own keys, without ``extends``.
    own: dict[str, Any]
    #: Its own keys over those of the profiles it extends; ``None`` when ``extends`` is broken.
    merged: dict[str, Any] | None
    #: What is wrong with its ``extends`` chain.
    problems: list[str]


def _resolve_extends(raw_profiles: Mapping[str, Mapping[str, Any]]) -> dict[str, _Extended]:
    """Step 3: each profile with the profiles it ``extends`` merged under it, in file order.

    A profile's problems are kept with it so that they are reported just before those of its
    own keys."""
    merged: dict[str, dict[str, Any]] = {}  # the profiles resolved so far
    extended = {}
    for name, raw in raw_profiles.items():
        problems: list[str] = []
        options = _extend(name, (name,), raw_profiles, merged, problems)
        extended[name] = _Extended(_own(raw), options, problems)
    return extended


def _own(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k != "extends"}


def _extend(
    name: str,
    chain: tuple[str, ...],
    raw_profiles: Mapping[str, Mapping[str, Any]],
    merged: dict[str, dict[str, Any]],
    problems: list[str],
) -> dict[str, Any] | None:
    """``name``'s keys over those of its ancestors (``chain``: the profiles that led here,
    ``name`` last), remembered in ``merged``; ``None``, with the reason in ``problems``, when
    an ancestor is missing or the chain is a cycle."""
    if name in merged:
        return merged[name]
    raw = raw_profiles[name]
    parent = raw.get("extends")
    own = _own(raw)
    if parent is None:
        merged[name] = own
        return own
    if not isinstance(parent, str):
        problems.append(f"profiles.{name}.extends: expected a profile name, got {parent!r}")
        return None
    if parent in chain:
        cycle = " -> ".join((*chain, parent))
        problems.append(f"profiles.{chain[0]}.extends: cycle {cycle}")
        return None
    if parent not in raw_profiles:
        built_in = _built_in(parent)
        if built_in is not None:
            base: dict[str, Any] | None = _as_mapping(built_in)
        else:
            problems.append(
                _unknown(parent, raw_profiles, f"profiles.{name}.extends").replace(
                    "unknown key", f"no profile named {parent!r}"
                )
            )
            return None
    else:
        base = _extend(parent, (*chain, parent), raw_profiles, merged, problems)
    if base is None:
        return None
    merged[name] = result = _merge(base, own)
    return result


def _parse_profiles(extended: Mapping[str, _Extended], problems: list[str]) -> dict[str, Profile]:
    """Step 4: each profile whose options are all valid, parsed into a :class:`Profile`."""
    profiles: dict[str, Profile] = {}
    for name, profile in extended.items():
        problems.extend(profile.problems)
        if profile.merged is None:
            # Its base is broken; still report what is wrong with its own keys.
            _parse(Profile, profile.own, f"profiles.{name}", problems, partial=True)
            continue
        parsed = _parse(Profile, profile.merged, f"profiles.{name}", problems)
        if parsed is not _INVALID:
            profiles[name] = parsed
    return profiles


def _parse_routes(
    routes_in: Any, names: Iterable[str], problems: list[str]
) -> list[tuple[str, str]]:
    """Step 5: the ``(pattern, profile)`` routes that name a known profile."""
    if not isinstance(routes_in, Mapping):
        problems.append(f"routes: expected a table of pattern = profile, got {routes_in!r}")
        return []
    known = set(names)
    routes: list[tuple[str, str]] = []
    for pattern, name in routes_in.items():
        if not isinstance(name, str):
            problems.append(f"routes.{pattern!r}: expected a profile name, got {name!r}")
        elif name not in known and name != DEFAULT_PROFILE:
            problems.append(f"routes.{pattern!r}: no profile named {name!r}")
        else:
            routes.append((str(pattern), name))
    problems.extend(_route_problems(pattern for pattern, _name in routes))
    return routes


def _parse(
    cls: type, raw: Mapping[str, Any], path: str, problems: list[str], *, partial: bool = False
) -> Any:
    """Options of ``cls`` from ``raw``; one message per problem goes to ``problems``.

    ``partial``: ``raw`` is only part of the options (a profile whose ``extends`` is broken):
    judge the values it has, but neither ask for required keys nor compare values that the
    missing part may hold; the result is then always ``_INVALID``."""
    before = len(problems)
    hints = _field_types(cls)
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}.{key}"
        f = known.get(key) if isinstance(key, str) else None
        if f is None:
            problems.append(_unknown(key, known, where))
            continue
        nested = _options_class(hints[key])
        if nested is not None:
            if value is False:
                values[key] = None
            elif value is True or isinstance(value, Mapping):
                values[key] = _parse(
                    nested, {} if value is True else value, where, problems, partial=partial
                )
            else:
                problems.append(
                    f"{where}: expected a table (or false to turn it off), got {value!r}"
                )
            continue
        rule: Rule = f.metadata["rule"]
        if rule.accepts(value):
            values[key] = rule.convert(value)
        else:
            problems.append(f"{where}: expected {rule.expected}, got {rule.show(value)}")
    if partial:
        return _INVALID
    for name, f in known.items():
        if f.default is MISSING and f.default_factory is MISSING and name not in raw:
            problems.append(f"{path}.{name}: required")
    if len(problems) > before:
        # Still judge what was valid against each other, so that a file's cross-policy
        # problems are reported in the same run as its field problems.
        shadow: Any = object.__new__(cls)
        for f in fields(cls):
            value = values.get(f.name, _INVALID)
            if value is _INVALID:
                value = None if f.default is MISSING else f.default
                if f.default_factory is not MISSING:
                    value = f.default_factory()
            object.__setattr__(shadow, f.name, value)
        # A value given but refused already has its message: comparisons that would read it
        # as absent ("expected a cache, an alternate or both") would only add noise.
        refused = {key for key in raw if values.get(key, _INVALID) is _INVALID}
        problems.extend(
            _at(path, key, message)
            for key, message, *_ in shadow._cross_checks()
            if not (refused and key == "") and key.split(".")[0] not in refused
        )
        return _INVALID
    try:
        return cls(**values)
    except _Problems as error:
        problems.extend(_at(path, key, message) for key, message in error.items)
        return _INVALID


_INVALID: Any = object()


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        elif value is True and isinstance(merged.get(key), Mapping):
            pass  # true on a table means "on, as configured", not "on, with the defaults"
        else:
            merged[key] = value
    return merged


def _alternate_problems(
    names: Iterable[str], resolved: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Alternates naming no profile, or leading back to where they started (``p``'s alternate
    runs through ``q``, whose alternate runs through ``p``): building either would recurse.
    ``resolved``: each profile's raw options, ``extends`` applied (judged even when other
    options are invalid, so that every problem is reported at once)."""
    problems = []
    names = list(names)
    for name in names:
        target = _alternate_profile(resolved, name)
        if target is None:
            continue
        where = f"profiles.{name}.fallback.alternate.profile"
        if target not in names and target != DEFAULT_PROFILE:
            problems.append(f"{where}: no profile named {target!r}")
            continue
        chain = [name]
        while target is not None and target not in chain:
            chain.append(target)
            target = _alternate_profile(resolved, target)
        if target == name:
            cycle = " -> ".join((*chain, name))
            problems.append(f"{where}: leads back to {name!r} ({cycle})")
    return problems


def _alternate_profile(resolved: Mapping[str, Mapping[str, Any]], name: str) -> str | None:
    """The profile ``name``'s fallback alternate runs through, if its raw options name one."""
    fallback = resolved.get(name, {}).get("fallback")
    alternate = fallback.get("alternate") if isinstance(fallback, Mapping) else None
    target = alternate.get("profile") if isinstance(alternate, Mapping) else None
    return target if isinstance(target, str) else None
