"""Entry points of the posting layer: build a poster from settings, post what is due, reconcile.

What the rest of xbot calls (the orchestration's posting job, the ``xbot reconcile`` command):

- :func:`make_poster` picks the poster for ``settings.resolved_poster``;
- :func:`open_ledger` opens the durable posting state of ``settings.app_env``;
- :func:`post_due` reconciles stuck rows, moves due posts that would break quiet hours, spacing
  or a cap now (``sendtime.py``), then posts every due post the gates allow;
- :func:`reconcile` settles rows left in ``posting``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from xbot_assets.posting.base import Poster, PostingError
from xbot_assets.posting.crashpoints import CRASH_ENV, http_trace
from xbot_assets.posting.ledger import PostingLedger, RateCaps
from xbot_assets.posting.reconciler import Reconciler, ReconcileReport
from xbot_assets.posting.sendtime import reschedule_blocked, send_rules
from xbot_assets.posting.service import PostingOutcome, PostingService, send_block_reason


def make_poster(
    settings: Any, *, sandbox: Any = None, timeout: float = 10.0, gate: Any = None
) -> Poster:
    """The poster ``settings.resolved_poster`` names.

    Args:
        settings: :class:`xbot_assets.config.Settings`.
        sandbox: the in-process ``SandboxX`` for the ``sandbox`` poster (built from the
            settings' scenario and seed when not given).
        timeout: seconds per X request (api poster).
        gate: the X API gate (``xapi/budget.py``): the ``api`` and ``sandbox`` posters' calls
            then pass the 15-minute limiter and the monthly budget (the browser poster uses
            the web, not the API).
    """
    poster = _make_poster(settings, sandbox=sandbox, timeout=timeout)
    if gate is not None and poster.kind in ("api", "sandbox"):
        from xbot_assets.posting.gated import GatedPoster

        return GatedPoster(poster, gate)
    return poster


def _make_poster(settings: Any, *, sandbox: Any, timeout: float) -> Poster:
    kind = settings.resolved_poster
    if kind == "api":
        from xbot_assets.posting.api_poster import ApiPoster
        from xbot_assets.xapi import XApiClient

        trace = http_trace if os.environ.get(CRASH_ENV) else None
        client = XApiClient.from_settings(settings, timeout=timeout, trace=trace)
        return ApiPoster(client, user_id=settings.x_user_id)
    if kind == "browser":
        from xbot_assets.posting.browser_poster import BrowserPoster

        return BrowserPoster(
            settings.x_web_base_url,
            handle=settings.x_handle,
            storage_state=settings.browser_storage_state,
            chromium_path=settings.chromium_path,
            timeout_ms=int(timeout * 1000),
        )
    from xbot_assets.posting.sandbox_poster import SandboxPoster

    return SandboxPoster.from_settings(settings, sandbox=sandbox)


def open_ledger(
    settings: Any,
    *,
    check_schema: bool = True,
    clock: Callable[[], datetime] | None = None,
) -> PostingLedger:
    """The durable posting state of this environment (``settings.resolved_database_url``),
    with the loop's hot path (Redis when REDIS_URL is set, on ``clock``).

    Opened like the durable store opens itself: on Postgres as the environment's non-owner role
    (row-level security applies), and refused unless the schema is at this xbot's migration.

    Raises:
        SchemaError: the store is behind or ahead (run ``xbot migrate``).
    """
    from xbot_assets.posting.hotpath import open_hot_path
    from xbot_assets.store.durable import DurableStore

    store = DurableStore.from_settings(settings, check_schema=check_schema)
    hot = open_hot_path(settings, store.engine, clock=clock or (lambda: datetime.now(UTC)))
    return PostingLedger(store.engine, settings.app_env, hot=hot)


def close_ledger(ledger: PostingLedger) -> None:
    """Close the connections of a ledger opened by :func:`open_ledger`.

    A batch run posts every account's posts through :func:`post_due`, which opened a ledger (an
    engine with its own pool) per post and never closed it: idle connections piled up until
    Postgres refused new ones ("too many clients"), and the run workers whose Dagster event
    write then failed, or whose next post could not open the store, failed the run (2 of 11
    batch runs at 100 accounts)."""
    ledger.engine.dispose()


@dataclass
class PostingRun:
    """One :func:`post_due` call: the reconciliation first, then each posting step."""

    reconcile: ReconcileReport
    outcomes: list[PostingOutcome] = field(default_factory=list)

    @property
    def posted(self) -> list[PostingOutcome]:
        return [o for o in self.outcomes if o.status == "posted"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "reconcile": self.reconcile.as_dict(),
            "outcomes": [
                {
                    "status": o.status,
                    "tweet_id": o.tweet_id,
                    "x_id": o.x_id,
                    "reason": o.reason,
                    "retry_at": o.retry_at.isoformat() if o.retry_at else None,
                }
                for o in self.outcomes
            ],
        }


def gated_poster(settings: Any, ledger: PostingLedger, clock: Callable[[], datetime]) -> Poster:
    """The settings' poster behind the X API gate kept in ``ledger``'s store."""
    from xbot_assets.xapi.budget import XApiGate

    return make_poster(settings, gate=XApiGate.for_store(settings, ledger, clock))


def _account_id(ledger: PostingLedger, settings: Any, *, now: datetime) -> int:
    return ledger.ensure_account(settings.x_handle, x_user_id=settings.x_user_id, now=now)


def post_due(
    settings: Any,
    *,
    poster: Poster | None = None,
    ledger: PostingLedger | None = None,
    clock: Callable[[], datetime] | None = None,
    max_steps: int = 50,
    grace: timedelta | None = None,
    guarded_retry: bool | None = None,
    alert: Callable[[str], None] | None = None,
) -> PostingRun:
    """Reconcile, then post every due post the gates allow (the orchestration's entry point).

    Args:
        settings: the process settings (environment, caps, poster, LIVE_POSTS).
        poster: a poster to use (built with :func:`make_poster` and closed here when None).
        ledger: the durable state (opened from settings when None).
        clock: time source (defaults to UTC wall time).
        max_steps: at most this many posting steps (a thread's parts are steps).
        grace: reconciler grace period (None: bot_config or 10 minutes).
        guarded_retry: reconciler retry policy (None: bot_config or off).
        alert: called when a person must act (defaults to a critical log line).
    """
    clock = clock or (lambda: datetime.now(UTC))
    own_poster, own_ledger = poster is None, ledger is None
    ledger = ledger or open_ledger(settings, clock=clock)
    poster = poster or gated_poster(settings, ledger, clock)
    try:
        account_id = _account_id(ledger, settings, now=clock())
        block = send_block_reason(settings, poster)
        report = ReconcileReport()
        if block is None:
            try:
                report = Reconciler(
                    ledger,
                    poster,
                    account_id=account_id,
                    grace=grace,
                    guarded_retry=guarded_retry,
                    clock=clock,
                ).run()
            except PostingError as exc:
                # Stuck rows stay in `posting` (never retried blindly); posting others is safe.
                ledger.audit(
                    "reconcile.failed",
                    {"outcome": exc.outcome, "poster": poster.kind},
                    severity="warning",
                    now=clock(),
                )
        kwargs: dict[str, Any] = {"alert": alert} if alert is not None else {}
        caps = RateCaps.from_settings(settings)
        if block is None:
            # Send-time rules: a due post that would break quiet hours, spacing or a cap now is
            # moved to its next allowed time (never sent early); dry runs change nothing.
            reschedule_blocked(
                ledger, account_id, send_rules(ledger, account_id, caps), now=clock()
            )
        service = PostingService(
            ledger,
            poster,
            account_id=account_id,
            caps=caps,
            block_reason=block,
            clock=clock,
            **kwargs,
        )
        return PostingRun(reconcile=report, outcomes=service.run(max_steps))
    finally:
        if own_poster:
            poster.close()
        if own_ledger:
            close_ledger(ledger)


def reconcile(
    settings: Any,
    *,
    poster: Poster | None = None,
    ledger: PostingLedger | None = None,
    clock: Callable[[], datetime] | None = None,
    grace: timedelta | None = None,
    guarded_retry: bool | None = None,
) -> ReconcileReport:
    """Settle every row left in ``posting`` past the grace period (``xbot reconcile``)."""
    clock = clock or (lambda: datetime.now(UTC))
    own_poster, own_ledger = poster is None, ledger is None
    ledger = ledger or open_ledger(settings)
    poster = poster or gated_poster(settings, ledger, clock)
    try:
        account_id = _account_id(ledger, settings, now=clock())
        return Reconciler(
            ledger,
            poster,
            account_id=account_id,
            grace=grace,
            guarded_retry=guarded_retry,
            clock=clock,
        ).run()
    finally:
        if own_poster:
            poster.close()
        if own_ledger:
            close_ledger(ledger)
