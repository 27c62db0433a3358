"""Typed rows the durable store returns and accepts. Plain frozen dataclasses, no ORM.

Field names equal the column names of :mod:`xbot_assets.store.durable.schema`, so a row maps onto
its dataclass directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Account:
    """An X account the deployment runs (one deployment may run several)."""

    id: int
    environment: str
    handle: str
    x_user_id: str | None
    display_name: str | None
    timezone: str
    active: bool
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Post:
    """One post, or one part of a thread (``thread_position`` 0 is the root)."""

    id: int
    environment: str
    account_id: int
    text: str
    content_hash: str
    status: str
    """``queued``, ``posting``, ``posted``, ``failed`` or ``unknown``."""
    x_id: str | None
    thread_root_id: int | None
    """The root's id for every part of a thread (the root included); None for a single post."""
    thread_parent_id: int | None
    """The part this one replies to (None for a root or a single post)."""
    thread_position: int
    thread_size: int
    arm: str | None
    """``"<format>:<topic>"``, e.g. ``"how_to:python"``."""
    format: str | None
    topic: str | None
    score: float | None
    scores: dict[str, Any]
    scheduled_at: datetime
    """When the post is due (it is not claimed before)."""
    attempt_count: int
    last_attempt_id: str | None
    posting_started_at: datetime | None
    posted_at: datetime | None
    last_error: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    approval: str | None = None
    """The operator's review: None (not reviewed), ``approved`` or ``rejected``."""
    approved_by: str | None = None
    approved_at: datetime | None = None

    @property
    def is_thread(self) -> bool:
        return self.thread_size > 1


@dataclass(frozen=True, slots=True)
class Claim:
    """A post claimed for posting: committed as ``posting`` before this object is returned.

    ``parts`` holds every row to post in order (one for a single post, the root first for a
    thread); all of them are ``posting`` under the same ``attempt_id``.
    """

    attempt_id: str
    started_at: datetime
    post: Post
    parts: tuple[Post, ...]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One claim of a post (a row of ``post_attempts``)."""

    id: int
    environment: str
    attempt_id: str
    tweet_id: int
    account_id: int
    worker: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    """None while running; then ``posted``, ``failed``, ``unknown`` or ``released``."""
    x_id: str | None
    error: str | None
    send_state: str | None = None
    """``unsent`` (nothing left the process), ``sent`` (a request may have), None (not recorded:
    possibly sent)."""
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MetricSnapshot:
    """The counters of one post at one horizon (``1h``, ``6h``, ``24h``, ``72h``)."""

    tweet_id: int
    horizon: str
    collected_at: datetime
    impressions: int = 0
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    quotes: int = 0
    bookmarks: int = 0
    profile_clicks: int = 0
    follows: int = 0
    negative_feedback: int = 0
    reports: int = 0
    source: str | None = None
    account_id: int | None = None
    """Filled in by the store from the post (ignored on input)."""


@dataclass(frozen=True, slots=True)
class CandidateInput:
    """A generated candidate, as handed to :meth:`DurableStore.record_candidates`."""

    text: str
    guard_passed: bool
    arm: str | None = None
    score: float | None = None
    guard_reasons: list[str] = field(default_factory=list)
    chosen: bool = False
    why: str | None = None
    generator: str | None = None
    tweet_id: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored candidate (a row of ``candidates``)."""

    id: int
    environment: str
    account_id: int
    batch_id: str | None
    text: str
    content_hash: str
    arm: str | None
    format: str | None
    topic: str | None
    generator: str | None
    score: float | None
    guard_passed: bool
    guard_reasons: list[str]
    chosen: bool
    why: str | None
    tweet_id: int | None
    metadata: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit_log entry. ``event_id`` makes a replayed write (e.g. from Redis) idempotent."""

    event_type: str
    component: str
    severity: str = "info"
    actor: str = "xbot"
    data: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None
    event_id: str | None = None
    id: int | None = None
    environment: str | None = None


@dataclass(frozen=True, slots=True)
class HealthRecord:
    """One system_health row."""

    id: int
    environment: str
    recorded_at: datetime
    component: str
    status: str
    metrics: dict[str, Any]
    message: str | None


@dataclass(frozen=True, slots=True)
class DailySummary:
    """One daily_summaries row."""

    id: int
    environment: str
    summary_date: date
    summary_type: str
    metrics: dict[str, Any]
    created_at: datetime
    updated_at: datetime
