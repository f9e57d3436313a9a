"""The command line stays out of the library: ``python -m httpx_resilience`` is its only way in
(tested through a subprocess in ``test_check.py``)."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import sys
import httpx_resilience, httpx_resilience.http.client, httpx_resilience.profiles
import httpx_resilience.testing, httpx_resilience.telemetry
print(sorted(name for name in sys.modules if name.startswith("httpx_resilience._cli")))
"""


def test_importing_the_library_loads_no_part_of_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
