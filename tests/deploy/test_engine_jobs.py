"""The engine's small jobs run in their run's own process: under the daemon each run is a
process importing the code location, and a multiprocess executor would add one per step."""

from __future__ import annotations

import dagster as dg

from xbot_assets.defs.orchestration import (
    collect_account_metrics_job,
    post_job,
    reconcile_job,
    refill_candidates_job,
    sync_to_supabase_job,
)


def test_engine_jobs_use_the_in_process_executor() -> None:
    for job in (refill_candidates_job, post_job, collect_account_metrics_job, reconcile_job,
                sync_to_supabase_job):  # fmt: skip
        assert job.executor_def is dg.in_process_executor, job.name
