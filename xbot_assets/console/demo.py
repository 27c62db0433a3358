"""Fill a fresh local store the way the engine does, for the console's tests, benchmark and
screenshots: the real decision code (Thompson sampling, generator, guard, scorer) queues a day
of posts with every field the queue page explains; nothing is invented here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from xbot_assets.engine.planner import SCHEDULE_CONFIG_KEY


def engine_fill(
    settings: Any, *, posts_per_day: int = 6, n_candidates: int = 3, now: datetime | None = None
) -> datetime:
    """Migrate the settings' local store, queue the next 24 hours of posts with the engine
    (sandbox X, offline generator) and return the simulated time the fill ran at."""
    from xbot_assets.engine.decide import refill
    from xbot_assets.engine.runtime import build_runtime, shared_sandbox
    from xbot_assets.engine.sensing import cached_store
    from xbot_assets.store.durable.migrate import upgrade

    if settings.resolved_poster != "sandbox":
        raise ValueError("engine_fill runs against the sandbox only: use APP_ENV=local")
    upgrade(settings.resolved_database_url)
    store = cached_store(settings)
    start = now or shared_sandbox(settings).clock.now()
    schedule = dict(store.get_config(SCHEDULE_CONFIG_KEY, {}) or {})
    schedule["posts_per_day"] = posts_per_day
    store.set_config(SCHEDULE_CONFIG_KEY, schedule, actor="console demo", reason="fill", now=start)
    runtime = build_runtime(settings, now=start)
    try:
        refill(runtime, n_candidates=n_candidates)
    finally:
        runtime.close()
    return start
