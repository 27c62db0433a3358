"""The console in real Chromium against a store the engine filled (the real decision code
queues a simulated day of posts; a direct engine fill instead of `make run`, which takes over
ten minutes on this machine): log in with the token; approve, edit (one refused by the guard),
reject and move posts; pull and release the brake; each effect checked in the store and the
audit log. Then, under APPROVAL=required, the engine's post path runs hour by hour and only the
posts approved from the page mid-run are posted."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.console.conftest import local_settings

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console_browser")]

GUARD_REFUSED = "You idiot, only morons write untested code. Buy now at http://spam.example"
GOOD_EDIT = "Edited by a person: small pull requests get reviewed faster and merged sooner."


@dataclass
class Filled:
    root: Path
    start: datetime


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    """One engine fill per module; each test works on a copy of it."""
    from xbot_assets.console.demo import engine_fill

    root = tmp_path_factory.mktemp("console_fill")
    settings = local_settings(root)
    start = engine_fill(settings, posts_per_day=6, n_candidates=3)
    return Filled(root, start)


@dataclass
class Deployment:
    settings: Any
    store: Any
    account: Any
    token: str
    clock: Any


@pytest.fixture
def deployment(
    filled: Filled, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Deployment]:
    from xbot_assets.console.auth import issue_token
    from xbot_assets.engine.sensing import cached_store

    shutil.copytree(filled.root, tmp_path / "home", ignore=shutil.ignore_patterns("*.lock"))
    approval = getattr(request, "param", "off")
    settings = local_settings(tmp_path / "home", APPROVAL=approval)
    store = cached_store(settings)
    account = store.get_account_by_handle(settings.x_handle)
    clock = _Clock(filled.start)
    token = issue_token(store.engine, "local", label="alice", created_by="test", now=clock())
    yield Deployment(settings, store, account, token, clock)


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def console(deployment: Deployment, browser: Any) -> Iterator[Any]:
    from xbot_assets.console.app import create_app
    from xbot_assets.console.server import running_console

    app = create_app(deployment.settings, store=deployment.store, clock=deployment.clock)
    with running_console(app) as base_url:
        context = browser.new_context(base_url=base_url)
        page = context.new_page()
        page.goto("/login")
        page.fill("#token", deployment.token)
        page.click("#login")
        page.wait_for_url("**/queue")
        yield page
        context.close()


def _queued(d: Deployment) -> list[Any]:
    posts = d.store.list_posts(d.account.id, status="queued", limit=500)
    return sorted((p for p in posts if p.thread_position == 0), key=lambda p: p.scheduled_at)


def _audit(d: Deployment, event: str) -> list[Any]:
    return d.store.list_audit(event_type=event, limit=100)


def _message(page: Any) -> str:
    return page.locator("#notice, #error").first.inner_text()


def test_operator_actions_in_chromium(deployment: Deployment, console: Any) -> None:
    d, page = deployment, console
    actor = "console:alice#"
    queued = _queued(d)
    assert len(queued) >= 4, "the engine fill queued a day of posts"
    # The queue shows why each post was chosen: arm, posterior sample, scorer score, rank,
    # guard verdict and propensity, all from what the engine stored.
    card = page.locator(f"#post-{queued[0].id}")
    assert queued[0].arm in card.inner_text()
    why = card.locator("dl.why").inner_text()
    assert f"{queued[0].metadata['propensity']:.4f}" in why
    assert "passed" in why and " of " in why  # guard verdict and rank among candidates
    assert login_audited(d)

    # Approve.
    approve, edit, reject, move = queued[:4]
    page.locator(f"#post-{approve.id} form.approve button").click()
    assert f"post {approve.id} approved" in _message(page)
    after = d.store.get_post(approve.id)
    assert after.approval == "approved" and after.approved_by.startswith(actor)
    assert after.scheduled_at == approve.scheduled_at  # the slot had not passed
    assert [e.data["post_id"] for e in _audit(d, "console.post_approved")] == [approve.id]

    # Edit: first one the guard refuses (nothing changes, the page says why), then a good one.
    page.locator(f"#post-{edit.id} details.edit summary").click()
    page.locator(f"#post-{edit.id} details.edit textarea").first.fill(GUARD_REFUSED)
    page.locator(f"#post-{edit.id} details.edit button").click()
    assert "edit refused by the safety guard" in _message(page)
    assert d.store.get_post(edit.id).text == edit.text
    [refused] = _audit(d, "console.edit_refused")
    assert refused.data["post_id"] == edit.id and refused.actor.startswith(actor)
    page.locator(f"#post-{edit.id} details.edit summary").click()
    page.locator(f"#post-{edit.id} details.edit textarea").first.fill(GOOD_EDIT)
    page.locator(f"#post-{edit.id} details.edit button").click()
    assert f"post {edit.id} edited" in _message(page)
    edited = d.store.get_post(edit.id)
    assert edited.text == GOOD_EDIT and edited.content_hash != edit.content_hash
    assert edited.metadata["edits"][0]["previous_parts"][0] == edit.text  # kept for learning
    [done] = _audit(d, "console.post_edited")
    assert done.data["new_hash"] == edited.content_hash and "text" not in done.data

    # Reject with a reason.
    page.locator(f"#post-{reject.id} form.reject input[name=reason]").fill("off brand")
    page.locator(f"#post-{reject.id} form.reject button").click()
    assert f"post {reject.id} rejected" in _message(page)
    gone = d.store.get_post(reject.id)
    assert gone.status == "failed" and gone.approval == "rejected"
    assert gone.metadata["rejection"]["reason"] == "off brand"
    [rejected] = _audit(d, "console.post_rejected")
    assert rejected.data == {**rejected.data, "post_id": reject.id, "reason": "off brand"}

    # Move: into the quiet hours is refused; to a free slot works.
    tz = ZoneInfo(d.account.timezone)
    night = (move.scheduled_at.astimezone(tz) + timedelta(days=1)).replace(hour=3, minute=0)
    page.locator(f"#post-{move.id} form.move input[name=slot]").fill(
        night.strftime("%Y-%m-%dT%H:%M")
    )
    page.locator(f"#post-{move.id} form.move button").click()
    assert "quiet hours" in _message(page)
    assert d.store.get_post(move.id).scheduled_at == move.scheduled_at
    target = _free_slot(d, move)
    page.locator(f"#post-{move.id} form.move input[name=slot]").fill(
        target.astimezone(tz).strftime("%Y-%m-%dT%H:%M")
    )
    page.locator(f"#post-{move.id} form.move button").click()
    assert f"post {move.id} moved" in _message(page)
    assert d.store.get_post(move.id).scheduled_at == target
    [moved] = _audit(d, "console.post_moved")
    assert moved.data["to"] == target.isoformat() and moved.data["post_id"] == move.id

    # Pull and release the brake.
    page.click("#tab-controls")
    assert "brake is off" in page.locator("#brake-state").inner_text()
    page.fill("#brake-reason", "checking a complaint")
    page.click("#brake-button")
    assert "brake ON" in _message(page)
    assert "brake is ON" in page.locator("#brake-state").inner_text()
    assert d.store.get_config(_brake_key())["engaged"] is True
    page.fill("#brake-reason", "complaint handled")
    page.click("#brake-button")
    assert "brake off" in _message(page)
    assert d.store.get_config(_brake_key())["engaged"] is False
    [on] = _audit(d, "brake.engaged")
    [off] = _audit(d, "brake.released")
    assert on.actor.startswith(actor) and on.data["reason"] == "checking a complaint"
    assert off.actor.startswith(actor) and off.data["reason"] == "complaint handled"

    # The other pages render for the account.
    for tab in ("recent", "learning"):
        page.click(f"#tab-{tab}")
        assert (
            page.locator("h1")
            .inner_text()
            .startswith({"recent": "Recent posts", "learning": "Learning"}[tab])
        )


def login_audited(d: Deployment) -> bool:
    return any(e.actor.startswith("console:alice#") for e in _audit(d, "console.login"))


def _brake_key() -> str:
    from xbot_assets.store.hot.brake import BRAKE_CONFIG_KEY

    return BRAKE_CONFIG_KEY


def _free_slot(d: Deployment, post: Any) -> datetime:
    from xbot_assets.console.actions import slot_rules
    from xbot_assets.console.slots import next_free_slot, taken_times
    from xbot_assets.ops.dbread import read_connection

    rules = slot_rules(d.store, d.settings, d.account.timezone)
    after = post.scheduled_at + timedelta(hours=1)
    with read_connection(d.store.engine) as conn:
        taken = taken_times(conn, "local", d.account.id, around=after, exclude_id=post.id)
    return next_free_slot(rules, taken, after=after)


@pytest.mark.parametrize("deployment", ["required"], indirect=True)
def test_required_approval_posts_only_what_was_approved_mid_run(
    deployment: Deployment, console: Any
) -> None:
    from xbot_assets.engine.runtime import build_runtime
    from xbot_assets.posting.factory import post_due

    d, page = deployment, console
    assert d.settings.approval == "required"
    queued = _queued(d)
    first_slot = queued[0].scheduled_at
    approved: list[int] = []
    moved_to: dict[int, datetime] = {}
    now = first_slot.replace(minute=0, second=0, microsecond=0)
    end = queued[-1].scheduled_at + timedelta(hours=12)
    approved_mid_run = False
    while now <= end:
        d.clock.now = now
        runtime = build_runtime(d.settings, now=now)
        try:
            run = post_due(runtime.settings, poster=runtime.poster(), clock=runtime.now)
        finally:
            runtime.close()
        for tweet_id in (o.tweet_id for o in run.posted):
            assert tweet_id in approved or d.store.get_post(tweet_id).thread_position > 0
        if not approved_mid_run and now >= queued[2].scheduled_at - timedelta(minutes=30):
            # Mid-run: two slots have passed unapproved and nothing was posted.
            assert all(p.status == "queued" for p in map(d.store.get_post, (q.id for q in queued)))
            page.goto(f"/a/{d.account.handle}/queue")
            late, future = queued[0], queued[-1]
            notices = []
            for post in (late, future):
                page.locator(f"#post-{post.id} form.approve button").click()
                notices.append(_message(page))
                assert f"post {post.id} approved" in notices[-1]
                approved.append(post.id)
            assert "next free slot" in notices[0]  # the late one moved
            assert "next free slot" not in notices[1]  # the future one keeps its slot
            moved_to[late.id] = d.store.get_post(late.id).scheduled_at
            assert moved_to[late.id] >= now  # never sent late by surprise
            approved_mid_run = True
        now += timedelta(hours=1)
    assert approved_mid_run
    posted_roots = {
        p.id
        for p in d.store.list_posts(d.account.id, status="posted", limit=500)
        if p.thread_position == 0
    }
    assert posted_roots == set(approved)
    for post_id in approved:
        post = d.store.get_post(post_id)
        assert post.posted_at >= post.approved_at and post.posted_at >= post.scheduled_at
    assert d.store.get_post(queued[0].id).scheduled_at == moved_to[queued[0].id]
    still = {p.id for p in _queued(d)}
    assert still == {q.id for q in queued} - set(approved)
    assert {e.data["post_id"] for e in _audit(d, "console.post_approved")} == set(approved)
