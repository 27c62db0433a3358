"""The refill job, run through Dagster, with the real OpenAI generator over the loopback server.

``refill_candidates_job`` as a deployment runs it with ``GENERATOR=openai`` (the settings pick
the generator, ``OPENAI_BASE_URL`` points the real ``openai`` client at
``tests/content/fake_openai.py``, no retries, as the conventions ask of tests): the model's
answers are scripted per arm and seed (the offline text for that arm at that seed, written by
the server). The decision asks the generator once per candidate, so every slot costs
``n_candidates`` chat-completions requests; when every call fails, a slot is skipped with the
failure as its reason and no other arm is asked (that would pay up to ``MAX_ARMS_TRIED`` batches
of failing calls a slot), nothing is queued or charged, and the slots stay open for the next
refill. The API key, a distinctive fake, reaches the server and nothing the run records.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from tests.content.fake_openai import FakeOpenAI, Reply, model_answer, requested_arms
from tests.orchestration.conftest import Env, run_refill

NOW = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)
N = 5
KEY = "sk-xbot-canary-4e9d1b7a2c6f0835"
"""A fake key no other string in a run could contain by chance."""


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    fake.default_reply = model_answer  # type: ignore[method-assign]
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def openai_env(env: Env, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Env:
    """The env's deployment with the OpenAI generator pointed at the loopback server (the
    settings are read when the run starts)."""
    monkeypatch.setenv("GENERATOR", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "0")
    monkeypatch.setenv("OPENAI_TIMEOUT_S", "5")
    return env


def _store(env: Env) -> Any:
    from xbot_assets.engine.sensing import cached_store

    return cached_store(env.settings)


def _account(env: Env) -> int:
    return int(_store(env).get_account_by_handle(env.settings.x_handle).id)


def _spent(env: Env) -> Any:
    """Today's OpenAI spend as the runtime keeps it (bot_config, on the run's clock)."""
    from xbot_assets.content.budget import AIBudget, BotConfigBudgetLedger

    clock = lambda: NOW  # noqa: E731
    return AIBudget(BotConfigBudgetLedger(_store(env), clock=clock), 1.0, clock=clock).spent_today()


def _written(body: dict[str, Any]) -> tuple[str, ...]:
    """The parts of the post the server wrote for this request (a thread numbered ``i/n`` by
    the generator, as it queues one)."""
    from xbot_assets.content.threads import make_thread

    data = json.loads(model_answer(body).content or "{}")
    return tuple(make_thread(data["parts"], numbered=True) if data["parts"] else [data["text"]])


def _leaks(result: Any, caplog: pytest.LogCaptureFixture, env: Env) -> list[str]:
    """Where the key appears in what the run leaves behind: every Dagster event of the run
    (logs, metadata, errors), the run's record, the engine's Python logs and the candidates
    the store recorded (their reasons and details are the generator's exception text)."""
    instance = dg.DagsterInstance.get()
    found = [
        f"event {record.dagster_event_type or 'log'}: {record.user_message[:80]}".replace(
            KEY, "<key>"
        )
        for record in instance.all_logs(result.run_id)
        if KEY in dg.serialize_value(record)
    ]
    if KEY in dg.serialize_value(instance.get_run_by_id(result.run_id)):
        found.append("the run's record")
    if KEY in caplog.text:
        found.append("python logs")
    candidates = _store(env).list_candidates(_account(env), limit=1000)
    if any(KEY in json.dumps([c.text, c.guard_reasons, c.metadata]) for c in candidates):
        found.append("stored candidates")
    return found


def test_a_refill_queues_the_models_text_with_one_request_per_candidate(
    openai_env: Env, server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result, metadata = run_refill(openai_env, NOW, n_candidates=N)

    store = _store(openai_env)
    slots = metadata["open_slots"]
    queued = [store.get_post(int(i)) for i in metadata["queued_post_ids"]]
    assert slots >= 1 and len(queued) == slots and metadata["skipped"] == []
    written = {_written(body) for body in server.requests}
    for post in queued:
        # (a) the slot holds a text the model wrote, chosen among its candidates, with the
        # decision's propensity.
        parts = [p.text for p in store.get_thread(post.id)] if post.thread_size > 1 else [post.text]
        assert tuple(parts) in written
        assert post.metadata["generator"] == "openai"
        assert post.metadata["exhausted_arms"] == []
        assert 0 < post.metadata["propensity"] <= 1  # of the arm the draw ranked first
        sampled = post.metadata["sampled_values"]
        assert post.arm == max(sampled, key=sampled.get)
        batch = store.list_candidates(
            _account(openai_env), batch_id=post.metadata["candidate_batch"]
        )
        assert len(batch) == N and {c.generator for c in batch} == {"openai"}
        assert [c.tweet_id for c in batch if c.chosen] == [post.id]
    # (b) one chat-completions request per candidate: N for each slot's drawn arm, in the order
    # of the slots, each charged to the day's budget.
    ordered = sorted(queued, key=lambda p: p.scheduled_at)
    assert len(server.requests) == N * slots
    assert requested_arms(server) == [arm for p in ordered for arm in [p.arm] * N]
    assert _spent(openai_env).calls == N * slots
    # The moderation layer (the guard's extra check when a key is set) is asked about the texts
    # the model wrote, and nothing else.
    moderated = [m["input"] if isinstance(m["input"], str) else m["input"][0]
                 for m in server.moderation_requests]  # fmt: skip
    assert moderated and all(any(t in "\n\n".join(w) for w in written) for t in moderated)
    # (d) the key reached the server, and nothing the run left behind.
    assert set(server.authorizations) == {f"Bearer {KEY}"}
    assert _leaks(result, caplog, openai_env) == []


def test_a_refill_whose_openai_calls_all_fail_skips_the_slots_and_loses_nothing(
    openai_env: Env, server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.default_reply = lambda body: Reply(status=500)  # type: ignore[method-assign]
    result, metadata = run_refill(openai_env, NOW, n_candidates=N)

    slots = metadata["open_slots"]
    assert slots >= 1
    # No more requests than one arm's candidates per slot: no fallback arm, no retry.
    assert len(server.requests) == N * slots
    arms = requested_arms(server)
    assert all(len(set(arms[k : k + N])) == 1 for k in range(0, len(arms), N))
    # (c) every slot skipped with the failure named, nothing queued, nothing charged.
    assert metadata["queued_post_ids"] == []
    assert len(metadata["skipped"]) == slots
    assert all(
        s.endswith("the generator returned nothing (api_error)") for s in metadata["skipped"]
    )
    assert metadata["rejections"] == {"api_error": N * slots}
    store = _store(openai_env)
    account = _account(openai_env)
    assert store.list_posts(account, limit=1000) == []
    assert _spent(openai_env).calls == 0  # failed calls are not charged
    # The failed batches are kept: one of N per slot, each candidate with the HTTP failure.
    recorded = store.list_candidates(account, limit=1000)
    assert len(recorded) == N * slots and len({c.batch_id for c in recorded}) == slots
    assert all(c.guard_reasons == ["api_error"] and not c.chosen for c in recorded)
    details = {d for c in recorded for d in c.metadata["verdict"]["details"]}
    assert details == {"InternalServerError (HTTP 500)"}
    assert _leaks(result, caplog, openai_env) == []

    # Nothing lost: once the model answers again, the next refill queues every slot.
    server.default_reply = model_answer  # type: ignore[method-assign]
    _, healed = run_refill(openai_env, NOW, n_candidates=N)
    assert healed["open_slots"] == slots and len(healed["queued_post_ids"]) == slots
    assert healed["skipped"] == [] and len(server.requests) == 2 * N * slots


def _shown_as_recent(body: dict[str, Any]) -> list[str]:
    """The texts a request's prompt lists as recent posts (``openai_generator``: 5 at most)."""
    lines = body["messages"][1]["content"].split("\n")
    if "Recent posts (write something clearly different):" not in lines:
        return []
    start = lines.index("Recent posts (write something clearly different):") + 1
    shown = []
    for line in lines[start:]:
        if not line.startswith("- "):
            break
        shown.append(json.loads(line[2:]))
    return shown


def test_each_slot_shows_the_model_the_text_queued_for_the_slot_before(
    openai_env: Env, server: FakeOpenAI
) -> None:
    """The prompt lists only the 5 newest recent posts, so within one refill the text just
    queued for the previous slot must come first, ahead of the older posts the store holds
    (it was appended behind them, and the model never saw it)."""
    store = _store(openai_env)
    settings = openai_env.settings
    joined = NOW - timedelta(days=1)
    account = store.ensure_account(
        settings.x_handle, x_user_id=settings.x_user_id, timezone=settings.account_timezone,
        now=joined,
    ).id  # fmt: skip
    older = [f"an older post, number {i}, about nothing in particular" for i in range(6)]
    for i, text in enumerate(older):
        at = NOW - timedelta(hours=12 - i)
        post = store.enqueue_post(account, text, scheduled_at=at, now=at)
        assert store.claim_post(post.id, now=at) is not None
        store.mark_posted(post.id, x_id=str(9_000 + i), posted_at=at, now=at)

    _, metadata = run_refill(openai_env, NOW, n_candidates=N)

    queued = sorted((store.get_post(int(i)) for i in metadata["queued_post_ids"]),
                    key=lambda p: p.scheduled_at)  # fmt: skip
    assert len(queued) >= 2 and len(server.requests) == N * len(queued)
    # The first slot's prompts list the store's posts, newest first.
    assert _shown_as_recent(server.requests[0]) == older[::-1][:5]
    for k in range(1, len(queued)):
        before = queued[k - 1]
        parts = (
            [p.text for p in store.get_thread(before.id)]
            if before.thread_size > 1
            else [before.text]
        )
        shown = _shown_as_recent(server.requests[N * k])  # the slot's first candidate
        assert shown[: min(5, len(parts))] == parts[:5], (k, shown, parts)
