"""The reconciler: settles posts left in ``posting`` by a poster that died or never heard back.

A row in ``posting`` is never retried blindly (X takes no idempotency key). After a grace
period (longer than any request can take) the reconciler reads the account's own timeline once
(``GET /2/users/{id}/tweets`` or the profile page) and, for each such row:

- its text (and reply parent, for a thread part) is there: ``posted`` with that id;
- it is not: ``unknown`` for a person to decide, or, when guarded retry is on and the row has
  not had one, back to ``queued`` for exactly one more try (the timeline was checked just now,
  and the grace period has passed, so an in-flight request cannot still land).

Every transition is a compare-and-set on the attempt id: a poster that answers late and the
reconciler cannot both decide.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from xbot_assets.posting.base import OwnPost, Poster, match_own_post
from xbot_assets.posting.ledger import PostingLedger

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(minutes=10)
GRACE_KEY = "posting.reconcile_grace_seconds"
GUARDED_RETRY_KEY = "posting.guarded_retry"
MAX_GUARDED_RETRIES = 1


@dataclass
class ReconcileReport:
    """What one reconciler pass decided, by durable row id."""

    found: dict[int, str] = field(default_factory=dict)
    unknown: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "found": {str(k): v for k, v in self.found.items()},
            "unknown": self.unknown,
            "requeued": self.requeued,
            "skipped": self.skipped,
        }


class Reconciler:
    """Settles the stuck posts of one account.

    Args:
        ledger: durable posting state.
        poster: reads the account's own timeline (any poster kind).
        account_id: the account's row id.
        grace: how long a row must have been in ``posting`` before it is settled (None: from
            bot_config ``posting.reconcile_grace_seconds``, else 10 minutes).
        guarded_retry: allow one re-queue of a post not found (None: bot_config
            ``posting.guarded_retry``, else off).
        clock: the time source.
        timeline_limit: how many recent posts to read.
    """

    def __init__(
        self,
        ledger: PostingLedger,
        poster: Poster,
        *,
        account_id: int,
        grace: timedelta | None = None,
        guarded_retry: bool | None = None,
        clock: Callable[[], datetime] | None = None,
        timeline_limit: int = 200,
    ) -> None:
        self.ledger = ledger
        self.poster = poster
        self.account_id = account_id
        self.clock = clock or (lambda: datetime.now(UTC))
        if grace is None:
            configured = ledger.get_config(GRACE_KEY)
            grace = (
                timedelta(seconds=float(configured))
                if isinstance(configured, int | float)
                else DEFAULT_GRACE
            )
        self.grace = grace
        if guarded_retry is None:
            guarded_retry = ledger.get_config(GUARDED_RETRY_KEY) is True
        self.guarded_retry = guarded_retry
        self.timeline_limit = timeline_limit

    def run(self) -> ReconcileReport:
        """One pass over every row older than the grace period."""
        report = ReconcileReport()
        now = self.clock()
        stuck = self.ledger.stuck_posts(self.account_id, started_before=now - self.grace)
        if not stuck:
            return report
        timeline: list[OwnPost] = self.poster.recent_own_posts(limit=self.timeline_limit)
        for row in stuck:
            found = match_own_post(timeline, row.text, reply_to=row.reply_to_x_id)
            now = self.clock()
            data = {"tweet_id": row.tweet_id, "attempt_id": row.attempt_id}
            if found is not None:
                if self.ledger.mark_posted(row.tweet_id, row.attempt_id, found.x_id, now=now):
                    report.found[row.tweet_id] = found.x_id
                    self.ledger.audit("reconcile.found", {**data, "x_id": found.x_id}, now=now)
                else:
                    report.skipped.append(row.tweet_id)
                continue
            if self.guarded_retry and row.guarded_retries < MAX_GUARDED_RETRIES:
                if self.ledger.requeue_guarded(
                    row.tweet_id,
                    row.attempt_id,
                    now=now,
                    retries_used=row.guarded_retries,
                    error="not on the timeline after the grace period: one guarded retry",
                ):
                    report.requeued.append(row.tweet_id)
                    self.ledger.audit("reconcile.requeued", data, severity="warning", now=now)
                else:
                    report.skipped.append(row.tweet_id)
                continue
            if self.ledger.mark_unknown(
                row.tweet_id,
                row.attempt_id,
                now=now,
                error="not on the timeline after the grace period: a person must decide",
            ):
                report.unknown.append(row.tweet_id)
                self.ledger.audit("reconcile.unknown", data, severity="error", now=now)
            else:
                report.skipped.append(row.tweet_id)
        log.info("reconciled: %s", report.as_dict())
        return report
