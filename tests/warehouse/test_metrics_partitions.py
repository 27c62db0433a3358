"""tweet_metrics through Dagster: one partition per (UTC day, account), on a real SQLite store.

Materialising one account's day loads that account's snapshots of that day and leaves every
other account's rows alone; ``refresh_all`` loads every (day, account) the store has, adding
the account partitions the instance lacks; the 30-minute cron asks for the latest day of every
account.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import duckdb
import pytest

from xbot_assets.config import Settings
from xbot_assets.defs.warehouse import RANGE_END_TAG, RANGE_START_TAG
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.models import MetricSnapshot
from xbot_assets.warehouse.refresh import refresh_all

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DAY1, DAY2 = date(2026, 1, 5), date(2026, 1, 6)
ALPHA, BETA = "alpha_acct", "beta_acct"


def _definitions() -> dg.Definitions:
    # The warehouse's own definitions, as test_graph loads them (no dbt needed here).
    from xbot_assets.defs import resources, warehouse

    return dg.Definitions.merge(resources.defs, warehouse.defs)


def _fill(store: DurableStore) -> dict[str, int]:
    """Two accounts posting on two days; 1h and 6h snapshots the same day. Returns their ids."""
    ids = {}
    for n, handle in enumerate((ALPHA, BETA)):
        account = store.ensure_account(handle)
        ids[handle] = account.id
        snaps = []
        for day in range(2):
            at = T0 + timedelta(days=day, minutes=n)
            post = store.enqueue_post(
                account.id, f"{handle} tip {day}: use pytest", scheduled_at=at
            )
            claim = store.claim_post(post.id, now=at)
            assert claim is not None
            store.mark_posted(
                post.id, x_id=str(5000 + 10 * n + day), attempt_id=claim.attempt_id, posted_at=at
            )
            for horizon, hours in (("1h", 1), ("6h", 6)):
                snaps.append(
                    MetricSnapshot(tweet_id=post.id, horizon=horizon,
                                   collected_at=at + timedelta(hours=hours),
                                   impressions=100 * (n + 1), likes=n + 1)
                )  # fmt: skip
        # alpha has a third snapshot on day 2, so the accounts' counts differ.
        if handle == ALPHA:
            snaps.append(
                MetricSnapshot(tweet_id=post.id, horizon="24h",
                               collected_at=T0 + timedelta(days=1, hours=10), impressions=150)
            )  # fmt: skip
        store.upsert_metrics(snaps)
    return ids


def _rows_by_account_day(settings: Settings) -> dict[tuple[int, date], int]:
    con = duckdb.connect(str(settings.resolved_warehouse_path), read_only=True)
    try:
        rows = con.execute(
            "select account_id, cast(collected_at at time zone 'UTC' as date), count(*) "
            "from raw.tweet_metrics group by 1, 2"
        ).fetchall()
    finally:
        con.close()
    return {(int(a), d): int(n) for a, d, n in rows}


def _key(day: date, handle: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"day": day.isoformat(), "account": handle})


def _materialize(
    definitions: dg.Definitions, instance: dg.DagsterInstance, key: dg.MultiPartitionKey
) -> dict[str, object]:
    job = definitions.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance, partition_key=key, asset_selection=[dg.AssetKey("tweet_metrics")]
    )
    assert result.success
    [event] = result.asset_materializations_for_node("tweet_metrics")
    assert event.partition == key
    return {k: v.value for k, v in event.metadata.items()}


def test_one_partition_per_account_day_loads_only_that_slice(
    xbot_env: Settings, store: DurableStore
) -> None:
    ids = _fill(store)
    definitions = _definitions()
    partitions_def = definitions.resolve_assets_def("tweet_metrics").partitions_def
    assert isinstance(partitions_def, dg.MultiPartitionsDefinition)
    assert {d.name for d in partitions_def.partitions_defs} == {"day", "account"}

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("accounts", [ALPHA, BETA])
        meta = _materialize(definitions, instance, _key(DAY2, ALPHA))
        assert meta["dagster/row_count"] == 3
        assert (meta["day"], meta["account"]) == (DAY2.isoformat(), ALPHA)
        assert _rows_by_account_day(xbot_env) == {(ids[ALPHA], DAY2): 3}

        # beta's day 2 is added beside alpha's, which it leaves as it was.
        assert _materialize(definitions, instance, _key(DAY2, BETA))["dagster/row_count"] == 2
        assert _rows_by_account_day(xbot_env) == {(ids[ALPHA], DAY2): 3, (ids[BETA], DAY2): 2}

        # Rematerialising alpha's day replaces alpha's slice only (no duplicates, beta intact).
        _materialize(definitions, instance, _key(DAY2, ALPHA))
        assert _rows_by_account_day(xbot_env) == {(ids[ALPHA], DAY2): 3, (ids[BETA], DAY2): 2}

        # An account partition with no store row yet (X_HANDLE before its first post) loads
        # nothing instead of failing the run.
        instance.add_dynamic_partitions("accounts", ["not_yet_posting"])
        empty = _materialize(definitions, instance, _key(DAY1, "not_yet_posting"))
        assert empty["dagster/row_count"] == 0 and "not_yet_posting" in str(empty["loaded"])
        assert _rows_by_account_day(xbot_env) == {(ids[ALPHA], DAY2): 3, (ids[BETA], DAY2): 2}


def test_refresh_all_loads_every_account_day_and_adds_the_account_partitions(
    xbot_env: Settings, store: DurableStore
) -> None:
    ids = _fill(store)
    with dg.instance_for_test() as instance:
        assert instance.get_dynamic_partitions("accounts") == []
        refreshed = refresh_all(_definitions(), instance, xbot_env, only_groups=set())
        assert sorted(instance.get_dynamic_partitions("accounts")) == [ALPHA, BETA]
        status = instance.get_materialized_partitions(dg.AssetKey("tweet_metrics"))
    pairs = [(d.isoformat(), h) for d in (DAY1, DAY2) for h in (ALPHA, BETA)]
    assert refreshed.metric_partitions == pairs
    assert refreshed.metric_days == [DAY1.isoformat(), DAY2.isoformat()]
    assert status == {_key(date.fromisoformat(d), h) for d, h in pairs}
    assert _rows_by_account_day(xbot_env) == {
        (ids[ALPHA], DAY1): 2,
        (ids[ALPHA], DAY2): 3,
        (ids[BETA], DAY1): 2,
        (ids[BETA], DAY2): 2,
    }


def test_the_extraction_cron_requests_the_latest_day_of_every_account() -> None:
    definitions = _definitions()
    start = datetime(2026, 1, 7, 10, 5, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("accounts", [ALPHA, BETA])
        first = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, evaluation_time=start
        )
        later = dg.evaluate_automation_conditions(
            defs=definitions,
            instance=instance,
            cursor=first.cursor,
            evaluation_time=start + timedelta(minutes=30),
        )
    requested = {
        key
        for run in (first, later)
        for r in run.results
        if r.key == dg.AssetKey("tweet_metrics")
        for key in r.true_subset.expensively_compute_partition_keys()
    }
    today = date(2026, 1, 7).isoformat()
    assert requested == {_key(date.fromisoformat(today), h) for h in (ALPHA, BETA)}


def test_a_tick_loads_every_account_in_one_run(xbot_env: Settings, store: DurableStore) -> None:
    """The cron's partitions (the day of every account) are one run, not one per account: the
    automation sensor emits them as a backfill, and the backfill daemon splits a backfill into
    runs by the asset's BackfillPolicy (without one: a run per partition, i.e. per account, each
    a process importing the code location: 100 queued runs at 100 accounts). That run, given
    the partition range as the daemon tags it, loads every account's day."""
    from dagster._core.definitions.automation_tick_evaluation_context import (
        AssetKeyPartitionKey,
        build_run_requests_with_backfill_policies,
    )

    ids = _fill(store)
    definitions = _definitions()
    handles = [ALPHA, BETA, "gamma_acct"]  # gamma: a partition, no store row yet
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("accounts", handles)
        asset = dg.AssetKey("tweet_metrics")
        requested = [AssetKeyPartitionKey(asset, str(_key(DAY2, h))) for h in handles]
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            [run] = build_run_requests_with_backfill_policies(
                requested, definitions.resolve_asset_graph(), instance
            )
        result = definitions.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, tags=run.tags, asset_selection=[asset]
        )
        assert result.success
        assert instance.get_materialized_partitions(asset) == {_key(DAY2, h) for h in handles}
    events = result.asset_materializations_for_node("tweet_metrics")
    assert {e.partition for e in events} == {_key(DAY2, h) for h in handles}  # in one run
    assert {e.metadata["partitions_loaded"].value for e in events} == {3}
    assert _rows_by_account_day(xbot_env) == {(ids[ALPHA], DAY2): 3, (ids[BETA], DAY2): 2}


@pytest.mark.parametrize("speed", [None, "144"])
def test_the_rebuild_sensor_requests_each_new_account_day_and_adds_missing_accounts(
    xbot_env: Settings, store: DurableStore, monkeypatch: pytest.MonkeyPatch, speed: str | None
) -> None:
    """At a rehearsal speed the sensor also extracts the other raw tables (the 30-minute
    wall-clock cron is 72 simulated hours apart at 144x, and the eager rebuild waits for every
    input); at speed 1 (production) the cron does it."""
    from xbot_assets.defs import metrics_sensors, orchestration
    from xbot_assets.defs.resources import XbotRuntime, XbotSettings

    if speed:
        monkeypatch.setenv("CLOCK_SPEED", speed)
        monkeypatch.setenv("CLOCK_EPOCH", T0.isoformat())
    _fill(store)
    definitions = dg.Definitions.merge(_definitions(), orchestration.defs, metrics_sensors.defs)
    now = T0 + timedelta(days=2)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("accounts", [ALPHA])  # beta's not added yet
        # With the instance's ref, as the daemon evaluates sensors: Dagster then validates the
        # run requests' partitions after the sensor's own partition additions.
        context = dg.build_sensor_context(
            instance=instance,
            instance_ref=instance.get_ref(),
            sensor_name="learning_rebuild_sensor",
            definitions=definitions,
            resources={
                "xbot_settings": XbotSettings(),
                "xbot_runtime": XbotRuntime(simulated_now=now.isoformat()),
            },
        )
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            data = metrics_sensors.learning_rebuild_sensor.evaluate_tick(context)
    # ONE run over every (day, account) with new snapshots: both days, both accounts (beta's
    # partition is added by the same tick, after alpha's)
    assert data.run_requests is not None and data.dynamic_partitions_requests is not None
    [metrics] = [r for r in data.run_requests if r.job_name == "tweet_metrics_job"]
    assert (metrics.tags[RANGE_START_TAG], metrics.tags[RANGE_END_TAG]) == (
        str(_key(DAY1, ALPHA)),
        str(_key(DAY2, BETA)),
    )
    # The rebuild that follows is the assets' declarative automation, not this sensor's.
    jobs = {r.job_name for r in data.run_requests}
    assert jobs == ({"tweet_metrics_job", "raw_extraction_job"} if speed else {"tweet_metrics_job"})
    assert [r.partition_keys for r in data.dynamic_partitions_requests] == [[BETA]]


def test_day_partitions_reach_the_rehearsal_days(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 144x the simulated day runs a day every 10 minutes ahead of Dagster's wall-clock
    partitions: the rebuild sensor's load of tomorrow (simulated) failed on a missing partition.
    The day partitions reach a 2-hour rehearsal's days there, and stay at today on the wall
    clock (the cron's latest day is today's)."""
    from xbot_assets.defs.warehouse import days_ahead

    monkeypatch.delenv("CLOCK_SPEED", raising=False)
    assert days_ahead() == 1
    monkeypatch.setenv("CLOCK_SPEED", "144")
    assert days_ahead() == 13
    wall = datetime(2026, 12, 6, 5, 40, tzinfo=UTC)
    days = dg.DailyPartitionsDefinition(start_date="2026-12-01", end_offset=days_ahead())
    with dg.partition_loading_context(effective_dt=wall):
        keys = days.get_partition_keys()
    assert "2026-12-07" in keys and keys[-1] == "2026-12-18"
