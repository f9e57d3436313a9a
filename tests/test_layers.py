"""The structure the library keeps: layers that point one way, and modules that read each
other's public names only (DESIGN.md, "Layout")."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import httpx_resilience
from httpx_resilience import telemetry

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_of_pyproject_are_kept() -> None:
    # The same check as the nox "lint" session, so that the suite alone catches a cycle too
    # (imports inside functions and under TYPE_CHECKING included). In a process of its own:
    # import-linter reconfigures logging, which other tests read. It checks the very package
    # these tests import.
    pytest.importorskip("importlinter")
    source = Path(httpx_resilience.__file__).resolve().parent.parent
    check = (
        "import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))"
    )
    done = subprocess.run(
        [sys.executable, "-c", check, str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(source)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_telemetry_reads_no_private_field_of_a_context() -> None:
    tree = ast.parse(inspect.getsource(telemetry))
    private = sorted(
        f"line {node.lineno}: {node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in {"context", "ctx"}
        and node.attr.startswith("_")
    )
    assert private == []
