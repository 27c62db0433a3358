"""A post stuck in ``posting`` is reconciled by the sensor at the reconciler's own grace period,
and again later when a run settled nothing.

Before (found by a hostile review, 8 December 2026): the sensor asked after a fixed 10 minutes
while the reconciler waits ``posting.reconcile_grace_seconds``, and its run key had no time in
it; with a 30-minute grace the first run settled nothing and Dagster never launched that key
again, so the post stayed ``posting`` (counted against the caps, no alert) until a posting run of
the account happened to settle it: with ``APPROVAL=required`` and nothing approved, never.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg

from tests.orchestration.conftest import Env
from tests.orchestration.test_sensors import evaluate
from xbot_assets.posting.factory import open_ledger
from xbot_assets.posting.ledger import ClaimedPost, PostingLedger, RateCaps
from xbot_assets.posting.reconciler import GRACE_KEY
from xbot_assets.runner import Launcher, load_definitions

OPEN = RateCaps(
    max_posts_per_hour=100, max_posts_per_day=1000, min_spacing=timedelta(0),
    max_replies_per_hour=100,
)  # fmt: skip


def _stuck_post(env: Env, grace_s: int) -> tuple[PostingLedger, int, int, datetime]:
    """A post claimed and marked sent at midday, its poster killed before X saw it, under a
    grace of ``grace_s`` seconds; the ledger, account id, row id and the claim's time."""
    from xbot_assets.engine.runtime import shared_sandbox

    t0 = shared_sandbox(env.settings).clock.now().replace(hour=12, minute=0)
    ledger = open_ledger(env.settings)
    account = ledger.ensure_account(env.settings.x_handle, now=t0)
    ledger.set_config(GRACE_KEY, grace_s, actor="test", now=t0)
    ledger.enqueue(account, ["A post whose poster died after its sent mark"], scheduled_at=t0)
    claim = ledger.claim_next_due(account, OPEN, now=t0)
    assert isinstance(claim, ClaimedPost)
    assert ledger.mark_sending(claim.tweet_id, claim.attempt_id, now=t0)
    return ledger, account, claim.tweet_id, t0


def test_a_longer_grace_is_waited_for_and_the_stuck_post_is_settled(env: Env) -> None:
    defs = load_definitions()
    instance = dg.DagsterInstance.get()
    launcher = Launcher(defs, instance)
    instance.add_dynamic_partitions("accounts", [env.settings.x_handle])
    ledger, account, post, t0 = _stuck_post(env, grace_s=1800)

    asked = {}
    for minutes in (11, 29, 31, 40):
        now = t0 + timedelta(minutes=minutes)
        tick = evaluate(defs, instance, "reconcile_sensor", now)
        asked[minutes] = len(tick.run_requests or [])
        for request in tick.run_requests or []:
            launcher.launch(request, default_job="reconcile_job", origin_tag="dagster/sensor_name",
                            origin="reconcile_sensor", now=now)  # fmt: skip
    # not before the reconciler's own 30 minutes; then once, and that run settled it
    assert asked == {11: 0, 29: 0, 31: 1, 40: 0}
    [row] = [r for r in ledger.rows(account) if r["id"] == post]
    assert row["status"] == "unknown"  # not on X: a person decides (no guarded retry here)
    assert not launcher.result.failed_runs


def test_a_run_that_settled_nothing_is_asked_again_the_next_hour(env: Env) -> None:
    """The key holds the hour: within it one run, whatever its end; the next hour another."""
    defs = load_definitions()
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("accounts", [env.settings.x_handle])
    _, _, post, t0 = _stuck_post(env, grace_s=600)
    keys = [
        [r.run_key for r in evaluate(defs, instance, "reconcile_sensor", t0 + m).run_requests]
        for m in (timedelta(minutes=15), timedelta(minutes=45), timedelta(minutes=75))
    ]
    assert all(len(k) == 1 and k[0].startswith(f"reconcile:{post}:") for k in keys)
    assert keys[0] == keys[1] != keys[2]
