"""The benchmark scripts must keep running: a quick pass of each (figures are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def test_the_overhead_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "overhead.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "overhead.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ours: full stack" in result.stdout
    figures = json.loads(out.read_text())
    assert figures
