"""End to end in Debian's Chromium: the browser poster on the sandbox's x.com-like pages."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from xbot_assets.posting.base import LoginChallenge
from xbot_assets.posting.browser_poster import BrowserPoster, save_browser_session
from xbot_assets.posting.factory import make_poster, open_ledger, post_due, reconcile

from .conftest import api_settings

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("no_quiet_hours")]

CHROMIUM = Path("/usr/bin/chromium")

PARTS = [
    "How to review a pull request in open source, in four steps",
    "One: read the linked issue before the diff, always",
    "Two: run the tests locally; CI is not the maintainer",
    "Three: ask questions, do not prescribe. Four: approve kindly",
]


@pytest.fixture(scope="module", autouse=True)
def chromium_present():
    assert CHROMIUM.exists(), (
        "Debian's Chromium is missing at /usr/bin/chromium: apt-get install -y chromium "
        "(make test installs it)"
    )


def browser_settings(sandbox, url, sqlite_url, state: Path, **kw):
    return api_settings(
        sandbox, url, sqlite_url, poster="browser", browser_storage_state=state, **kw
    )


def login(sandbox, url: str, state: Path) -> None:
    account = sandbox.account()
    save_browser_session(url, handle=account.handle, password=account.password, storage_state=state)


def test_single_and_thread_through_chromium(sandbox, sandbox_url, sqlite_url, tmp_path):
    state = tmp_path / "session.json"
    login(sandbox, sandbox_url, state)
    assert state.stat().st_mode & 0o777 == 0o600
    logged_in = state.stat().st_mtime_ns
    settings = browser_settings(sandbox, sandbox_url, sqlite_url, state)
    ledger = open_ledger(settings)
    account = ledger.ensure_account(settings.x_handle)
    now = datetime.now(UTC)
    [single] = ledger.enqueue(
        account, ["Career advice: write down what you shipped every Friday"], scheduled_at=now
    )
    thread = ledger.enqueue(account, PARTS, scheduled_at=now)
    poster = make_poster(settings)
    assert isinstance(poster, BrowserPoster)
    try:
        run = post_due(settings, ledger=ledger, poster=poster)
        assert [o.status for o in run.outcomes] == ["posted"] * 5 + ["nothing_due"]
        rows = {r["id"]: r for r in ledger.rows(account)}
        assert sandbox.post(rows[single]["x_id"]).text.startswith("Career advice")
        chain = [sandbox.post(rows[i]["x_id"]) for i in thread]
        assert [p.text for p in chain] == PARTS
        assert chain[0].reply_to is None
        for parent, child in itertools.pairwise(chain):
            assert child.reply_to is parent
        # the reconciler's read of the profile page sees the same posts and ids
        own = {p.x_id: p.text for p in poster.recent_own_posts()}
        assert own[rows[single]["x_id"]].startswith("Career advice")
        found = poster.find_own_post(PARTS[2])
        assert found is not None and found.x_id == rows[thread[2]]["x_id"]
    finally:
        poster.close()
    assert max(Counter(p.text for p in sandbox.posts_of()).values()) == 1
    # The session that just worked was written back, whole and private, with nothing beside it.
    assert state.stat().st_mtime_ns > logged_in
    assert state.stat().st_mode & 0o777 == 0o600
    assert "cookies" in json.loads(state.read_text())
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_web_faults_have_their_outcomes_and_no_duplicate(
    sandbox, sandbox_url, sqlite_url, tmp_path
):
    state = tmp_path / "session.json"
    login(sandbox, sandbox_url, state)
    settings = browser_settings(sandbox, sandbox_url, sqlite_url, state)
    ledger = open_ledger(settings)
    account = ledger.ensure_account(settings.x_handle)
    now = datetime.now(UTC)
    texts = [
        "Docker tip: pin the base image digest, not the tag",
        "Kubernetes: set requests before limits",
        "Observability: log the decision, not just the error",
        "CI: cache the dependency layer separately",
    ]
    for text in texts:
        ledger.enqueue(account, [text], scheduled_at=now)
    poster = make_poster(settings, timeout=3.0)
    alerts: list[str] = []
    try:
        # layout changed: the testids are renamed; the fallbacks still find box and button
        sandbox.set_fault("layout_changed")
        run = post_due(settings, ledger=ledger, poster=poster, max_steps=1)
        assert run.outcomes[0].status == "posted"
        sandbox.clear_faults()
        # the home page fails (500): no profile link nor compose box, nothing sent, queued again
        sandbox.set_fault("server_error", match="web_home", count=1)
        run = post_due(settings, ledger=ledger, poster=poster, max_steps=1)
        assert run.outcomes[0].status == "released"
        assert "nothing was sent" in run.outcomes[0].reason
        # rate limit on the web: released, no post
        sandbox.set_fault("rate_limit", match="web_create_tweet", count=1)
        run = post_due(settings, ledger=ledger, poster=poster, max_steps=1)
        assert run.outcomes[0].status == "released" and run.outcomes[0].retry_at is not None
        ledger.set_config("posting.backoff_until", now.isoformat(), actor="test", now=now)
        # automation block (226) shown in a toast: stop, brake, alert
        sandbox.set_fault("automation_block", match="web_create_tweet", count=1)
        run = post_due(settings, ledger=ledger, poster=poster, alert=alerts.append)
        assert run.outcomes[0].status == "stopped" and ledger.brake_reason() == "automation_block"
        assert alerts
        ledger.brake.release("test: cleared", actor="test")
        # expired session: every page redirects to the login flow -> stop, never log in
        sandbox.set_fault("expired_session")
        run = post_due(settings, ledger=ledger, poster=poster, alert=alerts.append)
        assert run.outcomes[0].status == "stopped" and ledger.brake_reason() == "session_expired"
        sandbox.clear_faults()
    finally:
        poster.close()
    assert len(sandbox.posts_of()) == 1
    assert ledger.status_counts(account) == {"posted": 1, "queued": 3}
    # a login challenge is reported, never answered, and no session is saved
    sandbox.set_fault("login_challenge")
    fresh = tmp_path / "fresh.json"
    with pytest.raises(LoginChallenge):
        login(sandbox, sandbox_url, fresh)
    assert not fresh.exists()


def test_a_session_of_another_account_stops_and_sends_nothing(
    sandbox, sandbox_url, sqlite_url, tmp_path
):
    """A poster for @bob_second given X_HANDLE's saved session would post on X_HANDLE's account:
    it reads who is logged in first, stops with the brake and keeps bob's post queued."""
    state = tmp_path / "session.json"
    login(sandbox, sandbox_url, state)
    logged_in = sandbox.account().handle
    bob = sandbox.add_account("bob_second")
    settings = browser_settings(sandbox, sandbox_url, sqlite_url, state, x_handle=bob.handle)
    ledger = open_ledger(settings)
    account = ledger.ensure_account(bob.handle)
    ledger.enqueue(account, ["Bob's own take on code review"], scheduled_at=datetime.now(UTC))
    poster = make_poster(settings, timeout=3.0)
    alerts: list[str] = []
    try:
        run = post_due(settings, ledger=ledger, poster=poster, alert=alerts.append)
        session = poster.check_session()
    finally:
        poster.close()
    assert sandbox.posts_of(logged_in) == [] and sandbox.posts_of(bob.handle) == []
    assert [o.status for o in run.outcomes] == ["stopped"]
    assert ledger.brake_reason() == "wrong_account" and f"@{logged_in}" in alerts[0]
    assert ledger.status_counts(account) == {"queued": 1}
    assert not session.ok and "xbot browser-login" in session.reason


def test_a_reply_answered_without_id_is_not_recorded_under_its_parents_id(
    sandbox, sandbox_url, sqlite_url, tmp_path
):
    """A thread part is typed on its parent's status page, so with no id in X's answer the page
    URL names the parent: taking it gave two rows one X id (and the next part the wrong parent).
    The part is left for the reconciler, which finds its own id on the profile."""
    state = tmp_path / "session.json"
    login(sandbox, sandbox_url, state)
    settings = browser_settings(sandbox, sandbox_url, sqlite_url, state)
    ledger = open_ledger(settings)
    account = ledger.ensure_account(settings.x_handle)
    first, second = ledger.enqueue(account, PARTS[:2], scheduled_at=datetime.now(UTC))
    poster = make_poster(settings)
    try:
        post_due(settings, ledger=ledger, poster=poster, max_steps=1)
        sandbox.set_fault("answer_without_id", match="web_create_tweet", count=1)
        run = post_due(settings, ledger=ledger, poster=poster, max_steps=1)
        assert run.outcomes[0].status == "left_for_reconciler", run.outcomes[0]
        report = reconcile(settings, ledger=ledger, poster=poster, grace=timedelta(0))
    finally:
        poster.close()
    rows = {r["id"]: r for r in ledger.rows(account)}
    parent, reply = (sandbox.post(rows[i]["x_id"]) for i in (first, second))
    assert report.found == {second: reply.id}
    assert reply.text == PARTS[1] and reply.reply_to is parent


def test_missing_session_file_stops_before_opening_a_page(sandbox, sqlite_url, tmp_path):
    poster = BrowserPoster(
        "http://127.0.0.1:9", handle="xbot_sandbox", storage_state=tmp_path / "none.json"
    )
    status = poster.check_session()
    assert not status.ok and "storage state" in status.reason
    assert str(tmp_path) not in status.reason  # the session path is never shown
