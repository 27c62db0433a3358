"""The health server on loopback, in healthy and broken states, answering real HTTP requests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from tests.ops.conftest import Store, ThrowawayRedis, add_account, make_settings
from xbot_assets.content.base import Usage
from xbot_assets.content.budget import BotConfigBudgetLedger
from xbot_assets.health.checks import HealthContext, Thresholds
from xbot_assets.health.server import HealthServer
from xbot_assets.ops.audit import recent_audit
from xbot_assets.ops.component_status import latest_component_statuses, write_component_status
from xbot_assets.ops.learning_status import record_model_promotion, record_policy_estimates
from xbot_assets.posting.base import PosterBase, PostResult, Rejected, SessionStatus
from xbot_assets.posting.ledger import PostingLedger, RateCaps
from xbot_assets.posting.service import PostingService
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.durable.migrate import upgrade
from xbot_assets.store.durable.models import CandidateInput
from xbot_assets.store.durable.schema import post_attempts, tweets
from xbot_assets.store.hot.brake import EmergencyBrake
from xbot_assets.store.hot.keys import KeySpace


def insert_posted(store: Store, n: int, *, at: datetime | None = None) -> list[int]:
    """Rows as the posting protocol leaves them after a successful post (ids only matter)."""
    at = at or datetime.now(UTC)
    ids = []
    with store.engine.begin() as conn:
        for i in range(n):
            tid = conn.execute(
                insert(tweets).values(
                    environment="local",
                    account_id=store.account_id,
                    text=f"secret post text {i} {at.timestamp()}",
                    content_hash=f"h{i}-{at.timestamp()}",
                    status="posted",
                    x_id=str(1000 + i),
                    scores={},
                    scheduled_at=at,
                    posted_at=at,
                    metadata={},
                    created_at=at,
                    updated_at=at,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                insert(post_attempts).values(
                    environment="local",
                    attempt_id=f"a-{tid}",
                    tweet_id=tid,
                    account_id=store.account_id,
                    started_at=at,
                    finished_at=at,
                    outcome="posted",
                    x_id=str(1000 + i),
                )
            )
            ids.append(int(tid))
    return ids


def serve(store: Store, **ctx_kwargs: object) -> HealthServer:
    ctx = HealthContext(store.settings, **ctx_kwargs)  # type: ignore[arg-type]
    return HealthServer(ctx, port=0).start()


@pytest.fixture
def server(store: Store) -> Iterator[HealthServer]:
    insert_posted(store, 1)
    srv = serve(store)
    yield srv
    srv.stop()


def get(srv: HealthServer, path: str) -> httpx.Response:
    return httpx.get(srv.url + path, timeout=10)


def checks_of(resp: httpx.Response) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in resp.json()["checks"]}


def test_healthz_and_readyz_healthy(server: HealthServer, store: Store) -> None:
    assert server.host == "127.0.0.1" and server.port > 0
    live = get(server, "/healthz")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = get(server, "/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["ready"] is True and body["status"] == "ok"
    checks = checks_of(ready)
    assert set(checks) == {
        "durable_store",
        "redis",
        "brake",
        "poster_session",
        "last_post",
        "metrics_collection",
        "components",
    }
    assert all(c["status"] == "ok" for c in checks.values()), checks
    assert checks["redis"]["data"] == {"configured": False, "fallback_active": True}
    # the outcome is recorded in system_health by the health server itself
    rows = latest_component_statuses(store.engine, environment="local")
    assert rows["health_server"].status == "ok"
    assert get(server, "/nope").status_code == 404


def test_readyz_fails_when_store_is_behind_its_schema(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    upgrade(settings.resolved_database_url, "0001")
    srv = HealthServer(HealthContext(settings), port=0).start()
    try:
        resp = get(srv, "/readyz")
    finally:
        srv.stop()
    assert resp.status_code == 503
    checks = checks_of(resp)
    assert checks["durable_store"]["status"] == "down"
    assert "xbot migrate" in str(checks["durable_store"]["detail"])
    assert checks["durable_store"]["data"]["current"] == "0001"  # type: ignore[index]
    assert checks["last_post"]["detail"] == "not checked: the durable store is not ready"


def test_readyz_fails_on_a_never_migrated_store(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    srv = HealthServer(HealthContext(settings), port=0).start()
    try:
        resp = get(srv, "/readyz")
        metrics = get(srv, "/metrics")
    finally:
        srv.stop()
    assert resp.status_code == 503
    assert "never migrated" in str(checks_of(resp)["durable_store"]["detail"])
    # /metrics still answers, and says the store did not
    assert metrics.status_code == 200
    ups = {
        s.labels["source"]: s.value
        for f in text_string_to_metric_families(metrics.text)
        if f.name == "xbot_scrape_source_up"
        for s in f.samples
    }
    assert ups["durable_store"] == 0


def test_readyz_with_redis_up_then_stopped(
    store: Store, throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    insert_posted(store, 1)
    settings = make_settings(
        tmp_path / "home", redis_url=throwaway_redis.url, redis_prefix="testops:"
    )
    srv = HealthServer(HealthContext(settings), port=0).start()
    strict = HealthServer(HealthContext(settings, redis_required=True), port=0).start()
    try:
        up = get(srv, "/readyz")
        assert up.status_code == 200, up.text
        assert checks_of(up)["redis"]["status"] == "ok"
        throwaway_redis.stop()
        down = get(srv, "/readyz")
        strict_down = get(strict, "/readyz")
        metrics = get(srv, "/metrics")
    finally:
        srv.stop()
        strict.stop()
    # the durable store carries the hot path: degraded, still ready
    assert down.status_code == 200
    assert down.json()["status"] == "degraded"
    redis_check = checks_of(down)["redis"]
    assert redis_check["status"] == "degraded"
    assert "fallback active" in str(redis_check["detail"])
    # an operator who requires Redis gets a 503
    assert strict_down.status_code == 503
    assert checks_of(strict_down)["redis"]["status"] == "down"
    ups = {
        s.labels["source"]: s.value
        for f in text_string_to_metric_families(metrics.text)
        if f.name == "xbot_scrape_source_up"
        for s in f.samples
    }
    assert ups == {"durable_store": 1, "redis": 0, "brake": 1}


def test_readyz_fails_with_the_brake_on(store: Store, server: HealthServer) -> None:
    brake = EmergencyBrake(store.engine, "local", None, KeySpace("testops:"))
    brake.engage("spam wave", actor="operator:alice")
    resp = get(server, "/readyz")
    assert resp.status_code == 503
    check = checks_of(resp)["brake"]
    assert check["status"] == "down"
    assert "operator:alice" in str(check["detail"]) and "spam wave" in str(check["detail"])
    families = {f.name: f for f in text_string_to_metric_families(get(server, "/metrics").text)}
    assert families["xbot_brake_engaged"].samples[0].value == 1
    brake.release("wave over", actor="operator:alice")
    assert get(server, "/readyz").status_code == 200


def test_readyz_fails_when_posting_and_metrics_stall(tmp_path: Path, store: Store) -> None:
    insert_posted(store, 1, at=datetime.now(UTC) - timedelta(hours=30))
    srv = serve(store, thresholds=Thresholds(max_post_age=timedelta(hours=24)))
    try:
        resp = get(srv, "/readyz")
    finally:
        srv.stop()
    assert resp.status_code == 503
    checks = checks_of(resp)
    assert checks["last_post"]["status"] == "down"
    assert "no successful post for" in str(checks["last_post"]["detail"])
    assert checks["metrics_collection"]["status"] == "down"
    assert "1h metrics" in str(checks["metrics_collection"]["detail"])


def test_readyz_reports_a_poster_that_says_its_session_is_invalid(
    store: Store, server: HealthServer
) -> None:
    write_component_status(
        store.engine,
        environment="local",
        component="poster",
        status="down",
        message="401 from X: token expired, re-authorise",
    )
    resp = get(server, "/readyz")
    assert resp.status_code == 503
    poster = checks_of(resp)["poster_session"]
    assert poster["status"] == "down" and "token expired" in str(poster["detail"])


def test_api_poster_without_credentials_is_not_ready(tmp_path: Path, store: Store) -> None:
    settings = make_settings(
        tmp_path / "home", poster="api", x_bearer_token="app-only-bearer-SECRETVALUE"
    )
    insert_posted(store, 1)
    srv = HealthServer(HealthContext(settings), port=0).start()
    try:
        resp = get(srv, "/readyz")
    finally:
        srv.stop()
    assert resp.status_code == 503
    assert "X_OAUTH2_USER_TOKEN" in str(checks_of(resp)["poster_session"]["detail"])
    assert "SECRETVALUE" not in resp.text


def test_no_post_text_or_secret_in_any_answer(tmp_path: Path, store: Store) -> None:
    insert_posted(store, 3)
    settings = make_settings(
        tmp_path / "home",
        openai_api_key="sk-proj-NEVERSHOWN123456",
        redis_url="redis://:hunter2pass@127.0.0.1:1/0",
    )
    srv = HealthServer(HealthContext(settings), port=0).start()
    try:
        bodies = [get(srv, p).text for p in ("/healthz", "/readyz", "/metrics")]
    finally:
        srv.stop()
    for body in bodies:
        assert "secret post text" not in body
        assert "NEVERSHOWN" not in body
        assert "hunter2pass" not in body


class LoopbackX(PosterBase):
    """Stands in for X in this test: accepts posts, refuses the ones it is told to."""

    kind: Literal["sandbox", "api", "browser"] = "api"

    def __init__(self) -> None:
        self.next_id = 5000
        self.refuse: set[str] = set()

    @property
    def targets_loopback(self) -> bool:
        return True

    def post(self, text: str, *, reply_to: str | None = None) -> PostResult:
        if text in self.refuse:
            raise Rejected("X refused it", may_have_posted=False)
        self.next_id += 1
        return PostResult(x_id=str(self.next_id), text=text)

    def check_session(self) -> SessionStatus:
        return SessionStatus(ok=True)

    def close(self) -> None:
        pass


Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: HealthServer) -> Scrape:
    resp = get(server, "/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    out: Scrape = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_counters_move_as_posts_are_made(store: Store) -> None:
    """Posts go through the real posting service and ledger; the scrape sees each one."""
    ledger = PostingLedger(store.engine, "local")
    x = LoopbackX()
    caps = RateCaps(max_posts_per_hour=100, max_posts_per_day=100, min_spacing=timedelta(0))
    service = PostingService(ledger, x, account_id=store.account_id, caps=caps)
    srv = serve(store)
    try:
        posted = ("xbot_posts_total", (("outcome", "posted"),))
        failed = ("xbot_posts_total", (("outcome", "failed"),))
        queued = ("xbot_posts_in_state", (("status", "queued"),))
        before = scrape(srv)
        assert before[posted] == 0 and before[failed] == 0
        now = datetime.now(UTC)
        texts = [f"How to test python number {i}" for i in range(3)]
        for text in texts:
            ledger.enqueue(store.account_id, [text], scheduled_at=now, arm="how_to:python")
        x.refuse.add(texts[2])
        assert scrape(srv)[queued] == 3
        assert service.post_next().status == "posted"
        middle = scrape(srv)
        assert middle[posted] == 1 and middle[queued] == 2
        assert service.post_next().status == "posted"
        assert service.post_next().status == "failed"
        after = scrape(srv)
        assert after[posted] == 3 - 1 and after[failed] == 1 and after[queued] == 0
        assert after[("xbot_post_attempts_total", (("outcome", "posted"),))] == 2
        assert after[("xbot_post_attempts_total", (("outcome", "failed"),))] == 1
        assert after[("xbot_last_event_age_seconds", (("event", "post"),))] < 60
        assert after[("xbot_audit_events_total", (("event_type", "post.failed"),))] == 1
        # candidates rejected by the guard are counted by reason, incrementally
        write_candidates(store, [(False, ["profanity", "too_long"]), (True, [])])
        first = scrape(srv)
        write_candidates(store, [(False, ["profanity"])])
        second = scrape(srv)
        key = ("xbot_guard_rejections_total", (("reason", "profanity"),))
        assert first[key] == 1 and second[key] == 2
        assert second[("xbot_guard_rejections_total", (("reason", "too_long"),))] == 1
        assert second[("xbot_candidates_total", (("verdict", "rejected"),))] == 2
        assert second[("xbot_candidates_total", (("verdict", "passed"),))] == 1
        # AI spend as the content layer's budget ledger records it
        assert second[("xbot_ai_spend_usd_today", ())] == 0
        budget = BotConfigBudgetLedger(DurableStore(store.engine, "local"))
        budget.add(datetime.now(UTC).date(), Usage(1000, 500, 0.25))
        budget.add(datetime.now(UTC).date(), Usage(1000, 500, 0.5))
        spent = scrape(srv)
        assert spent[("xbot_ai_spend_usd_today", ())] == pytest.approx(0.75)
        assert spent[("xbot_ai_calls_today", ())] == 2
    finally:
        srv.stop()


def write_candidates(store: Store, verdicts: list[tuple[bool, list[str]]]) -> None:
    durable = DurableStore(store.engine, "local")
    durable.record_candidates(
        store.account_id,
        [
            CandidateInput(
                text=f"candidate {uuid.uuid4().hex}", guard_passed=passed, guard_reasons=reasons
            )
            for passed, reasons in verdicts
        ],
    )


def test_health_server_against_postgres(pg_database: str, tmp_path: Path) -> None:
    upgrade(pg_database)
    engine = make_engine(pg_database)
    add_account(engine)
    settings = make_settings(tmp_path / "home", database_url=pg_database)
    srv = HealthServer(HealthContext(settings, engine=engine), port=0).start()
    try:
        resp = get(srv, "/readyz")
        metrics = get(srv, "/metrics")
    finally:
        srv.stop()
        engine.dispose()
    assert checks_of(resp)["durable_store"]["status"] == "ok", resp.text
    assert resp.status_code == 200  # no post yet is "degraded", still ready
    assert json.loads(resp.text)["status"] == "degraded"
    assert "xbot_posts_total" in metrics.text


def test_learning_figures_reach_metrics(store: Store, server: HealthServer) -> None:
    before = scrape(server)
    assert ("xbot_model_auc", ()) not in before  # nothing learned yet: no made-up value
    durable = DurableStore(store.engine, "local")
    record_model_promotion(
        durable,
        model="engagement_scorer",
        deployed="logistic_regression",
        metrics={"auc": 0.68, "log_loss": 0.61, "brier": float("nan")},
    )
    record_policy_estimates(durable, regret_estimate=0.012, values={"thompson_current": 0.05})
    durable.set_config(
        "learned",
        {"arm_probabilities": {"how_to:python": 0.7, "list:ai": 0.3}, "cold_start": False},
        actor="learning_engine",
    )
    after = scrape(server)
    assert after[("xbot_model_auc", ())] == pytest.approx(0.68)
    assert after[("xbot_regret_estimate", ())] == pytest.approx(0.012)
    assert after[("xbot_learned_arm_probability", (("arm", "how_to:python"),))] == 0.7
    promoted = recent_audit(store.engine, environment="local", event_type="model.promoted")
    assert promoted[0]["actor"] == "learning_engine"
    assert promoted[0]["data"]["deployed"] == "logistic_regression"


def test_queue_metrics_from_redis_streams(
    store: Store, throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    """Depths, lag, pending, dead letters and reclaims as the hot path's queues leave them."""
    import redis as redis_lib

    from xbot_assets.store.hot.streams import QueuePolicy, StreamQueue

    prefix = f"t{uuid.uuid4().hex[:8]}:"
    settings = make_settings(tmp_path / "home", redis_url=throwaway_redis.url, redis_prefix=prefix)
    client = redis_lib.Redis.from_url(throwaway_redis.url, decode_responses=True)
    queue = StreamQueue(
        client, KeySpace(prefix), "pending_posts", policy=QueuePolicy(max_attempts=1)
    )
    queue.enqueue_many([(f"k{i}", {"tweet_id": i}) for i in range(5)])
    delivered = queue.read("worker-a", count=3)  # 3 delivered (pending), 2 still undelivered
    queue.fail(delivered[0], "boom")  # max_attempts=1: dead-lettered
    srv = HealthServer(HealthContext(settings), port=0).start()
    try:
        first = scrape(srv)
        # a worker that died holding an entry: reclaimed as stuck, dead-lettered
        queue.reclaim_stuck("worker-b", idle_ms=0)
        second = scrape(srv)
    finally:
        srv.stop()
        client.close()
    q = (("queue", "pending_posts"),)
    assert first[("xbot_queue_entries", (("priority", "normal"), ("queue", "pending_posts")))] == 5
    assert first[("xbot_queue_lag", q)] == 2
    assert first[("xbot_queue_pending", q)] == 2
    assert first[("xbot_queue_dead_letters", q)] == 1
    assert first[("xbot_queue_dead_letters_stuck", q)] == 0
    assert first[("xbot_queue_oldest_pending_age_seconds", q)] >= 0
    assert second[("xbot_queue_pending", q)] == 0
    assert second[("xbot_queue_dead_letters", q)] == 3
    assert second[("xbot_queue_dead_letters_stuck", q)] == 2
    assert second[("xbot_scrape_source_up", (("source", "redis"),))] == 1


def test_postgres_late_commits_are_held_back_then_counted(pg_database: str, tmp_path: Path) -> None:
    """On Postgres ids are given before commit: fresh rows wait one settle period, then count."""
    from xbot_assets.health.metrics import POSTGRES_SETTLE, DurableStateCollector

    upgrade(pg_database)
    engine = make_engine(pg_database)
    try:
        account_id = add_account(engine)
        DurableStore(engine, "local").record_candidates(
            account_id,
            [CandidateInput(text="a candidate", guard_passed=False, guard_reasons=["markup"])],
        )
        settings = make_settings(tmp_path / "home", database_url=pg_database)
        clock_now = [datetime.now(UTC)]
        ctx = HealthContext(settings, engine=engine, clock=lambda: clock_now[0])
        collector = DurableStateCollector(ctx)

        def rejected() -> float:
            for family in collector.collect():
                if family.name == "xbot_guard_rejections":
                    return sum(s.value for s in family.samples if s.labels["reason"] == "markup")
            return 0.0

        assert rejected() == 0  # younger than the settle period: not counted yet
        clock_now[0] += POSTGRES_SETTLE + timedelta(seconds=5)
        assert rejected() == 1
        assert rejected() == 1  # counted once
    finally:
        engine.dispose()
