"""The rehearsal clock: one time source (wall time at a speed factor from a fixed epoch) that the
bot's processes and the sandbox server compute alike; refused in production (exit 2)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.foundation.conftest import subprocess_env
from xbot_assets.cli import app
from xbot_assets.config import ConfigError, load_settings
from xbot_assets.defs.resources import XbotRuntime
from xbot_assets.engine.runtime import build_runtime
from xbot_assets.sandbox.clock import FollowClock
from xbot_assets.store.timebase import rehearsal_clock, settings_clock, utc_now

ROOT = Path(__file__).parents[2]
EPOCH = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)


def test_rehearsal_clock_runs_speed_times_faster_from_the_epoch() -> None:
    wall = [EPOCH]
    clock = rehearsal_clock(144, EPOCH, wall=lambda: wall[0])
    assert clock() == EPOCH
    wall[0] = EPOCH + timedelta(minutes=10)
    assert clock() == EPOCH + timedelta(days=1)  # 10 real minutes = one simulated day
    wall[0] = EPOCH + timedelta(seconds=1)
    assert clock() == EPOCH + timedelta(seconds=144)


def test_speed_one_or_unset_is_the_wall_clock(clean_env: Path) -> None:
    assert rehearsal_clock(1, EPOCH) is utc_now
    assert settings_clock(load_settings(env_file=None)) is utc_now
    with pytest.raises(ValueError, match="positive speed"):
        rehearsal_clock(0, EPOCH)


def test_settings_clock_follows_clock_speed_and_epoch(clean_env: Path) -> None:
    settings = load_settings(env_file=None, clock_speed=60, clock_epoch=EPOCH.isoformat())
    wall = EPOCH + timedelta(minutes=2)
    assert settings_clock(settings, wall=lambda: wall)() == EPOCH + timedelta(hours=2)


def test_clock_speed_is_refused_in_production(clean_env: Path) -> None:
    with pytest.raises(ConfigError, match="CLOCK_SPEED=60 is a rehearsal setting, refused"):
        load_settings(
            env_file=None,
            app_env="production",
            database_url="postgresql://u@h/db",
            poster="api",
            clock_speed=60,
            clock_epoch=EPOCH.isoformat(),
        )
    # staging and local accept it
    load_settings(
        env_file=None,
        app_env="staging",
        database_url="postgresql://u@h/db",
        clock_speed=60,
        clock_epoch=EPOCH.isoformat(),
    )


def test_clock_speed_needs_an_aware_epoch(clean_env: Path) -> None:
    with pytest.raises(ConfigError, match="CLOCK_SPEED needs CLOCK_EPOCH"):
        load_settings(env_file=None, clock_speed=60)
    with pytest.raises(ConfigError, match=r"CLOCK_EPOCH.*UTC offset"):
        load_settings(env_file=None, clock_speed=60, clock_epoch="2026-12-05T20:00:00")
    with pytest.raises(ConfigError, match="CLOCK_SPEED"):
        load_settings(env_file=None, clock_speed=0, clock_epoch=EPOCH.isoformat())


def test_production_refusal_is_exit_2_with_one_line(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "APP_ENV": "production",
        "DATABASE_URL": "postgresql://u@127.0.0.1/none",
        "POSTER": "api",
        "CLOCK_SPEED": "144",
        "CLOCK_EPOCH": EPOCH.isoformat(),
    }.items():
        monkeypatch.setenv(name, value)
    for argv in (["settings"], ["sandbox", "serve", "--port", "0"]):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2, (argv, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "CLOCK_SPEED" in lines[0] and "production" in lines[0]
    # the flag alone counts as the setting
    monkeypatch.delenv("CLOCK_SPEED")
    monkeypatch.delenv("CLOCK_EPOCH")
    result = CliRunner().invoke(app, ["sandbox", "serve", "--speed", "60", "--port", "0"])
    assert result.exit_code == 2 and "CLOCK_SPEED" in result.output


def test_runs_and_sensors_read_the_rehearsal_clock(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    epoch = datetime.now(UTC) - timedelta(seconds=10)
    monkeypatch.setenv("CLOCK_SPEED", "3600")
    monkeypatch.setenv("CLOCK_EPOCH", epoch.isoformat())
    expected = epoch + timedelta(hours=10)  # 10 real seconds at an hour per second
    now = XbotRuntime().now()
    assert expected <= now < expected + timedelta(hours=1)
    runtime = build_runtime(load_settings(env_file=None), handle="rehearsal_acct")
    assert expected <= runtime.now() < expected + timedelta(hours=1)
    # the in-process sandbox is moved to the same time
    assert expected <= runtime.sandbox.clock.now() < expected + timedelta(hours=1)


def test_follow_clock_follows_its_source_and_keeps_jumps() -> None:
    source = [EPOCH]
    clock = FollowClock(lambda: source[0])
    source[0] = EPOCH + timedelta(hours=3)
    assert clock.now() == EPOCH + timedelta(hours=3)
    clock.advance(timedelta(minutes=5))
    assert clock.now() == EPOCH + timedelta(hours=3, minutes=5)
    clock.set(EPOCH)
    source[0] = EPOCH + timedelta(hours=4)
    assert clock.now() == EPOCH + timedelta(hours=1)


def test_sandbox_server_and_bot_compute_the_same_time(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    epoch = datetime.now(UTC) - timedelta(minutes=1)
    env = subprocess_env(tmp_path, CLOCK_SPEED="60", CLOCK_EPOCH=epoch.isoformat())
    command = [sys.executable, "-m", "xbot_assets.cli", "sandbox", "serve", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                               cwd=tmp_path, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                before = datetime.now(UTC)
                body = httpx.get(f"http://127.0.0.1:{port}/__sandbox/clock", timeout=1).json()
                after = datetime.now(UTC)
                break
            except httpx.HTTPError:
                assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "xbot sandbox serve did not answer in 30 s"
                time.sleep(0.2)
        served = datetime.fromisoformat(body["now"].replace("Z", "+00:00"))
        low = rehearsal_clock(60, epoch, wall=lambda: before)()
        high = rehearsal_clock(60, epoch, wall=lambda: after)()
        # one hour after the epoch in simulated time, and exactly the bot's formula
        assert low - timedelta(seconds=1) <= served <= high + timedelta(seconds=1)
        assert served - epoch > timedelta(minutes=59)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
