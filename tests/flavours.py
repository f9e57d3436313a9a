"""The HTTP tests run against httpx and httpx2 (issue 14).

Each test of ``tests/http`` and ``tests/integration`` runs once per flavour. For httpx2, the
test modules' own names for httpx (``httpx``, ``ResilientClient``, ``ResilienceTransport``, the
shared timeout and requests) are pointed at httpx2's for the test's duration, so that the same
test body checks the same behaviour through ``httpx_resilience.httpx2``: both packages are used
in one process, as an application may. The names are a module's globals, so an HTTP test
imports httpx and the client or transport at the top of its module, not inside a function. A
test that is about httpx alone (respx mocks httpx only) says so with :func:`httpx_only`; a
module that picks its packages itself sets ``ONE_FLAVOUR = True``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

import httpx
import pytest

import httpx_resilience

F = TypeVar("F", bound=Callable[..., Any])

#: The flavours every HTTP test runs on (httpx2 is skipped where it is not installed).
FLAVOURS = ("httpx", "httpx2")

#: Test packages whose modules' names are switched to the flavour under test.
_PACKAGES = ("tests.http.", "tests.integration.")

#: Integration tests of something other than HTTP (a shared store), run once.
_ONE_FLAVOUR = "tests.integration.redis_backend."


@dataclass(frozen=True)
class Flavour:
    """httpx or httpx2, with the library's client and transport for it."""

    name: str
    httpx: Any  # the module: httpx or httpx2
    ResilientClient: Any
    ResilienceTransport: Any


def httpx_only(test: F) -> F:
    """Run ``test`` on httpx only (it is about something only httpx has, such as respx)."""
    setattr(test, "httpx_only", True)  # noqa: B010  # read by parametrize_flavour
    return test


def parametrize_flavour(metafunc: pytest.Metafunc) -> None:
    """Parametrize a test that uses the ``flavour`` fixture over :data:`FLAVOURS`."""
    if "flavour" not in metafunc.fixturenames:
        return
    only = (
        getattr(metafunc.function, "httpx_only", False)
        or getattr(metafunc.module, "ONE_FLAVOUR", False)
        or metafunc.module.__name__.startswith(_ONE_FLAVOUR)
    )
    metafunc.parametrize("flavour", FLAVOURS[:1] if only else _wanted(), indirect=True)


def _wanted() -> tuple[str, ...]:
    """The flavours to run on: both, unless ``HTTPX_RESILIENCE_FLAVOURS`` (comma-separated, as
    noxfile.py sets it for the Pythons between the oldest and the newest) names fewer."""
    wanted = os.environ.get("HTTPX_RESILIENCE_FLAVOURS", ",".join(FLAVOURS))
    names = tuple(name.strip() for name in wanted.split(",") if name.strip())
    if not names or set(names) - set(FLAVOURS):
        raise ValueError(f"HTTPX_RESILIENCE_FLAVOURS must name httpx and/or httpx2, got {wanted!r}")
    return names


def make_flavour(name: str) -> Flavour:
    """The flavour called ``name``; skips the test when its package is not installed."""
    if name == "httpx":
        return Flavour(
            "httpx", httpx, httpx_resilience.ResilientClient, httpx_resilience.ResilienceTransport
        )
    if importlib.util.find_spec("httpx2") is None:
        pytest.skip("httpx2 is not installed (it needs Python >= 3.11)")
    module = importlib.import_module("httpx2")
    layer = importlib.import_module("httpx_resilience.httpx2")
    return Flavour("httpx2", module, layer.ResilientClient, layer.ResilienceTransport)


def switch_test_modules(flavour: Flavour, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the httpx names of the HTTP test modules at ``flavour``'s, until the test ends."""
    if flavour.name == "httpx":
        return
    swap: dict[int, Any] = {
        id(httpx): flavour.httpx,
        id(httpx_resilience.ResilientClient): flavour.ResilientClient,
        id(httpx_resilience.ResilienceTransport): flavour.ResilienceTransport,
    }
    for name, module in list(sys.modules.items()):
        if not name.startswith(_PACKAGES) or not isinstance(module, ModuleType):
            continue
        for attr, value in list(vars(module).items()):
            replacement = swap.get(id(value))
            if replacement is None and isinstance(value, httpx.Timeout):
                replacement = flavour.httpx.Timeout(**value.as_dict())
            elif replacement is None and isinstance(value, httpx.Request):
                replacement = flavour.httpx.Request(
                    value.method, str(value.url), headers=value.headers.raw
                )
            if replacement is not None:
                monkeypatch.setattr(module, attr, replacement)
