"""Read-only questions the sensors ask the durable store (they decide; jobs act).

Nothing here writes: a sensor tick replayed after a restart asks the same questions and gets
the same answers, and the run keys built from them de-duplicate the runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from xbot_assets.vocabulary import HORIZONS

REFILL_LOW_WATER = 2
"""Refill when fewer than this many posts are queued for the coming hours."""


@dataclass(frozen=True)
class AccountView:
    """One account as the sensors see it."""

    id: int
    handle: str


_STORES: dict[tuple[str, str], Any] = {}


def cached_store(settings: Any) -> Any:
    """The durable store of these settings, opened (and its schema checked) once per process.

    Sensors are evaluated every few seconds by the daemon (every simulated hour by the main
    job); opening an engine and checking the migration head each time would cost more than the
    question they ask. Raises :class:`~xbot_assets.store.durable.errors.StoreError` like the store.
    """
    from xbot_assets.store.durable import DurableStore

    key = (settings.resolved_database_url, settings.app_env)
    store = _STORES.get(key)
    if store is None:
        store = DurableStore.from_settings(settings)
        _STORES[key] = store
    return store


def forget_stores() -> None:
    """Close and drop the cached stores (tests that start over in one process)."""
    while _STORES:
        _, store = _STORES.popitem()
        store.close()


def open_store_or_none(settings: Any) -> Any:
    """The durable store, or None when it is not migrated yet (sensors then skip)."""
    from xbot_assets.store.durable.errors import StoreError

    try:
        return cached_store(settings)
    except StoreError:
        return None


def accounts(store: Any, settings: Any) -> list[AccountView]:
    """Active accounts of this environment (the settings' own handle first, even before its
    first post)."""
    found = [AccountView(a.id, a.handle) for a in store.list_accounts(active_only=True)]
    if not any(a.handle == settings.x_handle for a in found):
        found.insert(0, AccountView(0, settings.x_handle))
    return found


def due_posts(
    store: Any, account_id: int, now: datetime, limit: int = 20, *, approved_only: bool = False
) -> list[int]:
    """Queued root posts whose time has come, oldest slot first (only approved ones with
    ``approved_only``: APPROVAL=required, where the claim would skip the others)."""
    if not account_id:
        return []
    queued = store.list_posts(account_id, status="queued", limit=500)
    due = [p for p in queued if p.thread_position == 0 and p.scheduled_at <= now]
    if approved_only:
        due = [p for p in due if p.approval == "approved"]
    due.sort(key=lambda p: (p.scheduled_at, p.id))
    return [int(p.id) for p in due[:limit]]


def queued_ahead(store: Any, account_id: int) -> int:
    """Queued root posts not yet posted (due or coming)."""
    if not account_id:
        return 0
    queued = store.list_posts(account_id, status="queued", limit=500)
    return sum(1 for p in queued if p.thread_position == 0)


def reconcile_grace(store: Any) -> timedelta:
    """The reconciler's grace period (bot_config ``posting.reconcile_grace_seconds``)."""
    from xbot_assets.posting.reconciler import GRACE_KEY, grace_from_config

    return grace_from_config(store.get_config(GRACE_KEY))


def stale_posting(store: Any, account_id: int, now: datetime) -> list[tuple[int, str]]:
    """Posts left in ``posting`` past the reconciler's grace period: (post id, attempt id)."""
    if not account_id:
        return []
    rows = store.stale_posting(older_than=reconcile_grace(store), now=now, account_id=account_id)
    return [(int(p.id), str(p.last_attempt_id or p.attempt_count)) for p in rows]


def metrics_due(store: Any, account_id: int, now: datetime) -> int:
    """How many metric snapshots of the account are due now (all horizons)."""
    if not account_id:
        return 0
    return sum(
        len(store.metrics_due(h, now=now, account_id=account_id, limit=500)) for h in HORIZONS
    )


def newest_snapshot_at(store: Any) -> datetime | None:
    """When the newest metric snapshot of the environment was collected."""
    snaps = store.list_metrics()
    return max((s.collected_at for s in snaps), default=None)
