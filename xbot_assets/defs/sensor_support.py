"""What every sensor here shares: the intervals on the rehearsal clock, the cursor, the
accounts a run can target, and the runs already in flight.

Each sensor keeps a cursor (what it has already seen or requested) and gives every run a key
that names the work (``post:<id>``, ``refill:<account>:<hour>``, ...), so a tick replayed after
a daemon restart never launches a second run for the same work. Every sensor and schedule is
stopped by default: turn them on in the UI (or with ``dagster sensor start``) on a deployment;
the main job (``xbot run``) evaluates them itself at each simulated tick.

The sensors live by family: ``store_sensors`` (accounts, the Redis drain), ``refill_sensors``,
``posting_sensors`` (posting and reconciling) and ``metrics_sensors`` (metrics, the learning
rebuild, the daily summaries). A deployment's batch sensor and its per-account twin sit in the
same family module, since each skips the work the other holds in flight.

Under Celery (``workspace.celery.yaml``) the account sensors run in the Celery location and stay
off in the main one; :func:`replaced_by_celery` makes a main-location sensor turned on by
mistake skip its tick (the Celery one wins) instead of racing the Celery one for the same work.
The sensors' health wrapper (``health.sensor_health``) applies it, so a held sensor's
``system_health`` row says ``degraded`` with the reason instead of ``ok``.
"""

import json
import math
import zlib
from datetime import datetime
from typing import Any

import dagster as dg

from xbot_assets.defs.orchestration import ACCOUNT_TAG, ACCOUNTS_TAG, accounts_partitions
from xbot_assets.defs.simtime import rehearsal_speed

STOPPED = dg.DefaultSensorStatus.STOPPED


def scaled_interval(wall_seconds: int, floor: int) -> int:
    """A sensor's minimum interval on the deployment's clock: ``wall_seconds`` of simulated time
    divided by the rehearsal speed, never below ``floor`` real seconds.

    Dagster's sensor intervals are real seconds read when the code location loads; at a speed
    factor K a 600 s rebuild tick is 600 x K simulated seconds (at 144x one tick in 24 simulated
    hours, none in a 10-minute rehearsal). At speed 1 (production: CLOCK_SPEED is refused there)
    this is ``wall_seconds`` unchanged. Read at import from the environment the daemon gave the
    code server, so the daemon and the webserver show the same interval."""
    speed = rehearsal_speed()
    return wall_seconds if speed == 1 else max(floor, round(wall_seconds / speed))


POSTING_INTERVAL = scaled_interval(30, floor=10)
REFILL_INTERVAL = scaled_interval(120, floor=20)
RECONCILE_INTERVAL = scaled_interval(300, floor=30)
REBUILD_INTERVAL = scaled_interval(600, floor=30)

NOT_MIGRATED = "the durable store is not migrated yet: run `xbot migrate`"

CELERY_LOCATION = "xbot_celery"
"""The Celery code location's name in ``workspace.celery.yaml``
(``celery_definitions.LOCATION_NAME``)."""
REPLACED_BY_CELERY: dict[str, str] = {
    "accounts_sensor": "accounts_sensor",
    "candidate_refill_sensor": "candidate_refill_sensor",
    "posting_sensor": "posting_sensor",
    "reconcile_sensor": "reconcile_sensor",
    "posting_batch_sensor": "posting_sensor",
    "refill_batch_sensor": "candidate_refill_sensor",
}
"""Each main-location sensor that stays off under Celery, and the Celery location's sensor that
does its work (the batch twins post and refill the same accounts as the per-account sensors)."""


def replaced_by_celery(context: dg.SensorEvaluationContext, name: str) -> dg.SkipReason | None:
    """Why sensor ``name`` must launch nothing this tick: it runs in a code location other than
    the Celery one while the Celery location's sensor that replaces it is on in the same
    instance (both would see the same due work in the same tick and launch it twice, in-process
    and on Celery). None when it may run: the Celery location's own sensors always may.

    Under the daemon and the webserver Dagster hands every evaluation its code location. A
    sensor evaluated outside one (the main job's simulated ticks, which play the main location
    alone, thousands of times a run) is not guarded. One instigator-state query per tick.
    Every sensor of :data:`REPLACED_BY_CELERY` is held through ``health.sensor_health``."""
    from xbot_assets.instigation import running_sensors

    replacement = REPLACED_BY_CELERY.get(name)
    origin = context.code_location_origin
    if replacement is None or origin is None or origin.location_name == CELERY_LOCATION:
        return None
    if (CELERY_LOCATION, replacement) not in running_sensors(context.instance):
        return None
    # what to do first: /readyz shows a component's reason cut to 120 characters
    return dg.SkipReason(
        f"stop {name} of location {origin.location_name}: {replacement} of location "
        f"{CELERY_LOCATION} is on and does its work under Celery, so this tick launches nothing "
        "(docs/deployment.md, Scale-out on Celery)"
    )


def twins_turned_off(context: dg.SensorEvaluationContext, name: str) -> list[str]:
    """The main location's sensors that sensor ``name`` replaces under another name (its batch
    twin: ``posting_batch_sensor`` for ``posting_sensor``) and that are not on there, when
    ``name`` runs in the Celery location; else none. Nothing else writes such a twin's
    ``system_health`` row, so the Celery sensor settles the one it wrote while held. One
    instigator-state query, only for the two Celery sensors that have a twin."""
    from xbot_assets.instigation import running_sensors

    twins = [twin for twin, by in REPLACED_BY_CELERY.items() if by == name and twin != name]
    origin = context.code_location_origin
    if not twins or origin is None or origin.location_name != CELERY_LOCATION:
        return []
    on = {
        sensor
        for location, sensor in running_sensors(context.instance)
        if location != CELERY_LOCATION
    }
    return [twin for twin in twins if twin not in on]


def sensor_cursor(context: Any) -> dict[str, Any]:
    """The sensor's JSON cursor as a dict; empty when there is none or it cannot be read."""
    try:
        value = json.loads(context.cursor) if context.cursor else {}
    except json.JSONDecodeError:
        value = {}
    return value if isinstance(value, dict) else {}


def account_partition_keys(context: Any) -> list[str]:
    """The `accounts` dynamic partitions in the order the instance added them."""
    return list(context.instance.get_dynamic_partitions(accounts_partitions.name))


def known_accounts(context: Any) -> set[str]:
    """The handles that have an ``accounts`` partition."""
    return set(account_partition_keys(context))


def store_accounts(settings: Any) -> tuple[Any, list[Any]]:
    """The durable store and its active accounts; ``(None, [])`` when it is not migrated yet."""
    from xbot_assets.engine import sensing

    store = sensing.open_store_or_none(settings)
    if store is None:
        return None, []
    return store, sensing.accounts(store, settings)


def partitioned_accounts(context: Any, settings: Any) -> tuple[Any, list[Any]]:
    """The store and its accounts that already have an ``accounts`` partition (a run can only
    target those); the store is None when it is not migrated yet."""
    store, accounts = store_accounts(settings)
    known = known_accounts(context)
    return store, [account for account in accounts if account.handle in known]


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def runs_in_flight(context: Any, job_name: str) -> list[Any]:
    """The runs of ``job_name`` queued or running."""
    return list(
        context.instance.get_runs(
            filters=dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT), limit=500
        )
    )


def accounts_with_runs_in_flight(context: Any, job_name: str) -> set[str]:
    """Accounts with a run of ``job_name`` queued or running (a batch run counts for each account
    it holds). Under the daemon a refill takes seconds to minutes (a process per run); until it
    ends the account's queue still looks low."""
    out: set[str] = set()
    for run in runs_in_flight(context, job_name):
        if ACCOUNT_TAG in run.tags:
            out.add(run.tags[ACCOUNT_TAG])
        out.update(h for h in run.tags.get(ACCOUNTS_TAG, "").split(",") if h)
    return out


MAX_RUNTIME_TAG = "dagster/max_runtime"
"""Seconds a run may stay STARTED before the daemon's run monitoring fails it (Dagster's tag;
the instance's ``run_monitoring.max_runtime_seconds`` applies to runs without it)."""


def account_run_tags(settings: Any, handle: str) -> dict[str, str]:
    """The tags of a run that works for one account: the account (one run at a time each,
    deploy/dagster.yaml's tag limit) and its time limit, ACCOUNT_RUN_MAX_SECONDS. Without the
    limit, a run whose coordinator died (the daemon's process group killed with its code
    servers) stays STARTED, and holds the account, until the instance's 30-minute limit."""
    return {ACCOUNT_TAG: handle, MAX_RUNTIME_TAG: str(settings.account_run_max_seconds)}


MAX_RUN_RETRIES = 3
"""How many times a sensor asks again for work whose run failed before doing it (a post never
claimed, a refill never started): enough for a dead coordinator, not a loop on a real error."""
RETRY = ":retry"


def retry_run_key(key: str, attempt: int) -> str | None:
    """``<base>:retry<attempt>`` for work whose run of ``key`` (itself a retry key or not)
    failed: Dagster launches a run key once, so the work is asked for under a new one. None
    when ``attempt`` is not 1..:data:`MAX_RUN_RETRIES`."""
    base = key.partition(RETRY)[0]
    return f"{base}{RETRY}{attempt}" if 0 < attempt <= MAX_RUN_RETRIES else None


def batch_posting_max_runtime(settings: Any, wait_s: float) -> str:
    """A batch posting run's time limit: it sleeps until its last slot (``wait_s`` real
    seconds), then posts and collects like an account run."""
    return str(max(0, math.ceil(wait_s)) + settings.account_run_max_seconds)


def batch_run_key(prefix: str, now: datetime, items: list[str]) -> str:
    """A run key naming the tick's work and moment. The work itself is guarded by the run tags
    (a post or account held by a run in flight is not requested again) and by each post's
    durable claim; the same work requested again after its run failed gets a new key."""
    return f"{prefix}:{now:%Y%m%dT%H%M%S}:{zlib.crc32(','.join(items).encode()):08x}"
