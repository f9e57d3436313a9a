"""Every script in examples/ runs, against loopback servers only, and says what it did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"

# What each example must print: proof that it did its job, not only that it did not crash.
EXPECTED = {
    "profiles.py": [
        "profiles: default, payments, search, internal",
        "POST /charges: 200 via profile 'payments' in 1 attempt(s)",
        "GET /v2/query: 200 via profile 'search' in 2 attempt(s)",
    ],
}


def test_every_example_is_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=EXAMPLES.parent,
    )
    assert result.returncode == 0, result.stderr
    for line in EXPECTED[name]:
        assert line in result.stdout, result.stdout
