"""The Celery daemon rehearsal's modes, without running one (seconds): which mode each set of
flags names, what each waits for, where it writes, and the options the script gives it. The
modes themselves run in test_celery_rehearsal.py, test_celery_daemon_kill.py and
test_celery_faults.py (minutes each); the collect and claim modes, longer than ~3 minutes, by
hand (benchmarks/README.md, "Celery rehearsal (issue 22)")."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.test_celery_rehearsal import _load_rehearsal

pytest.importorskip(
    "dagster_celery",
    reason="dagster-celery is in the 'celery' dependency group (make install syncs every group)",
)


@pytest.mark.parametrize(
    ("flags", "name"),
    [
        ({}, "worker"),
        ({"kill": False}, "none"),
        ({"kill": False, "kill_daemon": True}, "daemon"),
        ({"kill": False, "kill_daemon": True, "daemon_group": True}, "daemon_group"),
        ({"kill": False, "kill_code_server": True}, "code_server"),
        ({"kill": False, "kill_daemon": True, "daemon_group": True, "kill_during": "refill"},
         "refill_group"),
        ({"kill": False, "kill_daemon": True, "daemon_group": True, "kill_during": "collect"},
         "collect_group"),
        ({"kill": False, "kill_daemon": True, "daemon_group": True, "kill_during": "claim"},
         "claim_group"),
    ],
)  # fmt: skip
def test_each_set_of_flags_names_one_mode_with_its_results_file(
    flags: dict[str, Any], name: str
) -> None:
    rehearsal = _load_rehearsal()
    mode = rehearsal.daemon_mode(**flags)
    assert mode is rehearsal.DAEMON_MODES[name]
    assert rehearsal.DAEMON_RESULT_FILES[name].parent == rehearsal.DAEMON_RESULTS.parent


def test_every_mode_has_a_results_file_and_the_group_modes_one_each() -> None:
    rehearsal = _load_rehearsal()
    assert set(rehearsal.DAEMON_RESULT_FILES) == set(rehearsal.DAEMON_MODES)
    group = [n for n, m in rehearsal.DAEMON_MODES.items() if m.daemon_kill == "process group"]
    files = [rehearsal.DAEMON_RESULT_FILES[n] for n in group]
    assert len(set(files)) == len(files) == 4  # mid-post, refill, collect, claim


@pytest.mark.parametrize(
    "flags",
    [
        {"kill": True, "kill_daemon": True},
        {"kill": False, "kill_daemon": True, "kill_code_server": True},
        {"kill": False, "kill_daemon": True, "kill_during": "collect"},  # the pid alone
        {"kill": False, "kill_code_server": True, "kill_during": "claim"},
        {"kill": False, "kill_daemon": True, "daemon_group": True, "kill_during": "sleep"},
    ],
)
def test_combinations_never_rehearsed_are_refused(flags: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _load_rehearsal().daemon_mode(**flags)


def test_what_each_kill_mode_seeds_and_waits_for() -> None:
    modes = _load_rehearsal().DAEMON_MODES
    # the posts each account must have made before the drain: the seeded ones
    assert {n: m.posts_per_account for n, m in modes.items()} == {
        "none": 1, "worker": 1, "daemon": 2, "daemon_group": 2, "code_server": 2,
        "refill_group": 1, "collect_group": 3, "claim_group": 2,
    }  # fmt: skip
    # the refill mode seeds nothing (the refill sensor fills); the collect mode holds a metrics
    # read, not the post's answer; the claim mode holds the answer so the kill lands mid-call
    assert not modes["refill_group"].seed and modes["refill_group"].every_account_posts
    assert not modes["collect_group"].slow_post and modes["claim_group"].slow_post
    assert modes["claim_group"].kill_during == "claim"
    assert modes["collect_group"].kill_during == "collect"


def test_the_script_turns_on_the_reconcile_sensor_for_the_claim_and_limits_dead_runs() -> None:
    rehearsal = _load_rehearsal()
    modes, options = rehearsal.DAEMON_MODES, rehearsal.daemon_options
    claim = options(modes["claim_group"], None, 240)
    assert claim["only"] == set(rehearsal.POST_KILL_SENSORS) | {"reconcile_sensor"}
    assert claim["account_run_max_s"] == 60 and claim["post_delay"] == 6
    collect = options(modes["collect_group"], None, 240)
    assert collect["only"] == set(rehearsal.POST_KILL_SENSORS)
    assert collect["account_run_max_s"] == 60 and "post_delay" not in collect
    # the pid's kill leaves the coordinator alive: no run limit unless asked
    assert options(modes["daemon"], None, 240)["account_run_max_s"] is None
    assert options(modes["daemon"], 90, 240)["account_run_max_s"] == 90
    # the whole plan: the warehouse built, the settle time
    assert options(modes["worker"], None, 240) == {
        "warehouse": True, "settle_s": 240, "account_run_max_s": None,
    }  # fmt: skip


def test_the_rehearsal_clock_reads_wall_times_at_its_speed() -> None:
    from datetime import UTC, datetime, timedelta

    rehearsal = _load_rehearsal()
    epoch = datetime(2026, 12, 7, 9, tzinfo=UTC)
    dep = rehearsal.CeleryDeployment(folder=".", speed=120, accounts=1)
    dep.epoch = epoch
    wall = (epoch + timedelta(seconds=30)).timestamp()
    assert rehearsal.sim_at(dep, wall) == epoch + timedelta(hours=1)


def test_a_step_is_in_flight_from_its_start_on_a_worker_until_it_ends() -> None:
    """The collect mode's trigger: the worker's TASK_RECEIVED (an engine event before the
    STEP_START) does not end the step (it once did, and the kill never came)."""
    rehearsal = _load_rehearsal()
    step, workers = rehearsal.COLLECT_STEP, {101, 102}
    received = {"step": step, "event": "TASK_RECEIVED", "worker": "worker_a", "pid": None}
    start = {"step": step, "event": "STEP_START", "worker": "worker_a", "pid": 101}
    other = {"step": "post_due_posts", "event": "STEP_SUCCESS", "worker": "worker_a", "pid": 101}
    assert rehearsal.step_in_flight([other, received], step, workers) is None  # not started
    assert rehearsal.step_in_flight([other, received, start], step, workers) == start
    in_run = dict(start, pid=7)  # the in-process executor: the run's own pid, not a worker's
    assert rehearsal.step_in_flight([received, in_run], step, workers) is None
    for end in ("STEP_SUCCESS", "STEP_FAILURE"):
        ended = dict(start, event=end)
        assert rehearsal.step_in_flight([received, start, ended], step, workers) is None
