"""The main job's only use of Dagster internals (``xbot_assets/instigation.py``): this fails when
a Dagster upgrade changes what it relies on, so the module is fixed before the UI goes quiet."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from xbot_assets.instigation import (
    CODE_MODULE,
    DAGSTER_VERSION,
    REPOSITORY_NAME,
    TickRecorder,
    cron_ticks,
    location_name,
    next_cron_tick,
    running_sensors,
)


def test_checked_against_the_pinned_dagster() -> None:
    assert dg.__version__ == DAGSTER_VERSION, (
        "Dagster changed: re-check xbot_assets/instigation.py against it, then update "
        "DAGSTER_VERSION"
    )


def test_cron_ticks_between_two_times() -> None:
    after = datetime(2026, 1, 5, 5, 0, tzinfo=UTC)
    until = datetime(2026, 1, 5, 18, 0, tzinfo=UTC)
    assert [t.hour for t in cron_ticks("0 */6 * * *", after, until)] == [6, 12, 18]
    assert next_cron_tick("30 0 * * *", until) == datetime(2026, 1, 6, 0, 30, tzinfo=UTC)


def test_recorded_ticks_and_cursor_are_what_the_ui_reads_for_the_code_location() -> None:
    """The webserver looks a sensor's state and ticks up by its loaded code location's origin
    and selector ids: load the location in process, the way the UI does, and read them back."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.scheduler.instigation import SensorInstigatorData, TickStatus
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    with dg.instance_for_test() as instance:
        recorder = TickRecorder(instance)
        recorder.record(
            "posting_sensor",
            "sensor",
            run_ids=[],
            run_keys=[],
            skip_reason="no post is due",
            cursor='{"requested": []}',
            min_interval=30,
        )
        recorder.record(
            "collect_account_metrics_schedule",
            "schedule",
            run_ids=["run-1"],
            run_keys=["metrics:x"],
            skip_reason=None,
            cron="0 */6 * * *",
        )
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(module_name=CODE_MODULE), location_name=location_name()
        )
        with origin.create_location(instance) as location:
            repo = location.get_repository(REPOSITORY_NAME)
            sensor = repo.get_sensor("posting_sensor")
            schedule = repo.get_schedule("collect_account_metrics_schedule")
        state = instance.get_instigator_state(sensor.get_remote_origin_id(), sensor.selector_id)
        assert state is not None and isinstance(state.instigator_data, SensorInstigatorData)
        assert state.instigator_data.cursor == '{"requested": []}'
        assert not state.is_running, "stored stopped: a `make ui` daemon must never post"
        [tick] = instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)
        assert tick.status == TickStatus.SKIPPED and tick.skip_reason == "no post is due"
        [ran] = instance.get_ticks(schedule.get_remote_origin_id(), schedule.selector_id)
        assert ran.status == TickStatus.SUCCESS and ran.run_ids == ["run-1"]
        assert recorder.cursor("posting_sensor") == '{"requested": []}'


def test_running_sensors_are_the_started_ones_with_their_code_location() -> None:
    """States stored under a workspace's origin (a code server per location, as the daemon and
    the webserver store them): only the started sensor is listed, with its location's name."""
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorType,
        SensorInstigatorData,
    )

    with dg.instance_for_test() as instance:
        assert running_sensors(instance) == set()
        for location, status in (
            ("xbot_celery", InstigatorStatus.RUNNING),
            ("xbot", InstigatorStatus.STOPPED),
            ("xbot", InstigatorStatus.DECLARED_IN_CODE),
        ):
            name = "posting_sensor" if status != InstigatorStatus.DECLARED_IN_CODE else "other"
            instance.add_instigator_state(
                InstigatorState(
                    TickRecorder(instance, location).origin(name),
                    InstigatorType.SENSOR,
                    status,
                    SensorInstigatorData(min_interval=30),
                )
            )
        assert running_sensors(instance) == {("xbot_celery", "posting_sensor")}
