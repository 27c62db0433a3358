"""The reconciler: settles posts left in ``posting`` by a poster that died or never heard back.

A row in ``posting`` is never retried blindly (X takes no idempotency key). Each attempt records
whether its request could have left the process: the claim writes ``unsent`` and the poster
commits ``sent`` just before the request (:meth:`PostingLedger.mark_sending`). So:

- an attempt still ``unsent`` provably never reached X: back to ``queued`` at once, however many
  times its posters were killed, with no timeline read and no guarded retry used (before this
  mark, a post killed twice before sending ended ``unknown``: issue 17 item 1);
- a possibly-sent attempt (``sent``, or made before the mark existed), once a grace period
  (longer than any request can take) has passed since its mark, is looked up on the account's
  own timeline, read once per pass (``GET /2/users/{id}/tweets`` or the profile page):

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
from typing import Any

from xbot_assets.posting.base import OwnPost, Poster, match_own_post
from xbot_assets.posting.ledger import PostingLedger

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(minutes=10)
GRACE_KEY = "posting.reconcile_grace_seconds"
GUARDED_RETRY_KEY = "posting.guarded_retry"
MAX_GUARDED_RETRIES = 1


def grace_from_config(configured: Any) -> timedelta:
    """The grace period bot_config's ``posting.reconcile_grace_seconds`` sets (else 10 minutes):
    the reconciler's, and the one the reconcile sensor and the main job's clock wait for (a
    sensor that asked sooner would spend its run on a pass that settles nothing)."""
    if isinstance(configured, int | float) and not isinstance(configured, bool):
        return timedelta(seconds=float(configured))
    return DEFAULT_GRACE


@dataclass
class ReconcileReport:
    """What one reconciler pass decided, by durable row id."""

    found: dict[int, str] = field(default_factory=dict)
    unknown: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    unsent: list[int] = field(default_factory=list)
    """Re-queued because their attempt provably never left the process (no retry used)."""

    def as_dict(self) -> dict[str, object]:
        return {
            "found": {str(k): v for k, v in self.found.items()},
            "unknown": self.unknown,
            "requeued": self.requeued,
            "unsent": self.unsent,
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
        self.grace = grace if grace is not None else grace_from_config(ledger.get_config(GRACE_KEY))
        if guarded_retry is None:
            guarded_retry = ledger.get_config(GUARDED_RETRY_KEY) is True
        self.guarded_retry = guarded_retry
        self.timeline_limit = timeline_limit

    def run(self) -> ReconcileReport:
        """One pass over every row older than the grace period."""
        report = ReconcileReport()
        now = self.clock()
        cutoff = now - self.grace
        stuck = self.ledger.stuck_posts(self.account_id, started_before=cutoff)
        maybe_sent = []
        for row in stuck:
            if row.provably_unsent and row.attempt_id is not None:
                if self.ledger.requeue_unsent(
                    row.tweet_id,
                    row.attempt_id,
                    now=self.clock(),
                    error="its poster stopped before sending (never reached X): re-queued",
                ):
                    report.unsent.append(row.tweet_id)
                    self.ledger.audit(
                        "reconcile.unsent_requeued",
                        {"tweet_id": row.tweet_id, "attempt_id": row.attempt_id},
                        severity="warning",
                        now=self.clock(),
                    )
                    continue
                # marked "sent" meanwhile (or settled by someone else): a later pass decides
                report.skipped.append(row.tweet_id)
            elif row.sent_at is None or row.sent_at < cutoff:
                maybe_sent.append(row)
        if not maybe_sent:
            if report.unsent or report.skipped:
                log.info("reconciled: %s", report.as_dict())
            return report
        timeline: list[OwnPost] = self.poster.recent_own_posts(limit=self.timeline_limit)
        # a post whose id another row holds is that row's, whatever its text (match_own_post)
        held = self.ledger.recorded_x_ids(self.account_id)
        for row in maybe_sent:
            found = match_own_post(timeline, row.text, reply_to=row.reply_to_x_id, exclude=held)
            now = self.clock()
            data = {"tweet_id": row.tweet_id, "attempt_id": row.attempt_id}
            if found is not None:
                if self.ledger.mark_posted(row.tweet_id, row.attempt_id, found.x_id, now=now):
                    held.add(found.x_id)
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
