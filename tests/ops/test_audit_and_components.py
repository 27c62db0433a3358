"""The audit trail, component status rows, and redaction of what operators see."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.ops.conftest import Store
from xbot_assets.health.checks import HealthContext, check_poster
from xbot_assets.ops.audit import EVENT_MODEL_PROMOTED, recent_audit, record_audit
from xbot_assets.ops.component_status import (
    latest_component_statuses,
    record_poster_session,
    track_component,
)
from xbot_assets.ops.redact import redact, safe_error
from xbot_assets.posting.base import SessionStatus
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.hot.brake import EmergencyBrake
from xbot_assets.store.hot.keys import KeySpace


def test_operator_state_changes_land_in_audit_log_with_who(store: Store) -> None:
    brake = EmergencyBrake(store.engine, "local", None, KeySpace("testops:"))
    brake.engage("suspicious replies", actor="operator:alice")
    brake.release("checked", actor="operator:bob")
    DurableStore(store.engine, "local").set_config(
        "max_posts_per_day", 8, actor="operator:carol", reason="slow down"
    )
    record_audit(
        store.engine,
        environment="local",
        event_type=EVENT_MODEL_PROMOTED,
        actor="learning",
        component="learning",
        data={"model": "scorer-v3", "auc": 0.71},
    )
    rows = recent_audit(store.engine, environment="local")
    seen = {(r["event_type"], r["actor"]) for r in rows}
    assert ("brake.engaged", "operator:alice") in seen
    assert ("brake.released", "operator:bob") in seen
    assert any(actor == "operator:carol" and "config" in kind for kind, actor in seen)
    assert (EVENT_MODEL_PROMOTED, "learning") in seen
    assert rows[0]["event_type"] == EVENT_MODEL_PROMOTED  # newest first
    # other environments never see them
    assert recent_audit(store.engine, environment="staging") == []


def test_audit_refuses_text_secrets_and_anonymous_changes(store: Store) -> None:
    with pytest.raises(ValueError, match="post text or secrets"):
        record_audit(
            store.engine,
            environment="local",
            event_type="post.manual",
            actor="operator:alice",
            component="cli",
            data={"text": "the whole post"},
        )
    with pytest.raises(ValueError, match="actor"):
        record_audit(store.engine, environment="local", event_type="x", actor="", component="cli")
    assert recent_audit(store.engine, environment="local") == []


def test_track_component_writes_ok_and_down(store: Store) -> None:
    with track_component(store.engine, environment="local", component="metrics_collector") as m:
        m["collected"] = 7
    rows = latest_component_statuses(store.engine, environment="local")
    assert rows["metrics_collector"].status == "ok"
    assert rows["metrics_collector"].metrics["collected"] == 7
    with (
        pytest.raises(RuntimeError),
        track_component(store.engine, environment="local", component="metrics_collector"),
    ):
        raise RuntimeError("X answered 503 for https://user:hunter2@api.x.com/2/tweets")
    row = latest_component_statuses(store.engine, environment="local")["metrics_collector"]
    assert row.status == "down" and "503" in (row.message or "")
    assert "hunter2" not in (row.message or "")


class _Poster:
    kind = "api"

    def __init__(self, status: SessionStatus) -> None:
        self.status = status

    def check_session(self) -> SessionStatus:
        return self.status


def test_poster_session_recorded_and_read_by_readiness(store: Store) -> None:
    ctx = HealthContext(store.settings, engine=store.engine)
    record_poster_session(store.engine, environment="local", poster=_Poster(SessionStatus(ok=True)))
    assert check_poster(ctx).status == "ok"
    record_poster_session(
        store.engine,
        environment="local",
        poster=_Poster(SessionStatus(ok=False, reason="401: token revoked")),
    )
    result = check_poster(ctx)
    assert result.status == "down" and "token revoked" in result.detail


def test_redaction() -> None:
    assert "s3cret" not in redact("connect postgresql://bot:s3cret@db:5432/x failed")
    assert "abc123" not in redact("password=abc123 host=db")
    assert "sk-proj-abcdefghijkl" not in redact("key sk-proj-abcdefghijkl rejected")
    line = safe_error(ValueError("redis://:pw@127.0.0.1:6379 refused " + "x" * 500))
    assert line.startswith("ValueError: redis://:***@127.0.0.1") and len(line) <= 300
    assert datetime.now(UTC).tzinfo is UTC
    assert "tok3n" not in redact("Authorization: Bearer tok3n.abc")
    assert redact("token revoked") == "token revoked"
