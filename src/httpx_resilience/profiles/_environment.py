"""Environment overrides: ``HTTPX_RESILIENCE__<PROFILE>__<FIELD>[__<KEY>]`` sets one field of
one profile (``HTTPX_RESILIENCE__PAYMENTS__RETRY__MAX_ATTEMPTS=5``), on top of the file.

The variables are applied to the raw tables before ``extends`` is resolved, so a profile that
extends an overridden one inherits the override.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from .._numbers import ascii_decimal, ascii_int
from .._validate import Rule
from ._options import _field_types, _options_class, _unknown
from ._schema import DEFAULT_PROFILE, Profile, _as_mapping

_ENV_PREFIX = "HTTPX_RESILIENCE__"


def _env_value(raw: str, rule: Rule | None) -> Any:
    """An environment variable's text as the type its field expects."""
    text = raw.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if rule is not None and rule.accepts(text):
        return text
    # ASCII digits only: int() and float() would read "٣" as 3 (see _numbers).
    number = ascii_int(text)
    if number is not None:
        return number
    decimal = ascii_decimal(text)
    return text if decimal is None else decimal


def _env_name(profile: str) -> str:
    """How ``profile`` is spelled in environment variable names."""
    return profile.upper().replace("-", "_")


def _apply_environment(
    raw_profiles: dict[str, dict[str, Any]],
    environ: Mapping[str, str],
    problems: list[str],
) -> None:
    by_upper: dict[str, str] = {}
    for name in raw_profiles:
        upper = _env_name(name)
        if upper in by_upper:
            problems.append(
                f"profiles.{by_upper[upper]} and profiles.{name}: both are "
                f"{_ENV_PREFIX}{upper}__... in the environment; rename one"
            )
        else:
            by_upper[upper] = name
    for variable, text in sorted(environ.items()):
        if not variable.startswith(_ENV_PREFIX):
            continue
        parts = variable[len(_ENV_PREFIX) :].split("__")
        if len(parts) < 2 or not all(parts):
            problems.append(f"{variable}: expected HTTPX_RESILIENCE__<PROFILE>__<FIELD>[__<KEY>]")
            continue
        profile = by_upper.get(parts[0].upper())
        if profile is None and parts[0].upper() == _env_name(DEFAULT_PROFILE):
            # The built-in default profile, made explicit so that the variable overrides it.
            profile = by_upper[parts[0].upper()] = DEFAULT_PROFILE
            raw_profiles[DEFAULT_PROFILE] = _as_mapping(Profile.standard())
        if profile is None:
            problems.append(f"{variable}: no profile named {parts[0].lower()!r}")
            continue
        cls: type = Profile
        target = raw_profiles[profile]
        path = f"profiles.{profile}"
        for depth, part in enumerate(parts[1:], start=1):
            key = part.lower()
            known = {f.name: f for f in fields(cls)}
            if key not in known:
                problems.append(_unknown(key, known, f"{variable} ({path}.{key})"))
                break
            path = f"{path}.{key}"
            nested = _options_class(_field_types(cls)[key])
            if depth == len(parts) - 1:
                if nested is not None:
                    value = _env_value(text, None)
                    if value is True and isinstance(target.get(key), Mapping):
                        break  # "on, as configured": keep the file's table
                    target[key] = value if isinstance(value, bool) else text
                else:
                    target[key] = _env_value(text, known[key].metadata.get("rule"))
                break
            if nested is None:
                problems.append(f"{variable} ({path}): {key!r} has no keys of its own")
                break
            section = target.get(key)
            if not isinstance(section, dict):
                section = target[key] = {} if not isinstance(section, Mapping) else dict(section)
            target, cls = section, nested
