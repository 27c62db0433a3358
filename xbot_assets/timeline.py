"""The main job's timeline: its store, its sandbox and its Dagster instance are one.

``xbot run`` continues the store's simulated clock, and stamps the runs, run keys, sensor
cursors and ticks it leaves in the Dagster instance with that clock. A new store (``.xbot``
deleted, ``.dagster_home`` kept), or another scenario or seed (another sandbox, with its own
clock from the epoch), would restart the clock under run keys already used: seen on 7 December
2026, such a run de-duplicated every request, posted nothing and exited 0. These checks run
before the job writes anything and say what to do instead (exit 2 from ``xbot run``), as does a
second ``xbot run`` on a store while one runs (:func:`one_main_job`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dagster as dg

from xbot_assets.config import Settings
from xbot_assets.defs.simtime import SIMULATED_NOW_TAG
from xbot_assets.ops.status import SIMULATED_UNTIL_KEY

UNTIL_KEY = SIMULATED_UNTIL_KEY
"""bot_config key: the simulated time the last ``xbot run`` stopped at (the next one starts
there; ``xbot status`` reads it)."""
SANDBOX_KEY = "main_job.sandbox"
"""bot_config key: the sandbox scenario and seed the store's main job runs against."""


def sandbox_of(settings: Settings) -> dict[str, Any]:
    """The sandbox these settings run, as :data:`SANDBOX_KEY` records it."""
    return {"scenario": settings.sandbox_scenario, "seed": settings.sandbox_seed}


def check_store_follows_sandbox(store: Any, settings: Settings, start: datetime) -> None:
    """Refuse a sandbox other than the one the store's main job ran, or one whose clock went
    back behind where that job stopped.

    Each (scenario, seed) is a sandbox of its own, with its own journal and clock from the
    epoch: over a used store the clock would jump back, the store's posts would name tweets
    that sandbox never had, and the run keys would collide as in
    :func:`check_instance_follows_store`. Another scenario or seed gets folders of its own. A
    clock ahead of the store's is fine (``xbot post`` moves it to a post's slot).
    """
    ran = store.get_config(SANDBOX_KEY) or {}
    this = sandbox_of(settings)
    until = store.get_config(UNTIL_KEY)
    own = (
        f"folders of its own (XBOT_HOME=.xbot-{this['scenario']}-{this['seed']} "
        f"DAGSTER_HOME=$PWD/.dagster_home-{this['scenario']}-{this['seed']} xbot migrate, then "
        "xbot run with the same two settings)"
    )
    if ran and ran != this:
        raise RuntimeError(
            f"this store's main job runs the sandbox of scenario {ran.get('scenario')!r}, seed "
            f"{ran.get('seed')} (up to {until}); scenario {this['scenario']!r}, seed "
            f"{this['seed']} is another sandbox with a clock of its own. Run it in {own}, or "
            "start afresh with `make clean`"
        )
    if until is not None and start < datetime.fromisoformat(until):
        raise RuntimeError(
            f"the sandbox's clock stands at {start.isoformat()}, before {until}, where this "
            "store's main job stopped: its journal (XBOT_HOME/sandbox/) was removed, or the "
            f"store ran another scenario or seed. Restore the journal, run this sandbox in "
            f"{own}, or start afresh with `make clean`"
        )


def check_instance_follows_store(
    instance: dg.DagsterInstance, start: datetime, *, resumed: bool
) -> None:
    """Refuse a Dagster instance whose main-job runs come from another store's timeline.

    The main job's run keys, sensor cursors and ticks are stamped with the simulated clock, and a
    new store restarts that clock at the sandbox's epoch. Over an instance kept from an earlier
    store (``.xbot`` deleted, ``.dagster_home`` kept) every run key of the new timeline was taken
    already: the job de-duplicated every request, posted nothing and exited 0. So the instance's
    latest simulated moment must not be past where this store's clock stands (a resumed store
    may share its last moment). Checked before anything is written; the history is the user's
    to keep, so this says what to remove rather than removing it.
    """
    stamped = dict(instance.get_run_tags(tag_keys=[SIMULATED_NOW_TAG])).get(SIMULATED_NOW_TAG)
    if not stamped:
        return
    latest = max(datetime.fromisoformat(value) for value in stamped)
    if latest < start or (resumed and latest == start):
        return
    home = os.environ.get("DAGSTER_HOME", "DAGSTER_HOME")
    raise RuntimeError(
        f"the Dagster instance in {home} holds main-job runs up to simulated {latest.isoformat()}, "
        f"but this store's clock stands at {start.isoformat()}: they come from another store "
        "(was .xbot deleted and .dagster_home kept?), and their run keys would make this run "
        "skip every post. Start both afresh with `make clean` (removes .xbot and "
        ".dagster_home), point DAGSTER_HOME at an empty folder, or restore the store they "
        "belong to"
    )


LOCK_FILE = "main_job.lock"


@contextlib.contextmanager
def one_main_job(settings: Settings) -> Iterator[None]:
    """Hold the store's main-job lock (``XBOT_HOME/main_job.lock``) while ``xbot run`` runs.

    Two main jobs on one store would read the same queue and the same run keys before either
    launched a run, so both would launch it: every refill, collect and post attempt twice
    (the durable claim keeps a post from going out twice, not the rest). The second one exits
    2 naming the first's pid; the lock dies with its process, so a killed run leaves none.
    """
    path = settings.xbot_home / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RuntimeError(
                f"another `xbot run` (pid {holder}) is running on the store in "
                f"{settings.xbot_home}: wait for it to end or stop it; two at once would launch "
                "every run twice"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
