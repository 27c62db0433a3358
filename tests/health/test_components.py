"""Self-reporting components: a stalled one is named by /readyz and flagged in /metrics and
``xbot status``; a failing one keeps its last error next to its last success."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import Store
from xbot_assets.health.checks import HealthContext
from xbot_assets.health.server import HealthServer
from xbot_assets.ops.component_health import (
    component_health,
    forget_heartbeats,
    report,
    reporting,
)
from xbot_assets.ops.status import collect_status

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _clock() -> datetime:
    return NOW


def test_readyz_names_a_stalled_component(store: Store) -> None:
    forget_heartbeats()
    env = "local"
    # the collector succeeded 13 h ago (interval 6 h: stalled after 12 h); the posting sensor
    # ticked a minute ago (fine); the poster succeeded 2 h ago (fine)
    report(
        store.engine, environment=env, component="metrics_collector", now=NOW - timedelta(hours=13)
    )
    report(
        store.engine, environment=env, component="sensor:posting_sensor",
        now=NOW - timedelta(minutes=1), interval=timedelta(minutes=5),
    )  # fmt: skip
    report(store.engine, environment=env, component="poster", now=NOW - timedelta(hours=2))
    server = HealthServer(HealthContext(store.settings, clock=_clock), port=0).start()
    try:
        ready = httpx.get(server.url + "/readyz", timeout=10)
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
    finally:
        server.stop()
    checks = {c["name"]: c for c in ready.json()["checks"]}
    components = checks["components"]
    assert components["status"] == "degraded"
    assert "metrics_collector stalled" in components["detail"]
    assert components["data"]["stalled"] == ["metrics_collector"]
    assert ready.status_code == 200  # degraded, not down: it can still post
    stalled = {
        s.labels["component"]: s.value
        for f in text_string_to_metric_families(metrics)
        for s in f.samples
        if s.name == "xbot_component_stalled"
    }
    assert stalled == {"metrics_collector": 1.0, "sensor:posting_sensor": 0.0, "poster": 0.0}
    # the sensor stalls too once its heartbeats stop for two intervals
    later = NOW + timedelta(minutes=15)
    health = component_health(store.engine, environment=env, now=later)
    assert health["sensor:posting_sensor"].stalled and not health["poster"].stalled


def test_status_shows_last_success_last_error_and_lag(store: Store) -> None:
    forget_heartbeats()
    env = "local"
    times = iter([NOW - timedelta(hours=3), NOW - timedelta(hours=1)])
    with reporting(
        store.engine, environment=env, component="poster", clock=lambda: next(times)
    ) as f:
        f["lag_s"] = 42.0
    try:
        with reporting(
            store.engine, environment=env, component="poster", clock=lambda: next(times)
        ):
            raise RuntimeError("X said no (token=abc123secret)")
    except RuntimeError:
        pass
    status = collect_status(HealthContext(store.settings, clock=_clock))
    poster = status["components"]["poster"]
    assert poster["status"] == "down" and poster["reported_status"] == "down"
    assert poster["last_success"] == (NOW - timedelta(hours=3)).isoformat()
    assert poster["last_error_at"] == (NOW - timedelta(hours=1)).isoformat()
    assert "X said no" in poster["last_error"] and "abc123secret" not in poster["last_error"]
    assert status["x_api_budget"]["reads_left"] == store.settings.x_api_reads_per_month


def test_sensor_heartbeats_are_throttled_but_status_changes_are_not(store: Store) -> None:
    forget_heartbeats()
    beat = timedelta(minutes=5)
    kwargs = {"environment": "local", "component": "sensor:x", "heartbeat": beat}
    assert report(store.engine, now=NOW, **kwargs)  # type: ignore[arg-type]
    assert not report(store.engine, now=NOW + timedelta(seconds=30), **kwargs)  # type: ignore[arg-type]
    assert report(store.engine, now=NOW + timedelta(seconds=60), status="down", **kwargs)  # type: ignore[arg-type]
    assert report(store.engine, now=NOW + timedelta(seconds=90), **kwargs)  # type: ignore[arg-type]
    assert report(store.engine, now=NOW + timedelta(minutes=7), **kwargs)  # type: ignore[arg-type]


def test_a_held_sensors_repeated_degraded_reason_is_a_heartbeat_but_failures_are_not(
    store: Store,
) -> None:
    """A sensor held by its Celery twin ticks every 30 s with the same ``degraded`` reason: one
    row per heartbeat (it wrote one per tick, ~120 an hour for posting_sensor). A new reason is
    written at once, and so is every ``down`` (each failure is an event)."""
    forget_heartbeats()
    beat = timedelta(minutes=5)
    kwargs = {"environment": "local", "component": "sensor:held", "heartbeat": beat}
    held = {"status": "degraded", "message": "stop posting_sensor of location xbot: ..."}
    written = [
        report(store.engine, now=NOW + timedelta(seconds=30 * i), **held, **kwargs)  # type: ignore[arg-type]
        for i in range(20)  # 10 minutes of ticks
    ]
    assert written == [True] + [False] * 9 + [True] + [False] * 9
    other = {"status": "degraded", "message": "stop refill_batch_sensor of location xbot: ..."}
    assert report(store.engine, now=NOW + timedelta(minutes=10), **other, **kwargs)  # type: ignore[arg-type]
    down = {"status": "down", "message": "boom"}
    assert report(store.engine, now=NOW + timedelta(minutes=11), **down, **kwargs)  # type: ignore[arg-type]
    assert report(store.engine, now=NOW + timedelta(minutes=11, seconds=30), **down, **kwargs)  # type: ignore[arg-type]
    rows = component_health(store.engine, environment="local", now=NOW + timedelta(minutes=12))
    assert rows["sensor:held"].reported_status == "down"


def test_a_held_sensor_rewrites_its_degraded_row_over_its_celery_namesakes_ok(
    store: Store,
) -> None:
    """The Celery location's posting_sensor writes ``ok`` heartbeats to the same component from
    another process; the held one's next tick writes ``degraded`` again at once, so the table
    (and the XbotComponentDegraded alert) does not say ``ok`` for most of each heartbeat."""
    from xbot_assets.ops.component_status import write_component_status

    forget_heartbeats()
    kwargs = {"environment": "local", "component": "sensor:twin", "heartbeat": timedelta(minutes=5)}
    held = {"status": "degraded", "message": "stop posting_sensor of location xbot: ..."}
    assert report(store.engine, now=NOW, **held, **kwargs)  # type: ignore[arg-type]
    assert not report(store.engine, now=NOW + timedelta(seconds=30), **held, **kwargs)  # type: ignore[arg-type]
    later = NOW + timedelta(seconds=45)
    write_component_status(  # the namesake's heartbeat, written by another process
        store.engine, environment="local", component="sensor:twin", status="ok", clock=lambda: later
    )
    assert report(store.engine, now=NOW + timedelta(seconds=60), **held, **kwargs)  # type: ignore[arg-type]
    rows = component_health(store.engine, environment="local", now=NOW + timedelta(seconds=61))
    assert rows["sensor:twin"].reported_status == "degraded"
