"""`xbot brake` input checks (issue 17 item 11, issue 20): real subprocesses on Postgres.

The reason is validated before the store is touched, and the action is a parser choice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

XBOT = [sys.executable, "-m", "xbot_assets.cli"]


def _xbot(tmp_path: Path, pg_url: str, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        XBOT_HOME=str(tmp_path / "home"),
        APP_ENV="local",
        DATABASE_URL=pg_url,
        XBOT_ACTOR="operator:tester",
        LANG="C.UTF-8",
        COLUMNS="200",
    )
    return subprocess.run(
        [*XBOT, *args], cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False
    )


def _engaged(pg_url: str) -> bool:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "select value from bot_config where environment = 'local' and key = 'brake'"
        ).fetchone()
    return bool(row and row[0].get("engaged"))


@pytest.mark.parametrize(
    ("reason", "needle"),
    [
        (b"\xff", b"0xff, which is not UTF-8"),
        (b"stop\x1b[2Jnow", b"control character U+001B"),
        (b"a" * 501, b"keep it to 500"),
    ],
)
def test_bad_reason_is_named_before_the_store_is_touched(
    tmp_path: Path, pg_url: str, reason: bytes, needle: bytes
) -> None:
    """Issue 17 item 11: `xbot brake on --reason $'\\xff'` on Postgres said the store "did not
    answer" (it had refused the text). The reason is checked first and the error says what is
    wrong with it; the brake stays as it was."""
    proc = _xbot(tmp_path, pg_url, "brake", "on", "--reason", reason)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, err
    assert needle in proc.stderr, err
    assert "did not answer" not in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert not _engaged(pg_url)
    ok = _xbot(tmp_path, pg_url, "brake", "on", "--reason", "incident 7 \N{EM DASH} ünïcode")
    assert ok.returncode == 0, ok.stderr
    assert _engaged(pg_url)


def test_brake_action_is_a_choice(tmp_path: Path, pg_url: str) -> None:
    """Issue 20: `xbot brake` took its action as free text; now the parser offers the choices."""
    help_text = _xbot(tmp_path, pg_url, "brake", "--help").stdout.decode()
    assert "<on|off|status>" in help_text
    proc = _xbot(tmp_path, pg_url, "brake", "maybe")
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "'maybe' is not one of" in err and "'on', 'off', 'status'" in err
