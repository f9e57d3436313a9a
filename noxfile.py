"""Every task of the project: ``python -m nox -s tests`` (the README's test command), ``lint``,
``typecheck``, ``bench``, ``demo``.

``tests`` is one session per supported Python (``tests-3.10`` ... ``tests-3.13``); an interpreter
the machine lacks is skipped with nox's "Python interpreter X not found" message, never an error,
while a failure on any interpreter that is present fails the run.
"""

from __future__ import annotations

import os

import nox

# nox.project.dependency_groups (below) came with nox 2025.02.09.
nox.needs_version = ">=2025.2.9"

# The development dependencies are PEP 735 groups of pyproject.toml ([dependency-groups]), read
# here rather than installed with pip's --group, which an older pip in a session lacks.
PYPROJECT = nox.project.load_toml("pyproject.toml")
DEV = nox.project.dependency_groups(PYPROJECT, "dev")
DOCS = nox.project.dependency_groups(PYPROJECT, "docs")

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True
# Skip (with a message) a Python the machine does not have instead of failing: the README's
# command must work on a machine with only some of them. nox would turn this back into an error
# whenever the CI variable is set, so it is set here explicitly; .ci/run fails by itself when
# none of them is installed.
nox.options.error_on_missing_interpreters = False

# Every Python the package supports (requires-python = ">=3.10"), oldest first.
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]

# pytest-xdist workers: the suite waits on loopback I/O and real sleeps about a third of its
# time, so one worker more than the cores keeps them busy (7 min -> 3.5 min on 2 cores).
WORKERS = str((os.cpu_count() or 1) + 1)

BENCH_PEERS = ["tenacity", "stamina", "aiobreaker", "aiolimiter", "pyresilience", "hyx"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite; on the newest Python on asyncio and trio, httpx and httpx2, with a
    coverage report.

    The tests run in ``WORKERS`` processes (pytest-xdist; ``-- -n 0`` runs them in one),
    except those marked ``serial`` (bars measured in real time, loads, benchmarks in
    subprocesses), which would measure the other workers' load as much as their own: they run
    after, one at a time, on the newest Python only (what they measure does not depend on the
    version, and the older Pythons run everything else).
    Coverage (with branches) doubles the suite's CPU time, so it is measured once, on the
    newest Python; the report is of that run (code only an older Python takes shows as missed).

    The Redis tests start their own ``redis-server`` (found on PATH) and skip without one,
    unless ``HTTPX_RESILIENCE_REQUIRE_REDIS=1`` (as in ``.ci/run``) makes that a failure; nox
    passes the environment, that variable included, through to the tests.

    The HTTP tests run on httpx and on httpx2; the ``httpx2`` extra installs it where it
    installs (Python >= 3.11), and its runs are skipped elsewhere.

    trio and httpx2 behave the same on every Python, while asyncio does not (the timeout's
    paths differ before 3.11): the newest Python runs both backends and, for the HTTP tests,
    both packages; the older ones asyncio and httpx only (``HTTPX_RESILIENCE_BACKENDS``,
    ``HTTPX_RESILIENCE_FLAVOURS``), which keeps CI time in check on two cores. Set either
    variable to run more everywhere.
    """
    session.install("-e", ".[cli,redis,httpx2]", *DEV)
    if session.python != PYTHONS[-1]:
        env = {
            "HTTPX_RESILIENCE_BACKENDS": os.environ.get("HTTPX_RESILIENCE_BACKENDS", "asyncio"),
            "HTTPX_RESILIENCE_FLAVOURS": os.environ.get("HTTPX_RESILIENCE_FLAVOURS", "httpx"),
        }
        # The bars and loads are the newest Python's to measure. Exit status 5: no test
        # selected (posargs naming only serial tests).
        args = ["-n", WORKERS, "-m", "not serial", *session.posargs]
        session.run("pytest", *args, env=env, success_codes=[0, 5])
        return
    # coverage measures the xdist workers as subprocesses ([tool.coverage.run] patch), each
    # into a file of its own; the serial run adds its own, and `combine` merges them all.
    session.run("coverage", "erase")
    for args in (["-n", WORKERS, "-m", "not serial"], ["-m", "serial"]):
        pytest = ["coverage", "run", "-m", "pytest", *args, *session.posargs]
        session.run(*pytest, success_codes=[0, 5])
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting; lint-imports: the layer contracts of pyproject.toml
    (``[tool.importlinter]``), which need the package installed to find its modules."""
    session.install("-e", ".", "import-linter", "ruff")
    session.run("lint-imports")
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "examples", "noxfile.py")


@nox.session
@nox.parametrize("httpx2", [True, False])
def typecheck(session: nox.Session, httpx2: bool) -> None:
    """mypy --strict on the library and its tests, with every extra installed so their
    imports are checked (for Python 3.10, the oldest supported: ``[tool.mypy]``); and once
    without httpx2, an extra the library must type-check without."""
    session.install("-e", ".[cli,redis,otel,httpx2]" if httpx2 else ".[cli,redis,otel]", *DEV)
    session.run("mypy", "--strict", "src", "tests")


@nox.session
def bench(session: nox.Session) -> None:
    """Overhead of the pipelines against bare calls and the peer libraries, in one run; then
    the Redis rate limiter against a bare PING and the in-memory bucket (needs redis-server);
    then the memory of a partitioned breaker under a flood of distinct keys; then the breaker's
    standard numbers against noise and outages; then the adaptive limit's candidate algorithms
    against a simulated upstream; then clients against an overloaded upstream of fixed capacity
    (about three minutes); then 500 closed-loop callers against a fast upstream.

    ``nox -s bench -- ARGS`` passes ARGS to overhead.py only.
    """
    session.install("-e", ".[redis,otel]", "opentelemetry-sdk", *BENCH_PEERS)
    session.run("python", "benchmarks/overhead.py", *session.posargs)
    session.run("python", "benchmarks/redis_limiter.py")
    session.run("python", "benchmarks/partitions_memory.py")
    session.run("python", "benchmarks/breaker_defaults.py")
    session.run("python", "benchmarks/adaptive_limit.py")
    session.run("python", "benchmarks/overload.py")
    session.run("python", "benchmarks/many_callers.py")


@nox.session
def demo(session: nox.Session) -> None:
    """The same load against a flaky local upstream, through plain httpx and ResilientClient."""
    session.install("-e", ".[cli]")
    session.run("python", "-m", "httpx_resilience", "demo", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with --strict (every reference must resolve), with ruff
    there to format the signatures the API reference shows."""
    session.install("-e", ".", *DOCS)
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")
