"""The durable store's queries, shaped as the warehouse's raw tables.

Every query filters on the store's environment (the warehouse of one environment holds that
environment's rows only) and labels its columns exactly as :mod:`raw_schema` names them.
Incremental queries take a watermark (``updated_at`` of posts, ``collected_at`` of metrics),
so a new day never rescans history; the indexes of the store serve these ranges.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from xbot_assets.store.durable import schema as s

FOLLOWER_EVENT = "followers_snapshot"
"""audit_log ``event_type`` of a follower-count snapshot (``data``: account_id, followers_count,
following_count), written by the metrics collector; the store has no table of its own for it."""


def _json_text(column: Any, key: str) -> sa.ColumnElement[Any]:
    return column[key].as_string()


def posts_query(environment: str, *, updated_since: datetime | None = None) -> sa.Select[Any]:
    """Posts (all statuses) with their account handle, newest changes since a watermark."""
    t, a = s.tweets, s.accounts
    q = (
        sa.select(
            t.c.id.label("post_id"),
            t.c.account_id.label("account_id"),
            a.c.handle.label("account"),
            t.c.environment.label("environment"),
            t.c.status.label("status"),
            t.c.x_id.label("x_post_id"),
            t.c.thread_root_id.label("thread_root_id"),
            t.c.thread_position.label("thread_position"),
            t.c.thread_size.label("thread_size"),
            t.c.text.label("text"),
            t.c.arm.label("arm"),
            t.c.format.label("format"),
            t.c.topic.label("topic"),
            _json_text(t.c.metadata, "generator").label("content_source"),
            _json_text(t.c.metadata, "policy").label("policy"),
            t.c.score.label("predicted_score"),
            # The logging policy's probability of the chosen arm, stored when the post was queued
            # (offline policy evaluation weights by it).
            t.c.metadata["propensity"].as_float().label("propensity"),
            t.c.scheduled_at.label("scheduled_at"),
            t.c.created_at.label("created_at"),
            t.c.posted_at.label("posted_at"),
            t.c.updated_at.label("updated_at"),
        )
        .join(a, a.c.id == t.c.account_id)
        .where(t.c.environment == environment)
    )
    if updated_since is not None:
        q = q.where(t.c.updated_at >= updated_since)
    return q.order_by(t.c.id)


def metrics_query(
    environment: str,
    *,
    collected_from: datetime | None = None,
    collected_before: datetime | None = None,
    account_id: int | None = None,
) -> sa.Select[Any]:
    """Metric snapshots collected in ``[collected_from, collected_before)``, of one account if
    ``account_id`` is given (a tweet_metrics (day, account) partition)."""
    m = s.tweet_metrics
    q = sa.select(
        m.c.tweet_id.label("post_id"),
        m.c.account_id.label("account_id"),
        m.c.environment.label("environment"),
        m.c.horizon.label("horizon"),
        *(m.c[name].label(name) for name in s.METRIC_NAMES),
        m.c.source.label("source"),
        m.c.collected_at.label("collected_at"),
    ).where(m.c.environment == environment)
    if collected_from is not None:
        q = q.where(m.c.collected_at >= collected_from)
    if collected_before is not None:
        q = q.where(m.c.collected_at < collected_before)
    if account_id is not None:
        q = q.where(m.c.account_id == account_id)
    return q.order_by(m.c.id)


def accounts_query(environment: str) -> sa.Select[Any]:
    """Every account of the environment (a small table: always copied whole)."""
    a = s.accounts
    return (
        sa.select(
            a.c.id.label("account_id"),
            a.c.handle.label("account"),
            a.c.environment.label("environment"),
            a.c.x_user_id.label("x_user_id"),
            a.c.timezone.label("timezone"),
            a.c.active.label("active"),
            a.c.created_at.label("created_at"),
        )
        .where(a.c.environment == environment)
        .order_by(a.c.id)
    )


def candidates_query(environment: str, *, created_since: datetime | None = None) -> sa.Select[Any]:
    """Generated candidates (chosen or not), created since a watermark."""
    c = s.candidates
    q = sa.select(
        c.c.id.label("candidate_id"),
        c.c.account_id.label("account_id"),
        c.c.environment.label("environment"),
        c.c.batch_id.label("batch_id"),
        c.c.arm.label("arm"),
        c.c.format.label("format"),
        c.c.topic.label("topic"),
        c.c.generator.label("content_source"),
        c.c.score.label("predicted_score"),
        c.c.guard_passed.label("guard_passed"),
        c.c.chosen.label("chosen"),
        c.c.tweet_id.label("post_id"),
        c.c.created_at.label("created_at"),
    ).where(c.c.environment == environment)
    if created_since is not None:
        q = q.where(c.c.created_at >= created_since)
    return q.order_by(c.c.id)


def followers_query(environment: str, *, collected_since: datetime | None = None) -> sa.Select[Any]:
    """Follower-count snapshots, stored as ``followers_snapshot`` audit events."""
    log = s.audit_log
    q = sa.select(
        log.c.id.label("snapshot_id"),
        sa.cast(_json_text(log.c.data, "account_id"), sa.BigInteger).label("account_id"),
        log.c.environment.label("environment"),
        log.c.occurred_at.label("collected_at"),
        sa.cast(_json_text(log.c.data, "followers_count"), sa.BigInteger).label("followers_count"),
        sa.cast(_json_text(log.c.data, "following_count"), sa.BigInteger).label("following_count"),
    ).where(log.c.environment == environment, log.c.event_type == FOLLOWER_EVENT)
    if collected_since is not None:
        q = q.where(log.c.occurred_at >= collected_since)
    return q.order_by(log.c.id)
