"""No token, session file or cookie value reaches a log line, an audit row or a Dagster event."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from xbot_assets.posting.browser_poster import save_browser_session
from xbot_assets.posting.factory import make_poster, open_ledger, post_due
from xbot_assets.sandbox.platform import APP_BEARER_TOKEN
from xbot_assets.store.durable.schema import audit_log

from .conftest import api_settings

pytestmark = pytest.mark.usefixtures("no_quiet_hours")

CONSUMER_SECRET = "consumer-SECRET-b9f1e2"
TOKEN_SECRET = "token-SECRET-77aa01"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.fixture
def captured():
    handler = Capture()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)


def secrets_of(sandbox, state: Path) -> list[str]:
    values = [sandbox.account().user_token, APP_BEARER_TOKEN, CONSUMER_SECRET, TOKEN_SECRET]
    values.append(str(state))
    cookies = json.loads(state.read_text())["cookies"]
    values += [c["value"] for c in cookies if len(c["value"]) >= 8]
    assert len(values) >= 7  # auth_token and ct0 are among them
    return values


def audit_text(ledger) -> str:
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(audit_log.c.event_type, audit_log.c.data)).all()
    assert rows, "the runs must have written audit rows to check"
    return json.dumps([list(r) for r in rows], default=str)


def test_no_secret_in_logs_audit_or_dagster_events(
    sandbox, sandbox_url, sqlite_url, tmp_path, captured
):
    state = tmp_path / "private" / "session-state.json"
    account = sandbox.account()
    save_browser_session(
        sandbox_url, handle=account.handle, password=account.password, storage_state=state
    )
    secrets = secrets_of(sandbox, state)

    # 1. api poster with OAuth 1.0a user context (the sandbox reads oauth_token), a 226 and an
    #    auth failure on the way
    settings = api_settings(
        sandbox,
        sandbox_url,
        sqlite_url,
        x_oauth2_user_token=None,
        x_api_key="consumer-key",
        x_api_secret=CONSUMER_SECRET,
        x_access_token=account.user_token,
        x_access_token_secret=TOKEN_SECRET,
        browser_storage_state=state,
    )
    ledger = open_ledger(settings)
    acct = ledger.ensure_account(settings.x_handle)
    now = datetime.now(UTC)
    for text in (
        "AI agents need evals first",
        "Python decorators, explained",
        "Founders: hire slowly",
    ):
        ledger.enqueue(acct, [text], scheduled_at=now)
    outcomes = []
    sandbox.set_fault("automation_block", match="create_tweet", count=1)
    outcomes += post_due(settings, ledger=ledger).outcomes
    ledger.brake.release("test", actor="test")
    outcomes += post_due(settings, ledger=ledger).outcomes
    wrong = api_settings(
        sandbox, sandbox_url, sqlite_url, x_oauth2_user_token="wrong-but-SECRET-token"
    )
    outcomes += post_due(wrong, ledger=ledger).outcomes
    ledger.brake.release("test", actor="test")
    secrets.append("wrong-but-SECRET-token")

    # 2. browser poster with the saved session, then an expired session
    browser = api_settings(
        sandbox, sandbox_url, sqlite_url, poster="browser", browser_storage_state=state
    )
    poster = make_poster(browser)
    try:
        outcomes += post_due(browser, ledger=ledger, poster=poster).outcomes
        sandbox.set_fault("expired_session")
        ledger.enqueue(acct, ["Open source maintainers deserve funding"], scheduled_at=now)
        outcomes += post_due(browser, ledger=ledger, poster=poster).outcomes
    finally:
        poster.close()
        sandbox.clear_faults()
    statuses = [o.status for o in outcomes]
    assert "posted" in statuses and "stopped" in statuses

    # 3. the same run inside Dagster: its events and metadata
    ledger.brake.release("test", actor="test")
    ledger.enqueue(acct, ["Data science: plot before you model"], scheduled_at=now)

    @dg.asset
    def posting_run(context) -> dg.MaterializeResult:
        run = post_due(settings, ledger=ledger)
        context.log.info(f"posting outcomes: {run.as_dict()}")
        context.log.info(f"settings: {settings}")
        return dg.MaterializeResult(metadata={"run": dg.MetadataValue.json(run.as_dict())})

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([posting_run], instance=instance)
    assert result.success
    events = json.dumps(
        [str(e.dagster_event) + " " + str(e.user_message) for e in instance.all_logs(result.run_id)]
    )
    assert "posted" in events

    haystacks = {
        "log lines": "\n".join(captured.lines),
        "audit rows": audit_text(ledger),
        "outcomes": json.dumps([o.__dict__ for o in outcomes], default=str),
        "dagster events": events,
    }
    assert captured.lines, "logging must have been captured"
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a secret appears in {where}"
