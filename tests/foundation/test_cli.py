"""The `xbot` command as a user meets it: real subprocesses, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.foundation.conftest import subprocess_env

XBOT = [sys.executable, "-m", "xbot_assets.cli"]


def run_xbot(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*XBOT, *args],
        cwd=tmp_path,
        env=subprocess_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_settings_prints_resolved_defaults(tmp_path: Path) -> None:
    proc = run_xbot(tmp_path, "settings", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["app_env"] == "local"
    assert data["live_posts"] is False
    assert data["resolved"]["poster"] == "sandbox"
    assert data["resolved"]["redis_prefix"] == "local:"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"LIVE_POSTS": "true"}, "LIVE_POSTS"),
        ({"APP_ENV": "production"}, "DATABASE_URL"),
        (
            {"APP_ENV": "staging", "DATABASE_URL": "sqlite:///s.db", "REDIS_PREFIX": "prod:"},
            "REDIS_PREFIX=stg:",
        ),
    ],
)
def test_invalid_combination_exits_2_with_one_line(
    tmp_path: Path, env: dict[str, str], needle: str
) -> None:
    proc = run_xbot(tmp_path, "settings", **env)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert proc.stdout == ""


def test_settings_masks_secrets_in_output(tmp_path: Path) -> None:
    secret = "sk-proj-CLISECRET987"
    proc = run_xbot(
        tmp_path,
        "settings",
        OPENAI_API_KEY=secret,
        DATABASE_URL="postgresql://bot:dbpass-secret@127.0.0.1/x",
        APP_ENV="staging",
    )
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout + proc.stderr
    assert "dbpass-secret" not in proc.stdout + proc.stderr
    assert "***" in proc.stdout


def test_unexpected_live_posts_value_warns_on_stderr(tmp_path: Path) -> None:
    proc = run_xbot(tmp_path, "settings", LIVE_POSTS="yes")
    assert proc.returncode == 0
    assert "LIVE_POSTS='yes' is treated as false" in proc.stderr
