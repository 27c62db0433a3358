"""The operator's guard settings (bot_config) and OpenAI moderation apply to every generation.

Driven through the engine's refill (what ``refill_candidates_job`` runs) against the sandbox X
and a real store: a banned topic set in the store refuses the next candidates, and with
``OPENAI_API_KEY`` set every candidate goes through the moderation endpoint (a loopback server
speaking OpenAI's protocol).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from tests.content.fake_openai import FakeOpenAI
from tests.orchestration.conftest import Env
from xbot_assets.config import Settings, load_settings

if TYPE_CHECKING:
    from xbot_assets.engine.decide import RefillReport
    from xbot_assets.store.durable.models import Candidate

START = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)
BANNED = [
    "the", "a", "you", "it", "to", "and", "for", "is", "of", "in", "with", "i", "this",
    "our", "should",
]  # fmt: skip
"""Words every offline candidate contains at least one of (so a whole batch is refused)."""


def _refill_once(settings: Settings, now: datetime) -> tuple[RefillReport, list[Candidate]]:
    """One refill of one slot at ``now``; the report and the candidates it recorded."""
    from xbot_assets.engine.decide import refill
    from xbot_assets.engine.runtime import build_runtime

    runtime = build_runtime(settings, now=now)
    try:
        store = runtime.store()
        account = runtime.account_id(store)
        before = {c.id for c in store.list_candidates(account, limit=1000)}
        report = refill(runtime, n_candidates=3, max_slots=1)
        made = [c for c in store.list_candidates(account, limit=1000) if c.id not in before]
    finally:
        runtime.close()
    return report, made


def test_a_banned_topic_set_in_the_store_refuses_the_next_candidates(env: Env) -> None:
    from xbot_assets.engine.sensing import cached_store

    report, made = _refill_once(env.settings, START)
    assert report.queued, report.skipped  # the defaults accept the offline candidates
    assert any(c.guard_passed for c in made)

    store = cached_store(env.settings)
    store.set_config("guard.banned_topics", json.dumps(BANNED), actor="test", now=START)
    store.set_config(
        "guard.max_hashtags", 0, actor="test", now=START
    )  # a second key: every guard setting is read, not just one
    report, made = _refill_once(env.settings, START + timedelta(days=1))
    assert made, "the refill generated no candidates"
    assert not any(c.guard_passed for c in made)
    assert all("banned_topic" in c.guard_reasons for c in made), [c.guard_reasons for c in made]
    assert not report.queued and report.skipped


def test_moderation_runs_on_every_candidate_when_a_key_is_set(env: Env) -> None:
    server = FakeOpenAI(flag_words=("",)).start()  # "" is in every text: all flagged
    names = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MAX_RETRIES", "GENERATOR")
    saved = {n: os.environ.get(n) for n in names}
    try:
        os.environ.update(
            OPENAI_API_KEY="test-key-not-secret",
            OPENAI_BASE_URL=server.url,
            OPENAI_MAX_RETRIES="0",
            GENERATOR="offline",
        )
        settings = load_settings(env_file=None)
        report, made = _refill_once(settings, START)
    finally:
        server.stop()
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
    assert made and len(server.moderation_requests) >= len(made)
    assert all("moderation_flagged" in c.guard_reasons for c in made)
    assert not report.queued


def test_content_check_applies_the_stores_guard_settings(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xbot_assets.cli import app
    from xbot_assets.engine.sensing import cached_store

    monkeypatch.chdir(env.root)  # no .env from the checkout
    text = "Pin your Python dependencies before every release."
    runner = CliRunner()
    first = runner.invoke(app, ["content", "check", "--json", text])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["guard_settings"] == "bot_config"
    cached_store(env.settings).set_config(
        "guard.banned_topics", json.dumps(["dependencies"]), actor="test"
    )
    second = runner.invoke(app, ["content", "check", "--json", text])
    assert second.exit_code == 1
    assert json.loads(second.output)["reasons"] == ["banned_topic"]
