"""ResilientClient is a typed drop-in (issue 14): a type checker sees every httpx argument.

mypy --strict runs on a small user script; a misspelt or mistyped httpx argument is an error,
as it is for ``httpx.AsyncClient`` itself, and a correct one is not.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

import httpx_resilience

mypy_api = pytest.importorskip("mypy.api")

ONE_FLAVOUR = True  # the scripts name both packages themselves

SOURCE = Path(httpx_resilience.__file__).parent.parent

SCRIPT = """\
import httpx

from httpx_resilience import ResilientClient

ResilientClient(timout=5)  # line 5: misspelt
ResilientClient(follow_redirects="yes")  # line 6: wrong type
ResilientClient(timeout=5.0, base_url="http://x", limits=httpx.Limits(), http2=False)


async def main() -> httpx.Response:
    async with ResilientClient(retry_non_idempotent=True, headers={"a": "b"}) as client:
        return await client.get("/")
"""

SCRIPT_HTTPX2 = """\
import httpx2

from httpx_resilience.httpx2 import ResilienceTransport, ResilientClient

ResilientClient(timout=5)  # line 5: misspelt
ResilientClient(limits=httpx2.Timeout(5.0))  # line 6: wrong type
ResilientClient(timeout=5.0, base_url="http://x", limits=httpx2.Limits())
httpx2.AsyncClient(transport=ResilienceTransport())


async def main() -> httpx2.Response:
    async with ResilientClient(retry_non_idempotent=True, headers={"a": "b"}) as client:
        return await client.get("/")
"""


HAS_HTTPX2 = importlib.util.find_spec("httpx2") is not None


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """mypy --strict's errors on the user scripts, by script (one run: mypy is slow to start)."""
    folder = tmp_path_factory.mktemp("typing")
    scripts = {"httpx": SCRIPT, "httpx2": SCRIPT_HTTPX2} if HAS_HTTPX2 else {"httpx": SCRIPT}
    for name, script in scripts.items():
        (folder / f"{name}_script.py").write_text(script)
    env_path = os.environ.get("MYPYPATH")
    os.environ["MYPYPATH"] = str(SOURCE)
    try:
        out, err, _status = mypy_api.run(
            [
                "--strict",
                "--no-incremental",
                "--cache-dir",
                os.devnull,
                "--python-version",
                "3.11",
                "--no-error-summary",
                *(str(folder / f"{name}_script.py") for name in scripts),
            ]
        )
    finally:
        if env_path is None:
            del os.environ["MYPYPATH"]
        else:
            os.environ["MYPYPATH"] = env_path
    assert not err, err
    errors = [line for line in out.splitlines() if ": error:" in line]
    return {
        name: [line for line in errors if Path(line.split(":")[0]).name == f"{name}_script.py"]
        for name in scripts
    }


def _lines(errors: list[str]) -> set[int]:
    return {int(line.split(":")[1]) for line in errors}


def test_mypy_flags_a_misspelt_httpx_argument_to_resilient_client(
    mypy_errors: dict[str, list[str]],
) -> None:
    errors = mypy_errors["httpx"]
    assert _lines(errors) == {5, 6}, errors
    assert 'Unexpected keyword argument "timout"' in errors[0]


@pytest.mark.skipif(not HAS_HTTPX2, reason="httpx2 is not installed")
def test_mypy_flags_a_misspelt_argument_to_the_httpx2_resilient_client(
    mypy_errors: dict[str, list[str]],
) -> None:
    errors = mypy_errors["httpx2"]
    assert _lines(errors) == {5, 6}, errors
    assert 'Unexpected keyword argument "timout"' in errors[0]
