"""``python -m httpx_resilience check FILE``: validate a profiles file and show what it means.

Prints every profile's effective settings, with ``extends`` and the environment's
``HTTPX_RESILIENCE__...`` overrides applied, as a table (one column per profile), then the
routes. A bad file prints one line per problem, each naming the file, the profile and the key,
and exits with status 1. Passwords in URLs (``redis://user:secret@host``) are shown as ``***``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from ..errors import ConfigError
from ..profiles import _OFF, DEFAULT_PROFILE, Profile, Registry, masked_url, settings
from .text import plain_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``check`` command's arguments."""
    parser.add_argument("path", help="the TOML file of profiles and routes")


def _cell(value: Any) -> str:
    if value is _OFF:
        return ""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return masked_url(value)  # a Redis or alternate URL may hold a password
    if isinstance(value, tuple):
        return ", ".join(map(_cell, value)) or "-"  # a list of names, as TOML would write it
    return str(value)


def report(registry: Registry) -> str:
    """The effective settings of every profile, and the routes, as text."""
    profiles: dict[str, Profile] = {}
    for name in registry.names:
        profile = registry.profile(name)
        if profile is not None:
            profiles[name] = profile
    if DEFAULT_PROFILE not in profiles:
        profiles[f"{DEFAULT_PROFILE} (built in)"] = Profile.standard()
    flat = {name: settings(profile) for name, profile in profiles.items()}
    keys = list(dict.fromkeys(key for values in flat.values() for key in values))
    rows = [["setting", *profiles]]
    for key in keys:
        rows.append([key, *(_cell(flat[name].get(key)) for name in profiles)])
    lines = [plain_table(rows), ""]
    if registry.routes:
        lines.append(plain_table([["route", "profile"], *map(list, registry.routes)]))
    else:
        lines.append("no routes: every request uses the default profile unless it names one")
    return "\n".join(lines)


def command(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``check``: 0 when the file is valid, 1 otherwise."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        registry = Registry.from_toml(args.path)
    except ConfigError as error:
        count = len(error.problems)
        print(f"{args.path}: {count} problem{'s' if count != 1 else ''}", file=err)
        for problem in error.problems:
            print(f"  {problem}", file=err)
        return 1
    print(report(registry), file=out)
    return 0
