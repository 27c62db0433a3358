"""`xbot run` over a Dagster instance kept from a store that is gone, or another sandbox.

Seen on 2026-12-07: with `.xbot` deleted and `.dagster_home` kept, `make run` ran 0 Dagster runs,
posted nothing and exited 0 ("22 de-duplicated by run key"): the new store restarts the
simulated clock at the sandbox's epoch, and every run key of the new timeline was the old
one's. Now the job refuses (exit 2) before writing anything and says what to remove; doing
what it says gives a run that posts.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("orchestration_main_job_instance")

XBOT = Path(sys.executable).with_name("xbot")
RUN = ("--days", "0.3", "--no-progress")
"""Short: the runs of the first simulated hours (the refill, the schedules) are enough to
collide; before the fix the second run de-duplicated them all and exited 0."""


def _xbot(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XBOT_", "SANDBOX_", "REDIS_", "DATABASE_", "X_", "OPENAI_"))
    }
    env.update(
        APP_ENV="local",
        XBOT_HOME=str(root / "xbot_home"),
        DAGSTER_HOME=str(root / "dagster_home"),
        XBOT_DBT_KEEP_WARM="0",
    )
    return subprocess.run(
        [str(XBOT), *args], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )


def _runs_line(stdout: str) -> tuple[int, int]:
    """(Dagster runs, run requests de-duplicated by run key) from the summary's first line."""
    match = re.search(r"\((\d+) Dagster runs, (\d+) de-duplicated by run key", stdout)
    assert match, stdout
    return int(match.group(1)), int(match.group(2))


def _store_rows(root: Path) -> dict[str, int]:
    with sqlite3.connect(root / "xbot_home" / "xbot.db") as db:
        return {
            table: db.execute(f"select count(*) from {table}").fetchone()[0]
            for table in ("tweets", "bot_config", "accounts", "audit_log")
        }


def _run_count(root: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    import dagster as dg

    home = str(root / "dagster_home")
    with monkeypatch.context() as patch:
        patch.setenv("DAGSTER_HOME", home)  # the instance's dagster.yaml reads it
        with dg.DagsterInstance.from_config(home) as instance:
            return len(instance.get_run_records())


def test_a_new_store_over_a_kept_instance_is_refused_until_both_start_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder in ("xbot_home", "dagster_home"):
        (tmp_path / folder).mkdir()
    assert _xbot(tmp_path, "migrate").returncode == 0
    first = _xbot(tmp_path, "run", *RUN)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "BetaWarning" not in first.stderr  # the known beta warnings are silenced at load
    runs, deduplicated = _runs_line(first.stdout)
    assert runs >= 3 and deduplicated == 0
    runs_before = _run_count(tmp_path, monkeypatch)

    # The user deletes the store only (as `rm -rf .xbot`) and starts again.
    shutil.rmtree(tmp_path / "xbot_home")
    (tmp_path / "xbot_home").mkdir()
    assert _xbot(tmp_path, "migrate").returncode == 0
    rows_before = _store_rows(tmp_path)
    refused = _xbot(tmp_path, "run", *RUN)
    assert refused.returncode == 2, (refused.stdout[-1500:], refused.stderr[-1500:])
    assert "make clean" in refused.stderr and "DAGSTER_HOME" in refused.stderr
    assert str(tmp_path / "dagster_home") in refused.stderr
    assert "Traceback" not in refused.stderr
    # Nothing written: no run launched, no post or config row in the new store.
    assert _run_count(tmp_path, monkeypatch) == runs_before
    assert _store_rows(tmp_path) == rows_before

    # What the message says: an empty Dagster home (as `make clean` leaves), and the run does
    # what the first did (same seed, same timeline) instead of de-duplicating it away.
    shutil.rmtree(tmp_path / "dagster_home")
    (tmp_path / "dagster_home").mkdir()
    again = _xbot(tmp_path, "run", *RUN)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _runs_line(again.stdout) == (runs, 0)

    # Another seed over the same store: another sandbox, whose clock restarts at its epoch (the
    # same silent collision, and posts naming tweets that sandbox never had): refused too.
    rows_before = _store_rows(tmp_path)
    other = _xbot(tmp_path, "run", *RUN, "--seed", "3")
    assert other.returncode == 2, (other.stdout[-1500:], other.stderr[-1500:])
    assert "scenario 'default', seed 7" in other.stderr and "seed 3" in other.stderr
    assert "XBOT_HOME=" in other.stderr and "make clean" in other.stderr
    assert _store_rows(tmp_path) == rows_before
    assert _runs_line(_xbot(tmp_path, "run", *RUN).stdout)[1] == 0  # its own seed runs on


def test_a_second_xbot_run_on_a_store_exits_2_while_the_first_runs(tmp_path: Path) -> None:
    """Two main jobs on one store would both launch every run (each reads the run keys before
    either launches). The first holds XBOT_HOME/main_job.lock; the second exits 2 naming its pid
    and writes nothing; once the first ends, the lock is free again."""
    import fcntl

    from xbot_assets.config import load_settings
    from xbot_assets.timeline import LOCK_FILE, one_main_job

    for folder in ("xbot_home", "dagster_home"):
        (tmp_path / folder).mkdir()
    assert _xbot(tmp_path, "migrate").returncode == 0
    rows_before = _store_rows(tmp_path)
    with (tmp_path / "xbot_home" / LOCK_FILE).open("a+") as held:  # a first run, by its lock
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("424242\n")
        held.flush()
        second = _xbot(tmp_path, "run", *RUN)
    assert second.returncode == 2, (second.stdout[-1500:], second.stderr[-1500:])
    assert "another `xbot run` (pid 424242) is running" in second.stderr
    assert _store_rows(tmp_path) == rows_before

    settings = load_settings(env_file=None, xbot_home=tmp_path / "xbot_home")
    with (
        one_main_job(settings),
        pytest.raises(RuntimeError, match=rf"pid {os.getpid()}\)"),
        one_main_job(settings),
    ):
        pass
    with one_main_job(settings):  # released when the first ended
        pass


class _Config:
    """Only ``get_config``: what the check reads of the store."""

    def __init__(self, values: dict[str, object]) -> None:
        self.values = values

    def get_config(self, key: str, default: object = None) -> object:
        return self.values.get(key, default)


@pytest.mark.parametrize(
    ("ran", "until", "start", "refused"),
    [
        (None, None, "2026-01-05T00:00", None),  # a new store
        ({"scenario": "default", "seed": 7}, "2026-01-06T00:00", "2026-01-06T00:00", None),
        # `xbot post` moved the sandbox's clock to a slot after the last run: runs on from there
        ({"scenario": "default", "seed": 7}, "2026-01-06T00:00", "2026-01-06T09:30", None),
        ({"scenario": "default", "seed": 3}, "2026-01-06T00:00", "2026-01-07T00:00", "another"),
        ({"scenario": "drift", "seed": 7}, None, "2026-01-05T00:00", "another"),
        # the journal removed: the clock went back behind the store's
        ({"scenario": "default", "seed": 7}, "2026-01-06T00:00", "2026-01-05T00:00", "journal"),
        (None, "2026-01-06T00:00", "2026-01-05T00:00", "journal"),  # a store from before the key
    ],
)
def test_the_store_runs_on_only_its_own_sandboxs_clock(
    ran: dict[str, object] | None, until: str | None, start: str, refused: str | None
) -> None:
    from datetime import UTC, datetime

    from xbot_assets.config import load_settings
    from xbot_assets.timeline import SANDBOX_KEY, UNTIL_KEY, check_store_follows_sandbox

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    values: dict[str, object] = {SANDBOX_KEY: ran} if ran else {}
    if until:
        values[UNTIL_KEY] = at(until).isoformat()
    settings = load_settings(env_file=None, sandbox_scenario="default", sandbox_seed=7)
    if refused is None:
        check_store_follows_sandbox(_Config(values), settings, at(start))
    else:
        with pytest.raises(RuntimeError, match=refused):
            check_store_follows_sandbox(_Config(values), settings, at(start))
