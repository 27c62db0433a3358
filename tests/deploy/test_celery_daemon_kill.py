"""The daemon killed while a Celery ``post_job`` is inside its posting step: its pid alone (the
code servers and the run's coordinator live on) and its whole process group (they die with it,
and run monitoring ends the run at its own time limit). Apart from test_celery_rehearsal.py so
``--dist loadfile`` runs these minutes-long tests beside that file's, not after them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.test_celery_rehearsal import _load_rehearsal, _posted_once_nothing_lost

pytest.importorskip(
    "dagster_celery",
    reason="dagster-celery is in the 'celery' dependency group (make install syncs every group)",
)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(900)
def test_the_daemon_killed_mid_post_leaves_its_celery_run_to_finish_and_posts_once(
    tmp_path: Path,
) -> None:
    """The daemon's pid SIGKILLed (a crash, an OOM kill) while its first Celery ``post_job`` is
    inside the posting step on a worker: the code servers and the run's coordinator (a run
    worker a code server spawned) are not signalled and live on as orphans, the worker finishes
    the step, the run succeeds; the restarted daemon's posting sensor launches the next post's
    run. Two posts, each once, none lost."""
    rehearsal = _load_rehearsal()
    # No worker dies here, so nothing needs redelivering: at a visibility timeout of 15 s the
    # broker handed the posting step out again whenever load stretched it past 15 s (CI, load
    # from the other worker's tests), and the one-attempt assertion below failed on the second
    # STEP_START. 45 s, as test_celery_faults' code-server kill.
    result = rehearsal.rehearse_daemon(
        tmp_path, accounts=1, speed=120, visibility_timeout=45, broker_db=14,
        compile_bytecode=False, kill=False, kill_daemon=True, post_delay=6, run_timeout=400,
        only={"accounts_sensor", "posting_sensor", "daily_summaries_schedule"},
    )  # fmt: skip
    killed = next(e for e in result["events"] if e["event"].startswith("daemon SIGKILL"))
    # killed inside the step: the worker's STEP_START came before, its STEP_SUCCESS after
    (start,) = [a for a in result["posting_step_attempts"] if a["event"] == "STEP_START"]
    (success,) = [a for a in result["posting_step_attempts"] if a["event"] == "STEP_SUCCESS"]
    assert start["at"] < killed["at"] < success["at"]
    assert start["worker"] == success["worker"] == killed["worker"]  # one attempt, not retried
    assert start["pid"] != killed["coordinator_pid"]
    # what the daemon's kill left alive: its code servers and the run's coordinator
    assert killed["code_server_pids"]
    assert killed["code_servers_alive_1s_after"] == killed["code_server_pids"]
    assert killed["coordinator_alive_1s_after"]
    # the run finished on its own (not failed by run monitoring, not left STARTED)
    run = result["daemon_killed_run"]
    assert run["run_id"] == killed["run_id"]
    assert (run["status"], run["ended_by"]) == ("SUCCESS", "RUN_SUCCESS")
    outcomes = [o["status"] for a in run["posting_outcomes"] for o in a["outcomes"]]
    assert outcomes.count("posted") == 1 and set(outcomes) <= {"posted", "nothing_due"}
    # the restarted daemon's posting sensor launched the second post's run(s), all Celery's
    after = result["post_runs_launched_after_restart"]
    assert after
    assert {(r["status"], r["sensor"], r["location"]) for r in after} == {
        ("SUCCESS", "posting_sensor", "xbot_celery")
    }
    assert result["post_runs_from_main_location"] == 0
    # two posts, each once, both recorded; every Celery run recorded in system_health
    _posted_once_nothing_lost(result, posts=2)
    assert result["store_rows_by_status"] == {"posted": 2}
    assert result["celery_runs_recorded_in_system_health"] == len(result["runs"])


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(900)
def test_the_daemons_process_group_killed_mid_post_frees_the_account_at_its_run_limit(
    tmp_path: Path,
) -> None:
    """The daemon's whole process group SIGKILLed (``kill -9 -<pgid>``, a supervisor stopping
    the group) inside a Celery ``post_job``'s posting step: its code servers and the run's
    coordinator die with it, the worker still finishes the step (the post out once, recorded),
    and the run is left STARTED with nothing to end it. Run monitoring fails it once it is past
    its own limit (ACCOUNT_RUN_MAX_SECONDS, 60 s here, the ``dagster/max_runtime`` tag), not
    the instance's 1800 s; only then does the restarted daemon's posting sensor launch the
    account's next post. Two posts, each once, none lost."""
    rehearsal = _load_rehearsal()
    # No worker dies here, so nothing needs redelivering: at a visibility timeout of 15 s the
    # broker handed the posting step out again whenever load stretched it past 15 s (CI, load
    # from the other worker's tests), and the one-attempt assertion below failed on the second
    # STEP_START. 45 s, as test_celery_faults' code-server kill.
    result = rehearsal.rehearse_daemon(
        tmp_path, accounts=1, speed=120, visibility_timeout=45, broker_db=15,
        compile_bytecode=False, kill=False, kill_daemon=True, daemon_group=True,
        account_run_max_s=60, post_delay=6, run_timeout=400,
        only={"accounts_sensor", "posting_sensor", "daily_summaries_schedule"},
    )  # fmt: skip
    killed = next(e for e in result["events"] if e["event"].startswith("daemon SIGKILL"))
    # the group took the code servers and the run's coordinator with it
    assert killed["code_server_pids"] and killed["code_servers_alive_1s_after"] == []
    assert killed["coordinator_pid"] and not killed["coordinator_alive_1s_after"]
    # the worker finished the step: the post was made and recorded once
    (start,) = [a for a in result["posting_step_attempts"] if a["event"] == "STEP_START"]
    (success,) = [a for a in result["posting_step_attempts"] if a["event"] == "STEP_SUCCESS"]
    assert start["at"] < killed["at"] < success["at"]
    # the run was failed by run monitoring at its own limit, not at the instance's 1800 s
    run = result["daemon_killed_run"]
    assert run["run_id"] == killed["run_id"]
    assert (run["status"], run["ended_by"], run["max_runtime_tag"]) == (
        "FAILURE", "RUN_FAILURE", "60",
    )  # fmt: skip
    assert 60 < run["seconds_started_to_end"] < 60 + 150  # a 30 s poll, the daemon's restart
    # the account's next post, due since the restart, was held by the dead run, and launched
    # by the restarted daemon only once that run had failed; then posted
    after = result["post_runs_launched_after_restart"]
    assert after and {(r["status"], r["location"]) for r in after} == {("SUCCESS", "xbot_celery")}
    assert min(r["created_s_after_kill"] for r in after) >= run["seconds_after_kill_to_end"]
    assert result["post_runs_from_main_location"] == 0
    _posted_once_nothing_lost(result, posts=2)
    assert result["store_rows_by_status"] == {"posted": 2}
    assert result["celery_runs_recorded_in_system_health"] == len(result["runs"])
