"""``xbot post``: post the next due post now, through the same protocol as the posting job.

The post goes through :func:`xbot_assets.posting.factory.post_due`: the send-time rules (quiet
hours, spacing, caps), the brake, the claim committed before acting, and the LIVE_POSTS rules
(staging without ``LIVE_POSTS=true`` is a dry run). Locally the account lives on the sandbox's
simulated clock: when the next queued post's slot is later than that clock, the clock moves to
the slot (as the main job would), so ``xbot post`` posts it at its slot's time.
"""

from __future__ import annotations

from typing import Any

from xbot_assets.ops.dryrun import UnknownAccountError


def post_next(settings: Any, *, account: str | None = None) -> dict[str, Any]:
    """Post the account's next due post; a dict of what happened (ids and reasons, no text)."""
    from xbot_assets.engine.runtime import build_runtime, shared_sandbox
    from xbot_assets.engine.sensing import cached_store
    from xbot_assets.posting.factory import post_due
    from xbot_assets.store.durable.errors import AccountNotFoundError

    handle = account or settings.x_handle
    store = cached_store(settings)
    try:
        row = store.get_account_by_handle(handle)
    except AccountNotFoundError:
        raise UnknownAccountError(
            f"no account @{handle} in this environment: pick one `xbot status` lists"
        ) from None
    queued = sorted(
        (p for p in store.list_posts(row.id, status="queued", limit=500) if p.thread_position == 0),
        key=lambda p: (p.scheduled_at, p.id),
    )
    if not queued:
        return {
            "account": handle,
            "status": "nothing_queued",
            "detail": "no queued post: the refill job queues them (`xbot run`, or the "
            "candidate_refill_sensor on a deployment)",
            "outcomes": [],
        }
    simulated = None
    if settings.resolved_poster == "sandbox":
        now = shared_sandbox(settings).clock.now()
        simulated = max(now, queued[0].scheduled_at)
    runtime = build_runtime(settings, handle=handle, now=simulated)
    poster = runtime.poster()
    try:
        result = post_due(runtime.settings, poster=poster, clock=runtime.now)
    finally:
        poster.close()
        runtime.close()
    out = result.as_dict()
    posted = result.posted
    return {
        "account": handle,
        "status": "posted" if posted else (result.outcomes[-1].status if result.outcomes else ""),
        "detail": (
            f"posted post {posted[0].tweet_id} as X id {posted[0].x_id}"
            if posted
            else "; ".join(o.reason for o in result.outcomes if o.reason)
            or "nothing was due (a post may have been moved by the send-time rules)"
        ),
        "at": runtime.now().isoformat(),
        "clock": "sandbox (simulated)" if simulated is not None else "wall",
        "outcomes": out["outcomes"],
    }
