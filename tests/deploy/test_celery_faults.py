"""Failure modes of the daemon launching Celery runs that the other rehearsal tests leave out
(the long versions: ``benchmarks/celery_rehearsal.py --daemon --kill-code-server`` and
``--daemon --kill-daemon --daemon-group --kill-during refill``).

* The Celery location's code servers SIGKILLed alone while a ``post_job`` is inside its posting
  step: the run's coordinator (a process the code server spawned) lives on as an orphan and
  ends the run, the daemon starts a new code server for the location, its sensors tick again
  and the next post goes out; each post once, none lost.
* The daemon's process group SIGKILLed while a ``refill_candidates_job`` (the Celery location's
  ``candidate_refill_sensor``, the offline generator) has its step on a worker: the worker
  finishes the refill, the run is failed by run monitoring at its limit, and the refill's posts
  go out from the restarted daemon's posting sensor.

Broker DBs 6 and 7 (the other tests take 10, 11, 14, 15).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_celery_rehearsal import _load_rehearsal

pytest.importorskip(
    "dagster_celery",
    reason="dagster-celery is in the 'celery' dependency group (make install syncs every group)",
)


def _posted_once_nothing_lost(result: dict[str, Any], *, posts: int) -> None:
    """At least ``posts`` on the sandbox, none twice, none lost between the sandbox and the
    store; every other row still queued (a refill's later slots)."""
    assert result["posts_on_sandbox"] >= posts
    assert result["duplicate_posts"] == 0
    assert result["lost"] == {
        "on_sandbox_not_in_store": 0,
        "posted_in_store_not_on_sandbox": 0,
        "left_posting_or_unknown": 0,
    }
    rows = dict(result["store_rows_by_status"])
    assert rows.pop("posted") == result["posts_on_sandbox"]
    assert set(rows) <= {"queued"}


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(900)
def test_the_celery_code_server_killed_mid_post_leaves_the_run_to_finish_and_is_restarted(
    tmp_path: Path,
) -> None:
    """The Celery location's code servers SIGKILLed (the daemon left running) while its first
    ``post_job`` is inside the posting step on a worker; a second post is due at once."""
    rehearsal = _load_rehearsal()
    # No worker dies here, so nothing needs redelivering: a visibility timeout of 15 s handed
    # the posting step out twice whenever load stretched it past 15 s (17-18 s seen at load
    # 5-8, 2 runs in 3), which this test's one-attempt assertion then caught.
    result = rehearsal.rehearse_daemon(
        tmp_path, accounts=1, speed=120, visibility_timeout=45, broker_db=6,
        compile_bytecode=False, kill=False, kill_code_server=True, post_delay=6,
        account_run_max_s=60, run_timeout=400,
        only={"accounts_sensor", "posting_sensor", "daily_summaries_schedule"},
    )  # fmt: skip
    killed = next(e for e in result["events"] if e["event"].startswith("code server SIGKILL"))
    # the Celery location's servers, the run's among them; the daemon and xbot's left alone
    assert killed["location"] == "xbot_celery" and killed["pid"] in killed["killed_pids"]
    assert set(killed["code_servers_before"].values()) == {"xbot", "xbot_celery"}
    assert killed["daemon_alive_1s_after"] and killed["other_code_servers_alive_1s_after"]
    # the coordinator outlived its server (an orphan) and ended the run itself: the worker
    # finished the step inside which the kill fell, one attempt
    assert killed["coordinator_alive_1s_after"]
    (start,) = [a for a in result["posting_step_attempts"] if a["event"] == "STEP_START"]
    (success,) = [a for a in result["posting_step_attempts"] if a["event"] == "STEP_SUCCESS"]
    assert start["at"] < killed["at"] < success["at"] and start["worker"] == success["worker"]
    run = result["daemon_killed_run"]
    assert (run["run_id"], run["status"], run["ended_by"]) == (
        killed["run_id"], "SUCCESS", "RUN_SUCCESS",
    )  # fmt: skip
    assert run["seconds_after_kill_to_end"] < 60  # not failed by run monitoring at its limit
    outcomes = [o["status"] for a in run["posting_outcomes"] for o in a["outcomes"]]
    assert outcomes.count("posted") == 1
    # the daemon started another server for the location (its 60 s workspace refresh), the
    # posting sensor ticked again and launched the second post's run(s), all succeeded
    assert result["code_server_respawned"] and result["daemon_alive_after"]
    assert result["code_server_respawned_s_after_kill"] < 60 + 30
    ticks = result["posting_sensor_ticks_after_kill"]
    assert any(t["runs"] for t in ticks)
    after = result["post_runs_launched_after_restart"]
    assert after and {(r["status"], r["location"]) for r in after} == {("SUCCESS", "xbot_celery")}
    assert result["post_runs_from_main_location"] == 0
    _posted_once_nothing_lost(result, posts=2)
    assert result["posts_on_sandbox"] == 2
    assert result["celery_runs_recorded_in_system_health"] == len(result["runs"])


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(900)
def test_the_daemons_process_group_killed_mid_refill_still_queues_and_posts(
    tmp_path: Path,
) -> None:
    """The daemon's process group SIGKILLed while the Celery location's first
    ``refill_candidates_job`` has its step on a worker: the coordinator dies with the code
    servers, the worker finishes the refill (the account's queue filled), run monitoring fails
    the run at its 60 s limit, and the restarted daemon's posting sensor posts the refill's
    posts once the account is free."""
    rehearsal = _load_rehearsal()
    result = rehearsal.rehearse_daemon(
        tmp_path, accounts=1, speed=120, visibility_timeout=45, broker_db=7,
        compile_bytecode=False, kill=False, kill_daemon=True, daemon_group=True,
        kill_during="refill", account_run_max_s=60, run_timeout=400,
        only={"accounts_sensor", "candidate_refill_sensor", "posting_sensor",
              "daily_summaries_schedule"},
    )  # fmt: skip
    killed = next(e for e in result["events"] if e["event"].startswith("daemon group SIGKILL"))
    assert killed["step"] == "refill_candidates" and killed["queued_posts_at_kill"] == 0
    assert killed["code_server_pids"] and killed["code_servers_alive_1s_after"] == []
    assert killed["coordinator_pid"] and not killed["coordinator_alive_1s_after"]
    # the worker finished the refill step after the kill: the queue was filled
    steps = result["killed_run"]["steps"]
    (success,) = [s for s in steps if s["event"] == "STEP_SUCCESS"]
    assert success["at"] > killed["at"] and success["worker"] == killed["worker"]
    ended = next(e for e in result["events"] if e["event"] == "the refill run ended")
    assert ended["queued_posts_of_the_account"] > 0 or result["posts_on_sandbox"] > 0
    # the run failed at its own limit (no coordinator to end it)
    run = result["daemon_killed_run"]
    assert (run["run_id"], run["status"], run["ended_by"], run["max_runtime_tag"]) == (
        killed["run_id"], "FAILURE", "RUN_FAILURE", "60",
    )  # fmt: skip
    assert 60 < run["seconds_started_to_end"] < 60 + 150
    # the refill's posts went out from the restarted daemon, once the dead run no longer held
    # the account (the tag limit kept its post run queued until then)
    after = result["post_runs_launched_after_restart"]
    assert after and {(r["status"], r["location"]) for r in after} == {("SUCCESS", "xbot_celery")}
    posts = result["post_runs_of_the_account"]
    assert posts and all(
        r["started_s_after_kill"] >= run["seconds_after_kill_to_end"] - 1 for r in posts
    )
    # the refill was not asked again: the worker had filled the queue
    assert result["refill_runs_after_restart"] == 0
    assert result["post_runs_from_main_location"] == 0
    _posted_once_nothing_lost(result, posts=1)
    assert result["celery_runs_recorded_in_system_health"] == len(result["runs"])
