"""`xbot brake on|off|status` end to end: durable row, audit rows, Redis mirror, exit codes."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from xbot_assets.cli import app
from xbot_assets.store.hot.keys import KeySpace, scan_delete


def test_brake_cli_round_trip(tmp_path, monkeypatch, redis_client):
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in {
        "XBOT_HOME": str(tmp_path / "home"),
        "APP_ENV": "local",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "REDIS_PREFIX": prefix,
        "XBOT_ACTOR": "operator:tester",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    runner = CliRunner()
    try:
        missing = runner.invoke(app, ["brake", "status"])
        assert missing.exit_code == 2 and "xbot migrate" in missing.output
        assert runner.invoke(app, ["migrate"]).exit_code == 0
        assert runner.invoke(app, ["brake", "on"]).exit_code == 2  # a reason is required
        assert runner.invoke(app, ["brake", "maybe"]).exit_code == 2
        on = runner.invoke(app, ["brake", "on", "--reason", "incident 7"])
        assert on.exit_code == 0 and "brake ON" in on.output
        status = json.loads(runner.invoke(app, ["brake", "status", "--json"]).output)
        assert status["engaged"] is True and status["reason"] == "incident 7"
        assert status["by"] == "operator:tester" and status["redis_mirror"] is True
        assert redis_client.exists(KeySpace(prefix).key("brake")) == 1
        off = runner.invoke(app, ["brake", "off", "-r", "resolved"])
        assert off.exit_code == 0 and "brake off" in off.output
        engine = create_engine(f"sqlite:///{tmp_path / 'home' / 'xbot.db'}")
        from xbot_assets.store.durable.schema import audit_log

        with engine.connect() as conn:
            events = [
                r.event_type
                for r in conn.execute(select(audit_log.c.event_type).order_by(audit_log.c.id))
            ]
        engine.dispose()
        assert [e for e in events if e.startswith("brake.")] == ["brake.engaged", "brake.released"]
    finally:
        scan_delete(redis_client, KeySpace(prefix))
