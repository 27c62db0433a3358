"""Under Celery the account sensors run in the Celery location only; turned on by mistake in the
main location too (a click in the UI), the main one launches nothing while the Celery one is on.

Both locations are loaded in process from their modules, as ``workspace.celery.yaml`` names
them; sensors are turned on with ``instance.start_sensor`` (what the UI's switch does) and
evaluated through the location (``get_sensor_execution_data``: the daemon's path, which hands the
sensor its code location), on a real instance (the test's DAGSTER_HOME) and store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from tests.orchestration.conftest import Env

pytest.importorskip(
    "dagster_celery",
    reason="dagster-celery is in the 'celery' dependency group (make install syncs every group)",
)

MAIN = "xbot"


@contextmanager
def _locations(instance: dg.DagsterInstance) -> Iterator[dict[str, Any]]:
    """The main location and the Celery one, by name, loaded in process."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    from xbot_assets.celery_definitions import LOCATION_NAME

    modules = {MAIN: "xbot_assets.definitions", LOCATION_NAME: "xbot_assets.celery_definitions"}
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(
                InProcessCodeLocationOrigin(
                    LoadableTargetOrigin(module_name=module), location_name=name
                ).create_location(instance)
            )
            for name, module in modules.items()
        }


def _sensor(location: Any, name: str) -> Any:
    from xbot_assets.instigation import REPOSITORY_NAME

    return location.get_repository(REPOSITORY_NAME).get_sensor(name)


def _tick(instance: dg.DagsterInstance, location: Any, name: str) -> Any:
    """One tick of ``name`` in ``location`` as the daemon evaluates it (on the wall clock)."""
    sensor = _sensor(location, name)
    return location.get_sensor_execution_data(
        instance, sensor.handle.repository_handle, name, None, None, None, None, None
    )


@pytest.fixture
def due_post(env: Env) -> tuple[dg.DagsterInstance, int]:
    """The env's account with its partition and one post due now (the wall clock: the
    daemon's); the Dagster instance."""
    from xbot_assets.engine.sensing import cached_store

    instance = dg.DagsterInstance.get()
    handle = env.settings.x_handle
    instance.add_dynamic_partitions("accounts", [handle])
    store = cached_store(env.settings)
    account = store.ensure_account(handle)
    now = datetime.now(UTC)
    post = store.enqueue_post(
        int(account.id),
        "Tests first, then the fix.",
        scheduled_at=now - timedelta(minutes=1),
        now=now - timedelta(minutes=5),
    )
    return instance, int(post.id)


def _skipped_for_celery(data: Any, name: str, replacement: str) -> None:
    from xbot_assets.celery_definitions import LOCATION_NAME

    assert not data.run_requests
    assert data.skip_message == (
        f"stop {name} of location {MAIN}: {replacement} of location {LOCATION_NAME} is on and "
        "does its work under Celery, so this tick launches nothing (docs/deployment.md, "
        "Scale-out on Celery)"
    )


def test_the_main_posting_sensor_stays_idle_while_the_celery_one_is_on(
    due_post: tuple[dg.DagsterInstance, int],
) -> None:
    """Both posting_sensors on: the main one requests nothing and says why, the Celery one
    requests the post; the Celery one stopped: the main one requests it as before."""
    from xbot_assets.celery_definitions import LOCATION_NAME

    instance, post_id = due_post
    with _locations(instance) as at:
        celery = _sensor(at[LOCATION_NAME], "posting_sensor")
        instance.start_sensor(_sensor(at[MAIN], "posting_sensor"))
        instance.start_sensor(celery)

        main_tick = _tick(instance, at[MAIN], "posting_sensor")
        _skipped_for_celery(main_tick, "posting_sensor", "posting_sensor")
        (request,) = _tick(instance, at[LOCATION_NAME], "posting_sensor").run_requests
        assert request.tags["xbot/post_id"] == str(post_id)  # the Celery one wins

        instance.stop_sensor(celery.get_remote_origin_id(), celery.selector_id, celery)
        (request,) = _tick(instance, at[MAIN], "posting_sensor").run_requests
        assert request.tags["xbot/post_id"] == str(post_id)


def test_the_main_posting_batch_sensor_stays_idle_while_the_celery_posting_sensor_is_on(
    due_post: tuple[dg.DagsterInstance, int],
) -> None:
    """The batch twin posts the same accounts: it too yields to the Celery posting_sensor, and
    requests its batch run once that one is stopped."""
    from xbot_assets.celery_definitions import LOCATION_NAME
    from xbot_assets.defs.orchestration import POST_IDS_TAG

    instance, post_id = due_post
    with _locations(instance) as at:
        celery = _sensor(at[LOCATION_NAME], "posting_sensor")
        instance.start_sensor(_sensor(at[MAIN], "posting_batch_sensor"))
        instance.start_sensor(celery)

        main_tick = _tick(instance, at[MAIN], "posting_batch_sensor")
        _skipped_for_celery(main_tick, "posting_batch_sensor", "posting_sensor")

        instance.stop_sensor(celery.get_remote_origin_id(), celery.selector_id, celery)
        (request,) = _tick(instance, at[MAIN], "posting_batch_sensor").run_requests
        assert request.tags[POST_IDS_TAG] == str(post_id)


def test_the_main_accounts_sensor_yields_and_the_celery_one_does_not(env: Env) -> None:
    """A sensor that launches no run (it adds the account's partition) is guarded the same way;
    the main location's sensor being on does not hold the Celery one back."""
    from xbot_assets.celery_definitions import LOCATION_NAME

    instance = dg.DagsterInstance.get()
    with _locations(instance) as at:
        instance.start_sensor(_sensor(at[MAIN], "accounts_sensor"))
        (added,) = _tick(instance, at[LOCATION_NAME], "accounts_sensor").dynamic_partitions_requests
        assert added.partition_keys == [env.settings.x_handle]

        instance.start_sensor(_sensor(at[LOCATION_NAME], "accounts_sensor"))
        data = _tick(instance, at[MAIN], "accounts_sensor")
        assert not data.dynamic_partitions_requests
        _skipped_for_celery(data, "accounts_sensor", "accounts_sensor")


def test_every_sensor_off_in_the_main_location_yields_to_the_celery_sensor_doing_its_work(
    due_post: tuple[dg.DagsterInstance, int],
) -> None:
    """The six of OFF_IN_MAIN_LOCATION, each replaced by one of the Celery location's account
    sensors (the batch twins by the per-account sensor of their kind)."""
    from xbot_assets.celery_definitions import ACCOUNT_SENSORS, LOCATION_NAME, OFF_IN_MAIN_LOCATION
    from xbot_assets.defs.sensor_support import REPLACED_BY_CELERY

    assert set(REPLACED_BY_CELERY) == OFF_IN_MAIN_LOCATION
    assert set(REPLACED_BY_CELERY.values()) == set(ACCOUNT_SENSORS)
    instance, _ = due_post
    with _locations(instance) as at:
        for name in ACCOUNT_SENSORS:
            instance.start_sensor(_sensor(at[LOCATION_NAME], name))
        for name in sorted(OFF_IN_MAIN_LOCATION):
            data = _tick(instance, at[MAIN], name)
            _skipped_for_celery(data, name, REPLACED_BY_CELERY[name])
            assert not data.dynamic_partitions_requests


def test_the_main_jobs_own_ticks_are_not_held(due_post: tuple[dg.DagsterInstance, int]) -> None:
    """The main job plays the main location alone, outside any code location: its ticks (here
    as the runner builds them) are not guarded, whatever the instance says."""
    from tests.orchestration.test_sensors import evaluate
    from xbot_assets.celery_definitions import LOCATION_NAME
    from xbot_assets.runner import load_definitions

    instance, post_id = due_post
    with _locations(instance) as at:
        instance.start_sensor(_sensor(at[LOCATION_NAME], "posting_sensor"))
    tick = evaluate(load_definitions(), instance, "posting_sensor", datetime.now(UTC))
    (request,) = tick.run_requests
    assert request.tags["xbot/post_id"] == str(post_id)


def _health(env: Env, name: str) -> Any:
    """How readers (``xbot status``, /readyz, the console) see sensor ``name`` now."""
    from xbot_assets.engine.sensing import cached_store
    from xbot_assets.ops.component_health import component_health

    store = cached_store(env.settings)
    rows = component_health(store.engine, environment=env.settings.app_env, now=datetime.now(UTC))
    return rows.get(f"sensor:{name}")


def test_a_held_sensor_reports_degraded_with_what_to_do_and_not_stalled(
    env: Env, due_post: tuple[dg.DagsterInstance, int]
) -> None:
    """Each of the six held by its Celery replacement writes ``degraded`` with the skip reason
    (not ``ok``), without an interval: readers name it and the action, and do not call it
    stalled however long it stays held. Its replacement stopped, its next tick reports ok."""
    from xbot_assets.celery_definitions import ACCOUNT_SENSORS, LOCATION_NAME, OFF_IN_MAIN_LOCATION
    from xbot_assets.ops.component_health import component_health, describe_problems

    instance, _ = due_post
    with _locations(instance) as at:
        for name in ACCOUNT_SENSORS:
            instance.start_sensor(_sensor(at[LOCATION_NAME], name))
        for name in sorted(OFF_IN_MAIN_LOCATION):
            data = _tick(instance, at[MAIN], name)
            row = _health(env, name)
            assert (row.reported_status, row.status) == ("degraded", "degraded")
            assert row.last_error == data.skip_message
            assert row.interval_s is None and not row.stalled

        later = datetime.now(UTC) + timedelta(days=1)  # held for a day: still not stalled
        from xbot_assets.engine.sensing import cached_store

        engine = cached_store(env.settings).engine
        health = component_health(engine, environment=env.settings.app_env, now=later)
        problems = describe_problems(health, later)
        for name in OFF_IN_MAIN_LOCATION:
            assert not health[f"sensor:{name}"].stalled
            (line,) = [p for p in problems if p.startswith(f"sensor:{name} ")]
            assert f"reported degraded: stop {name} of location {MAIN}" in line

        celery = _sensor(at[LOCATION_NAME], "candidate_refill_sensor")
        instance.stop_sensor(celery.get_remote_origin_id(), celery.selector_id, celery)
        _tick(instance, at[MAIN], "refill_batch_sensor")
        row = _health(env, "refill_batch_sensor")
        assert (row.reported_status, row.last_error is not None) == ("ok", True)
        assert row.interval_s is not None  # running again: expected to succeed again


def test_a_held_batch_twin_turned_off_is_settled_by_the_celery_sensor_doing_its_work(
    env: Env, due_post: tuple[dg.DagsterInstance, int]
) -> None:
    """Nothing else writes a batch twin's row: once the operator stops it, as its ``degraded``
    row asks, the Celery sensor that replaces it writes it ``ok`` at its next tick (once);
    while it is still on, that row stays ``degraded``."""
    from xbot_assets.celery_definitions import LOCATION_NAME

    instance, _ = due_post
    with _locations(instance) as at:
        celery, main = (
            _sensor(at[LOCATION_NAME], "posting_sensor"),
            _sensor(at[MAIN], "posting_batch_sensor"),
        )
        instance.start_sensor(celery)
        instance.start_sensor(main)
        _skipped_for_celery(_tick(instance, at[MAIN], "posting_batch_sensor"),
                            "posting_batch_sensor", "posting_sensor")  # fmt: skip
        _tick(instance, at[LOCATION_NAME], "posting_sensor")  # the twin is still on: kept
        assert _health(env, "posting_batch_sensor").reported_status == "degraded"

        instance.stop_sensor(main.get_remote_origin_id(), main.selector_id, main)
        _tick(instance, at[LOCATION_NAME], "posting_sensor")
        row = _health(env, "posting_batch_sensor")
        assert (row.reported_status, row.stalled, row.interval_s) == ("ok", False, None)
        settled = row.recorded_at
        _tick(instance, at[LOCATION_NAME], "posting_sensor")  # settled once, not every tick
        assert _health(env, "posting_batch_sensor").recorded_at == settled
