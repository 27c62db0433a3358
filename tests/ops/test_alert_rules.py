"""The shipped alert rules only name metrics the health server really exports."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import Store, ThrowawayRedis, make_settings
from xbot_assets.health.checks import HealthContext
from xbot_assets.health.metrics import build_registry
from xbot_assets.ops.learning_status import record_model_promotion
from xbot_assets.store.durable import DurableStore

RULES = Path(__file__).resolve().parents[2] / "xbot_assets/health/prometheus_rules.yml"


def test_alert_rules_reference_exported_metrics(
    store: Store, throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert all(r.get("alert") and r.get("annotations") for g in rules["groups"] for r in g["rules"])
    named = {m for e in exprs for m in re.findall(r"\b(xbot_[a-z0-9_]+)", e)}
    durable = DurableStore(store.engine, "local")
    record_model_promotion(durable, model="engagement_scorer", deployed="lr", metrics={"auc": 0.7})
    durable.record_health("poster", "ok")
    settings = make_settings(
        tmp_path / "home", redis_url=throwaway_redis.url, redis_prefix="rules:"
    )
    # a post, so that every "last event" series exists
    from tests.ops.test_health_server import insert_posted

    insert_posted(store, 1, at=datetime.now(UTC))
    ctx = HealthContext(settings)
    try:
        text = generate_latest(build_registry(ctx, with_process=False)).decode()
    finally:
        ctx.close()
    exported: set[str] = set()
    for family in text_string_to_metric_families(text):
        exported.update(s.name for s in family.samples)
    missing = sorted(named - exported)
    assert not missing, f"alert rules name metrics that are not exported: {missing}"
