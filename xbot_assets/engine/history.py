"""The account's real posting history, as the factored policy sees it.

Recency and fatigue covariates must come from what the account actually posted (and has queued
before the slot), never from the candidate batch; the evidence comes from each post's latest
metric snapshot. One store read per decision run, no warehouse, no dbt rebuild.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from xbot_assets.learning.design import PastPost
from xbot_assets.vocabulary import HORIZONS as HORIZON_ORDER
from xbot_assets.vocabulary import METRIC_NAMES


def _arm_of(post: Any) -> tuple[str, str]:
    if post.arm and ":" in post.arm:
        fmt, topic = post.arm.split(":", 1)
        return fmt, topic
    return str(post.format or "single"), str(post.topic or "other")


def account_history(
    store: Any,
    account_id: int,
    *,
    before: datetime | None = None,
    include_queued: bool = True,
    with_metrics: bool = True,
    limit: int = 1000,
) -> list[PastPost]:
    """Root posts of the account, oldest first, with their latest snapshot.

    Args:
        before: only posts (posted, or queued to go out) before this time.
        include_queued: queued roots count at their scheduled time (no metrics): they will have
            gone out before a later slot, so they tire the audience too.
        with_metrics: read each posted root's snapshots (one query per post).
    """
    out: list[PastPost] = []
    for post in store.list_posts(account_id, limit=limit):
        if post.thread_position != 0 or post.status in ("failed", "cancelled", "deleted"):
            continue
        if post.posted_at is not None:
            when = post.posted_at
        elif include_queued and post.status in ("queued", "posting"):
            when = post.scheduled_at
        else:
            continue
        if before is not None and when >= before:
            continue
        metrics, horizon = None, None
        if with_metrics and post.posted_at is not None:
            snaps = store.get_metrics(post.id)
            if snaps:
                latest = max(snaps, key=lambda s: HORIZON_ORDER.index(s.horizon))
                metrics = {m: getattr(latest, m) for m in METRIC_NAMES}
                horizon = latest.horizon
        fmt, topic = _arm_of(post)
        first_part = post.text
        out.append(PastPost(when, fmt, topic, first_part, metrics, horizon))
    out.sort(key=lambda p: p.posted_at)
    return out


def horizon_pairs(store: Any, account_id: int, *, limit: int = 1000) -> list[tuple[str, Any, Any]]:
    """``(horizon, partial counts, final counts)`` of completed root posts (for HorizonModel)."""
    pairs: list[tuple[str, Any, Any]] = []
    for post in store.list_posts(account_id, status="posted", limit=limit):
        if post.thread_position != 0:
            continue
        snaps = {s.horizon: s for s in store.get_metrics(post.id)}
        final = snaps.get("72h")
        if final is None:
            continue
        final_counts = {m: getattr(final, m) for m in METRIC_NAMES}
        for horizon, snap in snaps.items():
            if horizon != "72h":
                pairs.append((horizon, {m: getattr(snap, m) for m in METRIC_NAMES}, final_counts))
    return pairs


def learning_histories(store: Any, *, now: datetime, default_timezone: str) -> list[Any]:
    """Every active account's history and horizon pairs as of ``now``, for the per-account fit
    (``learning/account_policy.py``); one store read per account, as one account's refit."""
    from xbot_assets.learning.account_policy import AccountHistory

    return [
        AccountHistory(
            account.handle,
            account.timezone or default_timezone,
            account_history(store, account.id, before=now),
            horizon_pairs(store, account.id),
        )
        for account in store.list_accounts()
    ]
