"""Bad input to every repository function: a clear StoreError, and the store is unchanged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from xbot_assets.store.durable import MAX_TEXT_CHARS, DurableStore
from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.durable.errors import (
    AccountNotFoundError,
    CandidateNotFoundError,
    DuplicatePostError,
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
    PostNotFoundError,
    StoreError,
)
from xbot_assets.store.durable.models import AuditEvent, CandidateInput, MetricSnapshot
from xbot_assets.store.durable.schema import metadata

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NAIVE = datetime(2026, 3, 1, 12, 0)
MISSING = 987_654
OTHER_UUID = "00000000-0000-4000-8000-000000000000"


def _snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read as the owner (all environments)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key))]
                for t in metadata.sorted_tables
            }
    finally:
        engine.dispose()


def _snap(tweet_id: int, **kw: Any) -> MetricSnapshot:
    return MetricSnapshot(tweet_id=tweet_id, horizon="1h", collected_at=T0, **kw)


def _cases(
    st: DurableStore, ids: dict[str, Any]
) -> list[tuple[str, type[StoreError], Callable[[], Any]]]:
    acc, queued, posting, posted = ids["account"], ids["queued"], ids["posting"], ids["posted"]
    part, cand = ids["thread_part"], ids["candidate"]
    big = "x" * (MAX_TEXT_CHARS + 1)
    bad = InvalidInputError
    return [
        # accounts
        ("ensure_account wrong type", bad, lambda: st.ensure_account(123)),  # type: ignore[arg-type]
        ("ensure_account bad handle", bad, lambda: st.ensure_account("no spaces!")),
        ("ensure_account metadata", bad, lambda: st.ensure_account("ok", metadata="x")),  # type: ignore[arg-type]
        ("ensure_account NaN", bad, lambda: st.ensure_account("ok", metadata={"a": float("nan")})),
        ("get_account str id", bad, lambda: st.get_account("1")),  # type: ignore[arg-type]
        ("get_account zero", bad, lambda: st.get_account(0)),
        ("get_account missing", AccountNotFoundError, lambda: st.get_account(MISSING)),
        (
            "get_account_by_handle missing",
            AccountNotFoundError,
            lambda: st.get_account_by_handle("nobody"),
        ),
        # enqueue
        ("enqueue oversized", bad, lambda: st.enqueue_post(acc, big)),
        ("enqueue text type", bad, lambda: st.enqueue_post(acc, 42)),  # type: ignore[arg-type]
        ("enqueue empty text", bad, lambda: st.enqueue_post(acc, "   ")),
        ("enqueue NUL", bad, lambda: st.enqueue_post(acc, "a\x00b")),
        (
            "enqueue missing account",
            AccountNotFoundError,
            lambda: st.enqueue_post(MISSING, "fine text"),
        ),
        ("enqueue bool account", bad, lambda: st.enqueue_post(True, "fine text")),
        ("enqueue arm shape", bad, lambda: st.enqueue_post(acc, "t", arm="how_to_python")),
        ("enqueue arm case", bad, lambda: st.enqueue_post(acc, "t", arm="How:Python")),
        (
            "enqueue arm vs topic",
            bad,
            lambda: st.enqueue_post(acc, "t", arm="how_to:python", topic="ai"),
        ),
        ("enqueue naive time", bad, lambda: st.enqueue_post(acc, "t", scheduled_at=NAIVE)),
        ("enqueue score str", bad, lambda: st.enqueue_post(acc, "t", score="high")),  # type: ignore[arg-type]
        ("enqueue score nan", bad, lambda: st.enqueue_post(acc, "t", score=float("nan"))),
        ("enqueue scores list", bad, lambda: st.enqueue_post(acc, "t", scores=[1])),  # type: ignore[arg-type]
        (
            "enqueue metadata object",
            bad,
            lambda: st.enqueue_post(acc, "t", metadata={"o": object()}),
        ),
        (
            "enqueue hash override",
            bad,
            lambda: st.enqueue_post(acc, "t", content_hash_override="abc"),
        ),
        ("enqueue duplicate", DuplicatePostError, lambda: st.enqueue_post(acc, "queued post")),
        ("thread as str", bad, lambda: st.enqueue_thread(acc, "one string")),
        ("thread one part", bad, lambda: st.enqueue_thread(acc, ["only one"])),
        ("thread too long", bad, lambda: st.enqueue_thread(acc, [f"p{i}" for i in range(26)])),
        ("thread oversized part", bad, lambda: st.enqueue_thread(acc, ["fine", big])),
        ("thread part type", bad, lambda: st.enqueue_thread(acc, ["fine", None])),  # type: ignore[list-item]
        (
            "thread missing account",
            AccountNotFoundError,
            lambda: st.enqueue_thread(MISSING, ["a 1/2", "b 2/2"]),
        ),
        # claims
        ("claim account type", bad, lambda: st.claim_next_due("1")),  # type: ignore[arg-type]
        ("claim missing account", AccountNotFoundError, lambda: st.claim_next_due(MISSING)),
        ("claim naive now", bad, lambda: st.claim_next_due(acc, now=NAIVE)),
        ("claim_post missing", PostNotFoundError, lambda: st.claim_post(MISSING)),
        ("claim_post thread part", bad, lambda: st.claim_post(part)),
        # outcomes
        ("posted bad x_id", bad, lambda: st.mark_posted(posting, x_id="abc")),
        ("posted from queued", InvalidTransitionError, lambda: st.mark_posted(queued, x_id="1")),
        ("posted missing", PostNotFoundError, lambda: st.mark_posted(MISSING, x_id="1")),
        ("posted bad attempt", bad, lambda: st.mark_posted(posting, x_id="1", attempt_id="nope")),
        (
            "posted foreign attempt",
            bad,
            lambda: st.mark_posted(posting, x_id="1", attempt_id=OTHER_UUID),
        ),
        ("posted other x_id", InvalidTransitionError, lambda: st.mark_posted(posted, x_id="2")),
        ("failed empty error", bad, lambda: st.mark_failed(posting, error="")),
        ("failed naive requeue", bad, lambda: st.mark_failed(posting, error="e", requeue_at=NAIVE)),
        ("failed from queued", InvalidTransitionError, lambda: st.mark_failed(queued, error="e")),
        (
            "failed foreign attempt",
            bad,
            lambda: st.mark_failed(posting, error="e", attempt_id=OTHER_UUID),
        ),
        ("unknown reason type", bad, lambda: st.mark_unknown(posting, reason=None)),  # type: ignore[arg-type]
        (
            "unknown from posted",
            InvalidTransitionError,
            lambda: st.mark_unknown(posted, reason="r"),
        ),
        ("requeue empty actor", bad, lambda: st.requeue(posted, actor="", reason="r")),
        (
            "requeue from queued",
            InvalidTransitionError,
            lambda: st.requeue(queued, actor="a", reason="r"),
        ),
        ("stale int grace", bad, lambda: st.stale_posting(older_than=5)),  # type: ignore[arg-type]
        ("attempts bad id", bad, lambda: st.list_attempts(-1)),
        ("get_post missing", PostNotFoundError, lambda: st.get_post(MISSING)),
        ("list_posts unknown status", bad, lambda: st.list_posts(acc, status="sent")),
        ("list_posts zero limit", bad, lambda: st.list_posts(acc, limit=0)),
        ("find hash type", bad, lambda: st.find_post_by_hash(acc, None)),  # type: ignore[arg-type]
        ("content hashes bad id", bad, lambda: st.content_hashes(0)),
        ("content hashes str id", bad, lambda: st.content_hashes("1")),  # type: ignore[arg-type]
        # rate caps
        ("count naive", bad, lambda: st.count_posts(acc, since=NAIVE)),
        ("count str", bad, lambda: st.count_posts(acc, since="yesterday")),  # type: ignore[arg-type]
        ("last_post bad id", bad, lambda: st.last_post_at("x")),  # type: ignore[arg-type]
        # metrics
        ("metrics horizon", bad, lambda: st.upsert_metrics([MetricSnapshot(posted, "2h", T0)])),
        ("metrics negative", bad, lambda: st.upsert_metrics([_snap(posted, likes=-1)])),
        ("metrics str count", bad, lambda: st.upsert_metrics([_snap(posted, likes="3")])),
        ("metrics naive", bad, lambda: st.upsert_metrics([MetricSnapshot(posted, "1h", NAIVE)])),
        ("metrics dict row", bad, lambda: st.upsert_metrics([{"tweet_id": posted}])),  # type: ignore[list-item]
        (
            "metrics unknown post after a good row",
            PostNotFoundError,
            lambda: st.upsert_metrics([_snap(posted, likes=1), _snap(MISSING)]),
        ),
        ("metrics_due horizon", bad, lambda: st.metrics_due("1d")),
        ("get_metrics bad id", bad, lambda: st.get_metrics(0)),
        # candidates
        ("candidates not a list", bad, lambda: st.record_candidates(acc, "text")),  # type: ignore[arg-type]
        ("candidates dict", bad, lambda: st.record_candidates(acc, [{"text": "x"}])),  # type: ignore[list-item]
        (
            "candidates reasons",
            bad,
            lambda: st.record_candidates(
                acc,
                [CandidateInput("ok", True), CandidateInput("x", False, guard_reasons="bad")],  # type: ignore[arg-type]
            ),
        ),
        (
            "candidates oversized",
            bad,
            lambda: st.record_candidates(acc, [CandidateInput(big, True)]),
        ),
        (
            "candidates verdict type",
            bad,
            lambda: st.record_candidates(acc, [CandidateInput("x", "yes")]),  # type: ignore[arg-type]
        ),
        (
            "candidates arm",
            bad,
            lambda: st.record_candidates(acc, [CandidateInput("x", True, arm="single")]),
        ),
        (
            "candidates missing post",
            PostNotFoundError,
            lambda: st.record_candidates(acc, [CandidateInput("x", True, tweet_id=MISSING)]),
        ),
        (
            "candidates missing account",
            AccountNotFoundError,
            lambda: st.record_candidates(MISSING, [CandidateInput("x", True)]),
        ),
        (
            "chosen missing candidate",
            CandidateNotFoundError,
            lambda: st.mark_candidate_chosen(MISSING, tweet_id=queued, why="w"),
        ),
        (
            "chosen missing post",
            PostNotFoundError,
            lambda: st.mark_candidate_chosen(cand, tweet_id=MISSING, why="w"),
        ),
        ("list_candidates bad id", bad, lambda: st.list_candidates(None)),  # type: ignore[arg-type]
        # config
        ("config value object", bad, lambda: st.set_config("k", object(), actor="a")),
        ("config value NaN", bad, lambda: st.set_config("k", float("inf"), actor="a")),
        ("config key", bad, lambda: st.set_config("bad key!", 1, actor="a")),
        ("config actor", bad, lambda: st.set_config("k", 1, actor="")),
        ("get_config key type", bad, lambda: st.get_config(5)),  # type: ignore[arg-type]
        # audit, health, summaries
        ("audit severity", bad, lambda: st.audit("e", component="c", severity="fatal")),
        ("audit data list", bad, lambda: st.audit("e", component="c", data=[1])),  # type: ignore[arg-type]
        (
            "audit_many one bad",
            bad,
            lambda: st.audit_many([AuditEvent("ok", "c"), AuditEvent("bad", "c", severity="x")]),
        ),
        ("audit_many not list", bad, lambda: st.audit_many("events")),  # type: ignore[arg-type]
        ("list_audit since naive", bad, lambda: st.list_audit(since=NAIVE)),
        ("health status", bad, lambda: st.record_health("redis", "fine")),
        ("health metrics", bad, lambda: st.record_health("redis", "ok", metrics="m")),  # type: ignore[arg-type]
        ("summary datetime", bad, lambda: st.upsert_daily_summary(T0, "daily", {"a": 1})),
        (
            "summary metrics list",
            bad,
            lambda: st.upsert_daily_summary(date(2026, 3, 1), "daily", [1]),  # type: ignore[arg-type]
        ),
        ("get summary str date", bad, lambda: st.get_daily_summary("2026-03-01", "daily")),  # type: ignore[arg-type]
    ]


def test_every_repository_function_refuses_bad_input_and_changes_nothing(
    store: DurableStore, store_url: str
) -> None:
    acc = store.ensure_account("bot")
    queued = store.enqueue_post(acc.id, "queued post", scheduled_at=T0 + timedelta(days=9))
    thread = store.enqueue_thread(acc.id, ["t 1/2", "t 2/2"], scheduled_at=T0 + timedelta(days=9))
    posting_post = store.enqueue_post(acc.id, "posting post", scheduled_at=T0)
    claim = store.claim_post(posting_post.id, now=T0)
    posted_post = store.enqueue_post(acc.id, "posted post", scheduled_at=T0)
    store.claim_post(posted_post.id, now=T0)
    store.mark_posted(posted_post.id, x_id="555", posted_at=T0)
    [cand] = store.record_candidates(acc.id, [CandidateInput("a candidate", True)])
    store.set_config("k", 1, actor="setup")
    assert claim is not None
    ids = {
        "account": acc.id,
        "queued": queued.id,
        "thread_part": thread[1].id,
        "posting": posting_post.id,
        "posted": posted_post.id,
        "candidate": cand,
        "attempt": claim.attempt_id,
    }
    before = _snapshot(store_url)
    unclear = []
    for name, expected, call in _cases(store, ids):
        with pytest.raises(StoreError) as caught:
            call()
        assert isinstance(caught.value, expected), (name, caught.value)
        message = str(caught.value)
        if len(message) < 25:
            unclear.append((name, message))
        assert _snapshot(store_url) == before, f"{name} changed the store"
    assert not unclear, unclear
    # NotFound errors are also LookupErrors, input errors ValueErrors (for generic handlers).
    assert issubclass(AccountNotFoundError, NotFoundError) and issubclass(
        NotFoundError, LookupError
    )
    assert issubclass(InvalidInputError, ValueError)
