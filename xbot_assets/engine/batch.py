"""Batch runs of the deployment: many accounts' work in one run, one process start-up.

Under the daemon every run is a process that imports the code location (~6 CPU s with
bytecode), while posting one post or refilling one account costs a fraction of that. So the
deployment's batch sensors (``posting_batch_sensor``, ``refill_batch_sensor``) hand one run the
work of every account due in a tick. Each account is still served through its own runtime: its
durable claim (at-most-once), caps and send-time rules (``posting.factory.post_due``), its
collector and its own refill; a batch changes how many processes start, not what an account does.

A batch posting run is launched a little *before* its slots (the sensor's lead) and waits for
each slot on the deployment's clock, so the run's start-up does not make posts late.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

START_ALLOWANCE_S = 20.0
"""Real seconds a batch run is given to start (its process imports the code location: ~6 CPU s
with bytecode) before the first slot it holds, until runs have been timed."""
MAX_LEAD_S = 300.0
"""The longest lead (real seconds), however slow runs have been to start."""


def lead_seconds(starts: list[float], tick_s: float) -> float:
    """The lead (real seconds) a posting run needs before its first slot: 1.5 x the slowest of
    the recent runs' starts (queueing, launch, import), at least the allowance, plus a tick."""
    return min(MAX_LEAD_S, max(START_ALLOWANCE_S, 1.5 * max(starts, default=0.0)) + tick_s)


MAX_WAIT_S = 600.0
"""The longest a run waits (real seconds) for one slot; a slot further off stays queued for a
later run (the sensor never hands a run a slot that far ahead)."""


@dataclass(frozen=True)
class BatchItem:
    """One post of a batch: its account, id and slot."""

    handle: str
    post_id: int
    slot: datetime

    @classmethod
    def parse(cls, text: str) -> BatchItem:
        """From ``<handle>|<post id>|<slot, ISO>`` (``defs.posting_sensors.batch_post_item``)."""
        handle, post_id, slot = text.split("|")
        return cls(handle, int(post_id), datetime.fromisoformat(slot))


@dataclass
class BatchReport:
    """What a batch posting run did (the run's metadata)."""

    posted: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    late_s: list[float] = field(default_factory=list)
    """Simulated seconds each post went out after its slot."""
    waited_s: float = 0.0
    """Real seconds the run waited for slots."""
    snapshots: dict[str, int] = field(default_factory=dict)


def wait_for(
    slot: datetime,
    now: Callable[[], datetime],
    speed: float,
    sleep: Callable[[float], None] = time.sleep,
    max_wait_s: float = MAX_WAIT_S,
) -> float:
    """Sleep until ``now() >= slot`` on the deployment's clock (``speed`` simulated seconds per
    real second); returns the real seconds waited (at most ``max_wait_s``)."""
    waited = 0.0
    while waited < max_wait_s:
        ahead = (slot - now()).total_seconds() / speed
        if ahead <= 0:
            break
        step = min(ahead, 2.0, max_wait_s - waited)
        sleep(step)
        waited += step
    return waited


class AccountRuntimes:
    """One runtime (and poster) per account for the run's lifetime, all closed at the end."""

    def __init__(self, open_runtime: Callable[[str], Any]) -> None:
        self.open_runtime = open_runtime
        self.runtimes: dict[str, Any] = {}
        self.posters: dict[str, Any] = {}

    def runtime(self, handle: str) -> Any:
        if handle not in self.runtimes:
            self.runtimes[handle] = self.open_runtime(handle)
        return self.runtimes[handle]

    def poster(self, handle: str) -> Any:
        if handle not in self.posters:
            self.posters[handle] = self.runtime(handle).poster()
        return self.posters[handle]

    def close(self) -> None:
        for poster in self.posters.values():
            poster.close()
        for runtime in self.runtimes.values():
            runtime.close()
        self.posters.clear()
        self.runtimes.clear()


def post_batch(
    items: list[BatchItem],
    runtimes: AccountRuntimes,
    *,
    speed: float,
    wait: bool = True,
    collect_handles: list[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchReport:
    """Post each item at its slot (oldest first) through its account's ``post_and_report``,
    then collect the due metric snapshots of ``collect_handles`` (default: the items' accounts).

    ``post_and_report`` posts whatever of the account is due when called (the claim makes a
    post go out once even if another run reaches it first); a post the send-time rules move
    (quiet hours, spacing, caps) stays queued at its new slot for a later run.
    """
    from xbot_assets.engine.collect import collect_account
    from xbot_assets.engine.reporting import post_and_report

    report = BatchReport()
    for item in sorted(items, key=lambda i: (i.slot, i.handle, i.post_id)):
        runtime = runtimes.runtime(item.handle)
        if wait:
            report.waited_s += wait_for(item.slot, runtime.now, speed, sleep)
        result = post_and_report(runtime, runtimes.poster(item.handle))
        for outcome in result.outcomes:
            report.outcomes[outcome.status] = report.outcomes.get(outcome.status, 0) + 1
        for outcome in result.posted:
            report.posted[item.handle] = report.posted.get(item.handle, 0) + 1
            if outcome.tweet_id is not None:
                slot = runtime.store().get_post(outcome.tweet_id).scheduled_at
                report.late_s.append(round((runtime.now() - slot).total_seconds(), 1))
    handles = collect_handles if collect_handles is not None else sorted({i.handle for i in items})
    for handle in handles:
        collection, _ = collect_account(runtimes.runtime(handle))
        if collection.snapshots:
            report.snapshots[handle] = collection.snapshots
    return report


def accounts_with_metrics_due(settings: Any, now: datetime) -> list[str]:
    """Handles of the environment's active accounts with a metric snapshot due at ``now``."""
    from xbot_assets.engine import sensing

    store = sensing.cached_store(settings)
    return [
        a.handle for a in sensing.accounts(store, settings) if sensing.metrics_due(store, a.id, now)
    ]
