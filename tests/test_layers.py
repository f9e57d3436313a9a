"""The structure the library keeps: layers that point one way, and modules that read each
other's public names only (DESIGN.md, "Layout")."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from httpx_resilience import telemetry

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_of_pyproject_are_kept() -> None:
    # The same check as the nox "lint" session, so that the suite alone catches a cycle too
    # (imports inside functions and under TYPE_CHECKING included).
    cli = pytest.importorskip("importlinter.cli")
    config = str(ROOT / "pyproject.toml")
    assert cli.lint_imports(config_filename=config, no_cache=True, no_logo=True) == 0


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
