"""Every code block of the documentation runs.

Each page is a session: its Python blocks run in order in one namespace, inside an event loop,
so they may ``await`` at the top level as in an async REPL. A Python block followed directly by
a ``text`` block shows what it prints: the output must be exactly that. Requests to hosts other
than the loopback address get a canned answer (the pages talk to ``api.example.com`` and
friends); a page that needs Redis gets a real server, whose URL replaces
``redis://localhost:6379/0``. Every TOML block that configures profiles is loaded, so a
documented configuration is a valid one.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from httpx_resilience import Registry

ROOT = Path(__file__).parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
DOCS_REDIS_URL = "redis://localhost:6379/0"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def blocks(page: Path, language: str) -> list[tuple[int, str]]:
    """The ``language`` blocks of ``page``, with the line each starts on."""
    return [(line, code) for line, code, _ in _blocks_with_output(page, language)]


def _blocks_with_output(page: Path, language: str) -> list[tuple[int, str, str | None]]:
    """The ``language`` blocks of ``page``, with the line each starts on and the ``text``
    block that directly follows it, if one does."""
    text = page.read_text(encoding="utf-8")
    fences = list(FENCE.finditer(text))
    found = []
    for index, match in enumerate(fences):
        if match.group(1) != language:
            continue
        shown = None
        after = fences[index + 1] if index + 1 < len(fences) else None
        if (
            after is not None
            and after.group(1) == "text"
            and not text[match.end() : after.start()].strip()
        ):
            shown = after.group(2)
        found.append((text.count("\n", 0, match.start()) + 2, match.group(2), shown))
    return found


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


# Packages some pages import that exist only where httpx2 installs.
_NEEDS_PYTHON_3_11 = ("httpx2", "openai", "anthropic")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("page", PAGES, ids=page_id)
@pytest.mark.anyio
async def test_python_blocks_run(page: Path, request: pytest.FixtureRequest) -> None:
    code_blocks = _blocks_with_output(page, "python")
    if not code_blocks:
        return
    for module in _NEEDS_PYTHON_3_11:
        # These need httpx2, hence Python >= 3.11: their pages run on the newer Pythons.
        if any(re.search(rf"^(import|from) {module}\b", code, re.M) for _, code, _ in code_blocks):
            pytest.importorskip(module, reason=f"{module} is not installed (Python >= 3.11)")
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    redis_url = None
    if any("redis" in code for _, code, _ in code_blocks):
        redis_url = request.getfixturevalue("redis_url")
    with respx.mock(assert_all_called=False) as router:
        router.route(host__regex=r"^(127\.0\.0\.1|localhost)$").pass_through()
        router.route().mock(
            side_effect=lambda r: httpx.Response(200, json={"ok": True, "path": r.url.path})
        )
        for line, code, shown in code_blocks:
            if redis_url is not None:
                code = code.replace(DOCS_REDIS_URL, redis_url)
            compiled = compile(
                "\n" * (line - 1) + code,
                str(page),
                "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            )
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                result = eval(compiled, namespace)
                if inspect.iscoroutine(result):
                    await result
            if shown is not None:
                where = f"{page_id(page)}:{line}"
                assert _lines(printed.getvalue()) == _lines(shown), (
                    f"what the block at {where} prints"
                )


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_toml_blocks_are_valid_configurations(page: Path) -> None:
    for line, text in blocks(page, "toml"):
        data = tomllib.loads(text)
        if "profiles" in data or "routes" in data:
            Registry.from_mapping(data, environ={}, source=f"{page_id(page)}:{line}")
