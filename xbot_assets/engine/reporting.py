"""The poster and the Redis sync report in ``system_health`` (status, lag, last error).

The jobs' ops call these instead of the bare posting and sync entry points, so every run of
``post_job`` and ``sync_to_supabase_job`` leaves a row ``xbot status`` and ``/readyz`` read.
"""

from __future__ import annotations

from typing import Any

from xbot_assets.engine.runtime import Runtime

TROUBLE = ("stopped", "left_for_reconciler")
"""Outcomes that need a person or the reconciler: the poster reports ``degraded``/``down``."""


def post_and_report(runtime: Runtime, poster: Any) -> Any:
    """Post what is due (``posting.factory.post_due``) and record the poster's row: ``down``
    when posting stopped (brake), ``degraded`` when a post was left for the reconciler or the
    X API budget held it back, else ``ok``; ``lag_s`` is how late the latest post went out
    after its slot."""
    from xbot_assets.ops.component_health import reporting
    from xbot_assets.ops.component_status import COMPONENT_POSTER
    from xbot_assets.posting.factory import post_due

    store = runtime.store()
    with reporting(
        store.engine,
        environment=runtime.settings.app_env,
        component=COMPONENT_POSTER,
        clock=runtime.now,
    ) as figures:
        result = post_due(runtime.settings, poster=poster, clock=runtime.now)
        statuses = [o.status for o in result.outcomes]
        figures["posted"] = len(result.posted)
        figures["outcomes"] = {s: statuses.count(s) for s in sorted(set(statuses))}
        lags = [
            (runtime.now() - store.get_post(o.tweet_id).scheduled_at).total_seconds()
            for o in result.posted
            if o.tweet_id is not None
        ]
        if lags:
            figures["lag_s"] = round(max(lags), 1)
        reasons = [o.reason for o in result.outcomes if o.status in (*TROUBLE, "released")]
        if "stopped" in statuses:
            figures["status"] = "down"
        elif any(s in TROUBLE for s in statuses) or any("budget" in (r or "") for r in reasons):
            figures["status"] = "degraded"
        if reasons and figures.get("status"):
            figures["message"] = "; ".join(r for r in reasons if r)[:300]
    return result


def drain_and_report(settings: Any) -> Any:
    """Drain what Redis buffered into the durable store and record the ``sync`` row
    (``lag_s``: 0 when the buffer emptied; ``degraded`` when a side was down)."""
    from xbot_assets.ops.component_health import COMPONENT_SYNC, reporting
    from xbot_assets.store.hot.dual import DualStoreManager
    from xbot_assets.store.timebase import settings_clock

    manager = DualStoreManager.from_settings(settings)
    with reporting(
        manager.engine,
        environment=settings.app_env,
        component=COMPONENT_SYNC,
        clock=settings_clock(settings),
    ) as figures:
        report = manager.drain()
        figures["acked"] = report.acked
        figures["dead"] = report.dead
        if report.durable_down or report.redis_down:
            figures["status"] = "degraded"
            figures["message"] = (
                "durable store down: events stay buffered"
                if report.durable_down
                else "Redis down: nothing to drain"
            )
    return report
