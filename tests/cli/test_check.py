"""``python -m httpx_resilience check``: good and bad files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from httpx_resilience import Registry
from httpx_resilience._cli import main
from httpx_resilience.profiles import masked_url

EXAMPLE = Path(__file__).parents[2] / "examples" / "profiles.toml"


def test_a_good_file_prints_every_profiles_effective_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPX_RESILIENCE__PAYMENTS__RETRY__MAX_ATTEMPTS", "7")
    assert main(["check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["setting", "default", "payments", "search", "internal"]
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:] if line.strip()}
    assert rows["total_timeout"] == ["30", "15", "30", "30"]
    assert rows["retry.max_attempts"] == ["3", "7", "2", "3"]  # the environment applied
    assert rows["circuit_breaker"] == ["on", "on", "on", "off"]
    assert rows["bulkhead.max_concurrent"] == ["20"]  # only payments has one
    assert "*.internal.example" in out
    assert "https://search.example/v2/" in out


def test_a_file_without_a_default_profile_shows_the_built_in_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[profiles.api]\ntotal_timeout = 2.0\n")
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "default (built in)" in out
    assert "no routes" in out


def test_a_bad_file_lists_every_problem_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        "[profiles.payments]\n"
        "retry = { max_attempts = -2 }\n"
        "bulkhead = { max_concurent = 5 }\n"
        "[routes]\n"
        '"api.example" = "paymnets"\n'
    )
    assert main(["check", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0] == f"{path}: 4 problems"
    assert lines[1:] == [
        f"  {path}: profiles.payments.retry.max_attempts: expected an integer >= 1, got -2",
        f"  {path}: profiles.payments.bulkhead.max_concurent: unknown key; "
        "did you mean 'max_concurrent'?",
        f"  {path}: profiles.payments.bulkhead.max_concurrent: required",
        f"  {path}: routes.'api.example': no profile named 'paymnets'",
    ]


def test_a_missing_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope.toml")]) == 1
    assert "cannot be read" in capsys.readouterr().err


def test_the_command_line_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "httpx_resilience", "check", str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "payments" in result.stdout


def test_passwords_in_urls_are_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "secret.toml"
    path.write_text(
        "[profiles.api]\n"
        'rate_limit = { rate = 5, backend = { url = "redis://app:s3cret@cache:6379/0" } }\n'
        'fallback = { alternate = { base_url = "https://bot:hunter2@mirror.example/" } }\n'
    )
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out
    assert "hunter2" not in out
    assert "redis://app:***@cache:6379/0" in out
    assert "https://bot:***@mirror.example/" in out


def test_a_bad_redis_url_is_reported_with_its_password_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        "[profiles.api]\n"
        'rate_limit = { rate = 5, backend = { url = "redis://app:s3cret@cache:x" } }\n'
    )
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "s3cret" not in err
    assert "got 'redis://app:***@cache:x'" in err


def test_the_redis_backends_description_holds_no_password() -> None:
    registry = Registry.from_mapping(
        {
            "profiles": {
                "api": {"rate_limit": {"rate": 5, "backend": {"url": "redis://a:s3cret@h:1/0"}}}
            }
        },
        environ={},
    )
    pipeline = registry.get("api")
    assert "s3cret" not in repr(registry.describe())
    assert "s3cret" not in repr(pipeline.policies)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://app:s3cret@cache:6379/0", "redis://app:***@cache:6379/0"),
        ("rediss://:s3cret@cache", "rediss://:***@cache"),
        ("redis://cache:6379", "redis://cache:6379"),
        ("redis://app@cache", "redis://app@cache"),
        ("https://u:p@mirror.example/a@b", "https://u:***@mirror.example/a@b"),
        ("not a url", "not a url"),
    ],
)
def test_masked_url_hides_only_the_password(url: str, shown: str) -> None:
    assert masked_url(url) == shown


@pytest.mark.parametrize("command", ["check", "demo"])
def test_help_shows_no_raw_markup(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    shown = capsys.readouterr().out
    assert "``" not in shown
    if command == "check":
        assert "HTTPX_RESILIENCE__... overrides" in " ".join(shown.split())
