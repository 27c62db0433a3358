"""The one metrics collector: an account's due snapshots and follower count, within budget.

``collect_account_metrics_job`` (its 6-hourly schedule) and ``post_job`` (right after each
post) both run :func:`collect_account`. It reads X through the runtime's gated reader (every
call passes the 15-minute limiter and the monthly budget), plans the pass within the month's
remaining reads (``warehouse.collector.plan_within_budget``), writes the snapshots through
``DualStoreManager.record_metric_snapshots`` (the store, or Redis's ``sync_to_supabase``
buffer while the store is down when REDIS_URL is set), and reports ``metrics_collector`` in
``system_health`` with its lag (how late the oldest snapshot it took was).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from xbot_assets.engine.runtime import Runtime
from xbot_assets.vocabulary import HORIZON_HOURS
from xbot_assets.warehouse.collector import CollectionReport

HORIZON_DELAY = {name: timedelta(hours=hours) for name, hours in HORIZON_HOURS.items()}


def snapshot_writer(runtime: Runtime, store: Any) -> Any:
    """The ``DualStoreManager`` the snapshots go through: the run's hot path (Redis's
    ``analytics_processing`` in front when REDIS_URL is set, under the store's own key space,
    which ``sync_to_supabase`` drains; the store alone otherwise)."""
    return runtime.hot_path(store)


def _lag_s(store: Any, account_id: int, now: Any) -> float:
    """How late the most overdue due snapshot of the account is, in seconds (0: none due)."""
    worst = 0.0
    for horizon, delay in HORIZON_DELAY.items():
        for post in store.metrics_due(horizon, now=now, account_id=account_id, limit=1):
            posted = post.posted_at
            if posted is not None:
                worst = max(worst, (now - (posted + delay)).total_seconds())
    return worst


def collect_account(runtime: Runtime) -> tuple[CollectionReport, int]:
    """Take the account's due snapshots and follower count; report the collector's health.

    Returns:
        The collection report and the number of follower snapshots written.
    """
    from xbot_assets.ops.component_health import reporting
    from xbot_assets.ops.component_status import COMPONENT_METRICS_COLLECTOR
    from xbot_assets.warehouse.collector import collect_due_metrics, record_followers

    store = runtime.store()
    account_id = runtime.account_id(store)
    now = runtime.now()
    with reporting(
        store.engine,
        environment=runtime.settings.app_env,
        component=COMPONENT_METRICS_COLLECTOR,
        clock=runtime.now,
    ) as figures:
        figures["lag_s"] = round(_lag_s(store, account_id, now), 1)
        reader = runtime.reader()
        gate = runtime.x_api_gate()
        report = collect_due_metrics(
            store,
            reader,
            now=now,
            account_id=account_id,
            dual=snapshot_writer(runtime, store),
            reads_left=gate.reads_left(),
        )
        followers = 0
        if not report.stopped_for_rate_limit:
            followers = record_followers(store, reader, now=now)
        figures.update(
            snapshots=report.snapshots,
            calls=report.calls,
            analytics_calls=report.analytics_calls,
            deferred_for_budget=sum(report.deferred_for_budget.values()),
        )
        if report.stopped_for_rate_limit or report.deferred_for_budget:
            figures["status"] = "degraded"
            figures["message"] = (
                "X API budget short: snapshots deferred"
                if report.deferred_for_budget
                else "X rate limit or budget reached: pass stopped early"
            )
    return report, followers
