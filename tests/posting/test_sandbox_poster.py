"""The in-process sandbox poster (the embedded default): same outcomes as the api poster."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from xbot_assets.config import load_settings
from xbot_assets.posting.factory import make_poster, open_ledger, post_due
from xbot_assets.posting.sandbox_poster import SandboxPoster

pytestmark = pytest.mark.usefixtures("no_quiet_hours")


def settings_for(sqlite_url):
    return load_settings(
        env_file=None,
        database_url=sqlite_url,
        max_posts_per_hour=100,
        max_posts_per_day=100,
        min_spacing_minutes=0,
    )


def test_sandbox_poster_posts_singles_and_reply_chains(sandbox, sqlite_url):
    settings = settings_for(sqlite_url)
    assert settings.resolved_poster == "sandbox"
    poster = make_poster(settings, sandbox=sandbox)
    assert isinstance(poster, SandboxPoster) and poster.account.handle == settings.x_handle
    ledger = open_ledger(settings)
    account = ledger.ensure_account(settings.x_handle)
    parts = ["Thread: what we learned shipping an MVP", "Customers want less", "Founders ship more"]
    now = datetime.now(UTC)
    thread = ledger.enqueue(account, parts, scheduled_at=now)
    run = post_due(settings, ledger=ledger, poster=poster)
    assert [o.status for o in run.outcomes] == ["posted"] * 3 + ["nothing_due"]
    rows = {r["id"]: r for r in ledger.rows(account)}
    chain = [sandbox.post(rows[i]["x_id"]) for i in thread]
    for parent, child in itertools.pairwise(chain):
        assert child.reply_to is parent
    own = poster.recent_own_posts()
    assert {p.x_id for p in own} == {rows[i]["x_id"] for i in thread}
    found = poster.find_own_post(parts[2], reply_to=rows[thread[1]]["x_id"])
    assert found is not None and found.x_id == rows[thread[2]]["x_id"]


def test_sandbox_poster_faults_map_like_the_api(sandbox, sqlite_url):
    settings = settings_for(sqlite_url)
    poster = make_poster(settings, sandbox=sandbox)
    ledger = open_ledger(settings)
    account = ledger.ensure_account(settings.x_handle)
    now = datetime.now(UTC)
    ledger.enqueue(account, ["Machine learning models drift; monitor inputs"], scheduled_at=now)
    sandbox.set_fault("lose_response", match="create_tweet", count=1)
    run = post_due(settings, ledger=ledger, poster=poster, grace=timedelta(0))
    assert run.outcomes[0].status == "left_for_reconciler"
    run = post_due(settings, ledger=ledger, poster=poster, grace=timedelta(0))
    assert len(run.reconcile.found) == 1
    ledger.enqueue(account, ["Regression to the mean explains most hot streaks"], scheduled_at=now)
    sandbox.set_fault("automation_block", match="create_tweet", count=1)
    run = post_due(settings, ledger=ledger, poster=poster, alert=lambda m: None)
    assert run.outcomes[0].status == "stopped" and ledger.brake_reason() == "automation_block"
    assert ledger.status_counts(account) == {"posted": 1, "queued": 1}
    assert len(sandbox.posts_of()) == 1
