"""Issue 21: under APPROVAL=required the main job (`xbot run`'s runner: the real Dagster
definitions, sensors and schedules on the simulated clock) posts only approved posts, and an
operator approves a few from the console page in real Chromium while the run is in progress.

The console is served on loopback over the run's store with the run's simulated clock; the
runner's ``on_tick`` hook (called between Dagster runs at each simulated moment) is where the
operator acts, so the approvals land mid-run exactly as a person's would between two sensor
ticks."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import ARGS, CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console_main_job")]

ACTOR = "console:alice#"


class _SimulatedClock:
    """The console's clock: the runner's simulated now, set at each tick."""

    def __init__(self) -> None:
        self.now: datetime | None = None

    def __call__(self) -> datetime:
        assert self.now is not None
        return self.now


def _queued_roots(store: Any, account_id: int) -> list[Any]:
    posts = store.list_posts(account_id, status="queued", limit=500)
    return sorted((p for p in posts if p.thread_position == 0), key=lambda p: p.scheduled_at)


def _approve_from_the_page(
    base_url: str, token: str, handle: str, post_ids: list[int]
) -> list[str]:
    """Log in with the token in Chromium and press Approve on each post; the notices shown."""
    from playwright.sync_api import sync_playwright

    notices = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_context(base_url=base_url).new_page()
            page.set_default_timeout(60_000)
            page.goto("/login")
            page.fill("#token", token)
            page.click("#login")
            page.wait_for_url("**/queue")
            for post_id in post_ids:
                page.goto(f"/a/{handle}/queue")
                page.locator(f"#post-{post_id} form.approve button").click()
                page.wait_for_load_state()
                notices.append(page.locator("#notice, #error").first.inner_text())
        finally:
            browser.close()
    return notices


def _step_failures(failed_runs: list[str]) -> list[str]:
    """What failed in each failed run (``failed_runs`` entries are ``job run_id (key)``)."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    found = []
    for entry in failed_runs:
        run_id = entry.split()[1]
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is not None and event.event_type_value == "STEP_FAILURE":
                error = event.step_failure_data.error
                found.append(f"{entry}: {event.step_key}: {error.message[:800] if error else ''}")
    return found or failed_runs


@pytest.mark.timeout(1800)  # a 1.75-day main job: ~6 min idle, 15+ on a loaded shared host
def test_main_job_posts_only_what_the_operator_approved_mid_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Path(CHROMIUM).exists(), f"Debian's Chromium is missing at {CHROMIUM}"
    from tests.orchestration.conftest import make_env, restore_env
    from xbot_assets.console.app import create_app
    from xbot_assets.console.auth import issue_token
    from xbot_assets.console.server import running_console
    from xbot_assets.runner import run_main
    from xbot_assets.store.durable import DurableStore
    from xbot_assets.store.timebase import utc_now

    monkeypatch.setenv("APPROVAL", "required")
    env, saved = make_env(tmp_path)
    try:
        settings = env.settings
        assert settings.approval == "required"
        store = DurableStore.from_settings(settings)
        account = store.ensure_account(settings.x_handle)
        clock = _SimulatedClock()
        token = issue_token(store.engine, "local", label="alice", created_by="test", now=utc_now())
        approved: list[int] = []
        rounds: list[dict[str, Any]] = []

        app = create_app(settings, store=store, clock=clock)
        with running_console(app) as base_url:

            def on_tick(now: datetime) -> None:
                clock.now = now
                posted = [
                    p
                    for p in store.list_posts(account.id, status="posted", limit=500)
                    if p.thread_position == 0
                ]
                # Nothing unapproved ever went out, at any moment of the run.
                assert {p.id for p in posted} <= set(approved), "an unapproved post was sent"
                queued = [p for p in _queued_roots(store, account.id) if p.approval is None]
                if not rounds and len(queued) >= 3:
                    # First round, as the first day is planned: approve two coming posts.
                    picks = [p for p in queued if p.scheduled_at > now][:2]
                elif len(rounds) == 1 and now >= rounds[0]["at"] + timedelta(hours=21):
                    # Second round, late on the first day: one whose slot passed unapproved
                    # (it moves to the next free slot) and one still ahead.
                    late = [p for p in queued if p.scheduled_at < now][:1]
                    ahead = [p for p in queued if p.scheduled_at > now + timedelta(hours=1)][:1]
                    picks = late + ahead
                    assert late, "no slot passed unapproved in 21 simulated hours"
                else:
                    return
                if not picks:
                    return
                before = {p.id: p.scheduled_at for p in picks}
                notices = _approve_from_the_page(
                    base_url, token, account.handle, [p.id for p in picks]
                )
                for post, notice in zip(picks, notices, strict=True):
                    assert f"post {post.id} approved" in notice, notice
                    approved.append(post.id)
                rounds.append({"at": now, "before": before, "notices": notices})

            result = run_main(
                settings, days=1.75, posts_per_day=4, rebuild_every_hours=48, progress=False,
                on_tick=on_tick,
            )  # fmt: skip
        assert not result.failed_runs, _step_failures(result.failed_runs)
        assert len(rounds) == 2, rounds
        # The main job's posting sensor and post_job ran, and posted exactly approved posts.
        assert result.runs_by_job.get("post_job", 0) >= 1
        posted = {
            p.id: p
            for p in store.list_posts(account.id, status="posted", limit=500)
            if p.thread_position == 0
        }
        assert posted and set(posted) <= set(approved)
        assert len(posted) >= 3, (sorted(posted), approved)  # approved mid-run, then posted
        for post in posted.values():
            assert post.approval == "approved"
            assert post.approved_by is not None and post.approved_by.startswith(ACTOR)
            assert post.posted_at is not None and post.approved_at is not None
            assert post.posted_at >= post.scheduled_at and post.posted_at >= post.approved_at
        # A late approval moved its post to a free slot after the approval, never sent late.
        late_round = rounds[1]
        late_id = next(iter(late_round["before"]))
        assert "next free slot" in late_round["notices"][0], late_round["notices"]
        assert late_round["before"][late_id] < late_round["at"]
        assert store.get_post(late_id).scheduled_at >= late_round["at"]
        # Posts nobody approved are still queued, slots passed or not: none was sent.
        waiting = [p for p in _queued_roots(store, account.id) if p.approval is None]
        assert waiting and any(p.scheduled_at < result.ended_at for p in waiting)
        audited = {e.data["post_id"] for e in store.list_audit(event_type="console.post_approved")}
        assert audited == set(approved)
        assert all(
            e.actor.startswith(ACTOR) for e in store.list_audit(event_type="console.post_approved")
        )
        store.close()
    finally:
        restore_env(saved)
