"""The posting service: posts each due post at most once, and never loses one.

The protocol (``ARCHITECTURE.md``, "Posting, at most once"), step by step in :meth:`post_next`:

1. may anything be sent at all? A poster that can reach the real X sends only when
   ``settings.posting_to_real_x`` (production and ``LIVE_POSTS`` exactly ``true``); in every
   other case a non-sandbox poster records a dry run and sends nothing;
2. claim: with REDIS_URL set, the due tickets of ``pending_posts``, the brake mirror and the
   Redis rate counters answer first (``posting/hotpath.py``); then, always, the brake, the
   rate-limit back-off and every rate cap are checked against the durable store, and the next
   due post is claimed (``posting``, attempt row ``unsent``) in the same transaction, committed
   before acting (:meth:`PostingLedger.claim_next_due`); then the
   attempt's "sent" mark is committed just before the request (:meth:`PostingLedger.mark_sending`),
   so a crash before it is known to have sent nothing;
3. post, read back X's id, record ``posted`` with it (compare-and-set on the attempt id);
4. on an error the outcome decides: known not-sent goes back to ``queued`` (with the back-off for
   rate limits); X's refusals become ``failed``; a duplicate refusal looks the post up on the
   account's timeline; the automation block (226) and auth failures raise the brake and alert;
   anything that may have reached X stays in ``posting`` for the reconciler, never retried blindly.

Threads are posted part by part as a reply chain: each part is a row whose parent must be
``posted`` before it can be claimed, so a crash resumes at the first unrecorded part.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from xbot_assets.posting.base import (
    AutomationBlocked,
    DuplicateRefused,
    NotSent,
    Poster,
    PostingError,
    RateLimited,
    Rejected,
)
from xbot_assets.posting.crashpoints import crash_point
from xbot_assets.posting.ledger import (
    BACKOFF_KEY,
    Blocked,
    ClaimedPost,
    PostingLedger,
    RateCaps,
)

log = logging.getLogger(__name__)

OutcomeStatus = Literal[
    "posted",  # on X, id recorded
    "nothing_due",  # queue empty (or the next part waits for its parent)
    "blocked",  # brake, back-off or a rate cap: nothing claimed
    "dry_run",  # sending not allowed here: nothing claimed, nothing sent
    "released",  # known not sent: back in the queue (maybe later)
    "failed",  # X refused this text for good
    "left_for_reconciler",  # may be on X: stays in `posting`
    "stopped",  # brake raised (226, auth, session): a person must act
]

NOT_SENT_RETRY_DELAY = timedelta(minutes=1)


@dataclass(frozen=True)
class PostingOutcome:
    """What one :meth:`PostingService.post_next` call did (ids and reasons; no text)."""

    status: OutcomeStatus
    tweet_id: int | None = None
    x_id: str | None = None
    reason: str = ""
    retry_at: datetime | None = None

    @property
    def continue_run(self) -> bool:
        """Whether a run loop should try the next post right away."""
        return self.status in ("posted", "failed")


def send_block_reason(settings: Any, poster: Poster) -> str | None:
    """Why this poster must not send anything in these settings (None: it may).

    The in-process sandbox poster always may (nothing leaves the process). Any other poster may
    send only when ``settings.posting_to_real_x``, or in APP_ENV=local when it can only reach a
    sandbox on loopback. Everything else (staging without LIVE_POSTS=true, a local run pointed
    at a real host) is a dry run.
    """
    if poster.kind == "sandbox":
        return None
    if settings.posting_to_real_x:
        return None
    if settings.app_env == "local" and poster.targets_loopback:
        return None
    if settings.app_env == "local":
        return (
            f"APP_ENV=local posts only to a sandbox on loopback; the {poster.kind} poster points "
            "elsewhere (dry run)"
        )
    return (
        f"APP_ENV={settings.app_env} with LIVE_POSTS={settings.live_posts_raw!r}: the "
        f"{poster.kind} poster sends nothing unless APP_ENV=production and LIVE_POSTS=true "
        "(dry run)"
    )


def default_alert(message: str) -> None:
    """Operators' alert channel: a critical log line (the audit row is written separately)."""
    log.critical("xbot posting alert: %s", message)


class PostingService:
    """Posts the due posts of one account through one poster.

    Args:
        ledger: durable posting state.
        poster: the poster to act through.
        account_id: the account's row id in the durable store.
        caps: rate caps checked before each claim.
        block_reason: when set, nothing is sent (dry run); see :func:`send_block_reason`.
        clock: the time source (the sandbox's simulated clock in benchmarks).
        alert: called with one line when a person must act (brake raised).
    """

    def __init__(
        self,
        ledger: PostingLedger,
        poster: Poster,
        *,
        account_id: int,
        caps: RateCaps,
        block_reason: str | None = None,
        clock: Callable[[], datetime] | None = None,
        alert: Callable[[str], None] = default_alert,
    ) -> None:
        self.ledger = ledger
        self.poster = poster
        self.account_id = account_id
        self.caps = caps
        self.block_reason = block_reason
        self.clock = clock or (lambda: datetime.now(UTC))
        self.alert = alert

    def post_next(self) -> PostingOutcome:
        """Claim and post the next due post (or say why not). One step of the protocol."""
        now = self.clock()
        if self.block_reason is not None:
            due = self.ledger.next_due_id(
                self.account_id, now=now, approved_only=self.caps.require_approval
            )
            if due is None:
                return PostingOutcome("nothing_due")
            self.ledger.audit(
                "post.dry_run",
                {"tweet_id": due, "poster": self.poster.kind, "reason": self.block_reason},
                now=now,
            )
            return PostingOutcome("dry_run", tweet_id=due, reason=self.block_reason)
        crash_point("before_claim")
        claim = self.ledger.claim(self.account_id, self.caps, now=now)
        if claim is None:
            return PostingOutcome("nothing_due")
        if isinstance(claim, Blocked):
            return PostingOutcome("blocked", reason=claim.reason, retry_at=claim.until)
        crash_point("after_claim")
        claimed_at = now
        # The "sent" mark, committed before any byte leaves: until it, a crash provably sent
        # nothing and the reconciler re-queues the post freely (issue 17 item 1).
        if not self.ledger.mark_sending(claim.tweet_id, claim.attempt_id, now=self.clock()):
            return PostingOutcome(
                "released",
                tweet_id=claim.tweet_id,
                reason="the claim was settled by the reconciler before sending: nothing sent",
            )
        crash_point("after_mark")
        try:
            result = self.poster.post(claim.text, reply_to=claim.reply_to_x_id)
        except PostingError as exc:
            outcome = self._on_error(claim, exc)
            if outcome.status in ("posted", "left_for_reconciler"):
                self.ledger.count_on_x(claim, claimed_at=claimed_at)
            return outcome
        except Exception as exc:
            self.ledger.count_on_x(claim, claimed_at=claimed_at)
            # Unknown failure inside the poster: it may have posted. Leave it to the reconciler.
            self.ledger.audit(
                "post.outcome_unknown",
                {"tweet_id": claim.tweet_id, "error": type(exc).__name__},
                severity="error",
                now=self.clock(),
            )
            raise
        self.ledger.count_on_x(claim, claimed_at=claimed_at)
        crash_point("after_answer")
        recorded = self.ledger.mark_posted(
            claim.tweet_id, claim.attempt_id, result.x_id, now=self.clock()
        )
        crash_point("after_record")
        if not recorded:
            self.ledger.audit(
                "post.record_conflict",
                {"tweet_id": claim.tweet_id, "x_id": result.x_id},
                severity="error",
                now=self.clock(),
            )
        log.info("posted tweet row %s as X id %s", claim.tweet_id, result.x_id)
        return PostingOutcome("posted", tweet_id=claim.tweet_id, x_id=result.x_id)

    def _stop(self, claim: ClaimedPost, exc: PostingError) -> PostingOutcome:
        now = self.clock()
        self.ledger.release(claim.tweet_id, claim.attempt_id, now=now, error=exc.outcome)
        reason = f"{exc.outcome}: posting stopped, brake engaged; a person must act ({exc})"
        self.ledger.engage_brake(exc.outcome, actor=f"posting:{self.poster.kind}", now=now)
        self.ledger.audit(
            "post.alert",
            {"tweet_id": claim.tweet_id, "outcome": exc.outcome},
            severity="critical",
            now=now,
        )
        self.alert(reason)
        return PostingOutcome("stopped", tweet_id=claim.tweet_id, reason=reason)

    def _on_error(self, claim: ClaimedPost, exc: PostingError) -> PostingOutcome:
        now = self.clock()
        data = {"tweet_id": claim.tweet_id, "outcome": exc.outcome, "poster": self.poster.kind}
        if exc.stop_posting or isinstance(exc, AutomationBlocked):
            return self._stop(claim, exc)
        if exc.may_have_posted:
            self.ledger.audit("post.outcome_unknown", data, severity="warning", now=now)
            return PostingOutcome(
                "left_for_reconciler", tweet_id=claim.tweet_id, reason=f"{exc.outcome}: {exc}"
            )
        if isinstance(exc, DuplicateRefused):
            try:
                # X refused the text as a duplicate: adopt the post only if it is no other
                # row's (a thread may open with an earlier single post's text)
                found = self.poster.find_own_post(
                    claim.text,
                    reply_to=claim.reply_to_x_id,
                    exclude=self.ledger.recorded_x_ids(claim.account_id),
                )
            except PostingError as lookup:
                # Cannot look now: the post is probably on X; the reconciler settles it later.
                self.ledger.audit(
                    "post.outcome_unknown",
                    {**data, "lookup": lookup.outcome},
                    severity="warning",
                    now=now,
                )
                return PostingOutcome(
                    "left_for_reconciler", tweet_id=claim.tweet_id, reason=str(exc)
                )
            if found is not None:
                self.ledger.mark_posted(claim.tweet_id, claim.attempt_id, found.x_id, now=now)
                self.ledger.audit("post.duplicate_found", {**data, "x_id": found.x_id}, now=now)
                return PostingOutcome(
                    "posted", tweet_id=claim.tweet_id, x_id=found.x_id, reason="already on X"
                )
            self.ledger.mark_failed(claim.tweet_id, claim.attempt_id, now=now, error=str(exc))
            self.ledger.audit("post.failed", data, severity="warning", now=now)
            return PostingOutcome("failed", tweet_id=claim.tweet_id, reason=str(exc))
        if isinstance(exc, RateLimited):
            until = exc.retry_after or now + timedelta(minutes=15)
            self.ledger.release(
                claim.tweet_id, claim.attempt_id, now=now, error=exc.outcome, not_before=until
            )
            self.ledger.set_config(
                BACKOFF_KEY, until.isoformat(), actor=f"posting:{self.poster.kind}", now=now
            )
            self.ledger.audit("post.rate_limited", data, severity="warning", now=now)
            return PostingOutcome(
                "released", tweet_id=claim.tweet_id, reason=str(exc), retry_at=until
            )
        if isinstance(exc, Rejected):
            self.ledger.mark_failed(claim.tweet_id, claim.attempt_id, now=now, error=str(exc))
            self.ledger.audit("post.failed", data, severity="warning", now=now)
            return PostingOutcome("failed", tweet_id=claim.tweet_id, reason=str(exc))
        # Known not sent (NotSent or another error that certainly did not reach X).
        retry_at = now + NOT_SENT_RETRY_DELAY if isinstance(exc, NotSent) else None
        self.ledger.release(
            claim.tweet_id, claim.attempt_id, now=now, error=exc.outcome, not_before=retry_at
        )
        self.ledger.audit("post.released", data, severity="warning", now=now)
        return PostingOutcome(
            "released", tweet_id=claim.tweet_id, reason=str(exc), retry_at=retry_at
        )

    def run(self, max_steps: int = 50) -> list[PostingOutcome]:
        """Post until nothing more may go out now (a thread's parts go out back to back)."""
        outcomes: list[PostingOutcome] = []
        for _ in range(max_steps):
            outcome = self.post_next()
            outcomes.append(outcome)
            if not outcome.continue_run:
                break
        return outcomes
