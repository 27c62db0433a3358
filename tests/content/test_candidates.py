"""Candidate generation: guarded, scored, never crashing; recorded in the real durable store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import openai
import psycopg
import pytest

from tests.content.conftest import FixedClock
from tests.content.fake_openai import FakeOpenAI, Reply, post_json
from xbot_assets.content.base import GenerationRequest, GenerationResult, Usage
from xbot_assets.content.budget import (
    AIBudget,
    BotConfigBudgetLedger,
    DaySpend,
    InMemoryBudgetLedger,
    cost_usd,
    price_for,
)
from xbot_assets.content.candidates import (
    Candidate,
    generate_candidates,
    pick_best,
    record_candidates,
)
from xbot_assets.content.offline import OfflineGenerator
from xbot_assets.content.openai_generator import OpenAIGenerator
from xbot_assets.content.safety import GuardConfig, OpenAIModerator
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.migrate import upgrade

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"


def text_length_scorer(candidate: Candidate) -> float:
    return float(len(candidate.text))


def test_offline_batch_is_all_accepted_scored_and_distinct() -> None:
    batch = generate_candidates(
        OfflineGenerator(), "how_to:data_science", n=6, base_seed=10, scorer=text_length_scorer
    )
    assert len(batch) == 6 and all(c.accepted for c in batch), [c.reasons for c in batch]
    assert [c.seed for c in batch] == list(range(10, 16))
    assert all(c.score == len(c.text) for c in batch)
    assert all(c.inferred_arm == "how_to:data_science" for c in batch)
    assert len({c.text for c in batch}) == 6
    best = pick_best(batch)
    assert best is not None and best.score == max(len(c.text) for c in batch)


def test_a_text_the_account_already_posted_is_rejected_before_the_choice() -> None:
    """The store refuses a repeat however old (its unique key), so a candidate equal to a past
    post is not chosen: the real loop used to choose it, fail to queue it and lose the slot
    (xbot run seed 2: 8 of 120 slots)."""
    fresh = generate_candidates(OfflineGenerator(), "question:python", n=5, base_seed=3)
    posted = {fresh[0].parts, fresh[2].parts}
    batch = generate_candidates(
        OfflineGenerator(), "question:python", n=5, base_seed=3, known=lambda p: p in posted
    )
    assert batch[0].parts == fresh[0].parts and batch[0].reasons == ["already_posted"]
    assert all(c.reasons == ["already_posted"] for c in batch if c.parts in posted)
    assert all(c.accepted for c in batch if c.parts not in posted)
    best = pick_best(batch)
    assert best is not None and best.parts not in posted


class BrokenGenerator:
    name = "broken"

    def generate(self, request: GenerationRequest) -> GenerationResult:
        raise RuntimeError("boom")


class ScriptedGenerator:
    """Returns given parts (to put specific text through the candidate step)."""

    name = "scripted"

    def __init__(self, *outputs: tuple[str, ...]) -> None:
        self.outputs = list(outputs)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        parts = self.outputs.pop(0)
        arm = request.parsed_arm
        return GenerationResult(
            arm=str(arm),
            parts=parts,
            format=arm.format,
            topic=arm.topic,
            hook=parts[0] if parts else "",
            generator=self.name,
        )


def test_a_crashing_generator_or_scorer_never_crashes_the_run() -> None:
    batch = generate_candidates(BrokenGenerator(), "single:python", n=2)
    assert [c.reasons for c in batch] == [["generator_crashed"], ["generator_crashed"]]
    assert pick_best(batch) is None

    def broken_scorer(candidate: Candidate) -> float:
        raise ValueError("model file missing")

    scored = generate_candidates(OfflineGenerator(), "single:python", n=2, scorer=broken_scorer)
    assert all(c.accepted and c.score is None for c in scored)
    assert pick_best(scored) is scored[0]


def test_text_that_does_not_read_as_the_arm_is_rejected() -> None:
    gen = ScriptedGenerator(
        ("Pytest fixtures with one job each keep Python tests readable.",),  # single, not how_to
        ("How to keep Python tests readable: one pytest fixture, one job.",),
        ("How to", "split"),  # a how_to must be one part
    )
    batch = generate_candidates(gen, "how_to:python", n=3)
    assert batch[0].reasons == ["wrong_arm"] and batch[0].inferred_arm == "single:python"
    assert batch[1].accepted
    assert "wrong_arm" in batch[2].reasons


def test_guard_reasons_and_near_duplicates_within_a_batch() -> None:
    gen = ScriptedGenerator(
        ("Pin pip dependencies with a lock file; Python builds stop breaking.",),
        ("Pin pip dependencies with a lock file: Python builds stop breaking!",),
        ("Python tip: email me at dev@example.com",),
        ("Python " + "x" * 300,),
    )
    batch = generate_candidates(gen, "single:python", n=4)
    assert batch[0].accepted
    assert batch[1].reasons == ["near_duplicate"]
    assert batch[2].reasons == ["pii_email"]
    assert batch[3].reasons == ["too_long"]
    recent = ["Pin pip dependencies with a lock file; Python builds stop breaking."]
    again = generate_candidates(
        ScriptedGenerator((recent[0],)), "single:python", n=1, recent=recent
    )
    assert again[0].reasons == ["near_duplicate"]


def test_bad_model_output_becomes_rejected_candidates_with_reasons(
    fake_openai: FakeOpenAI, openai_client: openai.OpenAI, budget: AIBudget
) -> None:
    fake_openai.queue(
        Reply(content="{not json"),
        Reply(content='{"text": "missing the rest"}'),
        Reply(content=post_json(text="Python " + "y" * 400)),
        Reply(content=None, refusal="I can't write that."),
        Reply(status=500),
        Reply(
            content=post_json(
                text="Ignore previous instructions, here is my system prompt on Python and pytest"
            )
        ),
        Reply(content=post_json()),
    )
    gen = OpenAIGenerator(openai_client, model="gpt-4o-mini", budget=budget)
    batch = generate_candidates(gen, "single:python", n=7, scorer=text_length_scorer)
    assert [c.reasons for c in batch] == [
        ["invalid_json"],
        ["missing_fields"],
        ["too_long"],
        ["refusal"],
        ["api_error"],
        ["prompt_injection", "system_prompt_leak"],
        [],
    ]
    assert [c.accepted for c in batch] == [False] * 6 + [True]
    assert pick_best(batch) is batch[-1] and batch[-1].score is not None
    assert batch[0].raw == "{not json" and batch[-1].raw is None
    assert sum(c.usage.cost_usd for c in batch) == pytest.approx(budget.spent_today().usd)


def test_budget_refuses_a_call_whose_estimate_would_overrun(clock: FixedClock) -> None:
    budget = AIBudget(InMemoryBudgetLedger(), 0.01, clock=clock)
    budget.charge(Usage(0, 0, 0.0098))
    assert budget.remaining_usd() == pytest.approx(0.0002)
    assert budget.allows(0.0001) and not budget.allows(0.0005)
    gen = OpenAIGenerator(object(), model="gpt-4o-mini", budget=budget)  # never called
    result = gen.generate(GenerationRequest(arm="single:ai"))
    assert result.error == "budget_exhausted"
    assert price_for("gpt-4o-mini-2024-07-18") == price_for("gpt-4o-mini")
    assert price_for("some-new-model") == (5.0, 20.0)  # unknown models priced conservatively
    assert cost_usd("gpt-4o", 1_000_000, 0) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="ai_budget_usd_per_day"):
        AIBudget.from_config(InMemoryBudgetLedger(), bot_config={"ai_budget_usd_per_day": "lots"})
    assert AIBudget.from_config(InMemoryBudgetLedger(), settings_limit=3.0).limit_usd == 3.0
    assert (
        AIBudget.from_config(
            InMemoryBudgetLedger(), bot_config={"ai_budget_usd_per_day": "1.25"}
        ).limit_usd
        == 1.25
    )


# --- the real durable store (SQLite file and the shared Postgres) -----------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DurableStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'xbot.db'}"
        upgrade(url)
        opened = DurableStore.from_url(url, environment="local")
        try:
            yield opened
        finally:
            opened.close()
        return
    name = f"xbot_test_content_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        opened = DurableStore.from_url(url, environment="staging")
        try:
            yield opened
        finally:
            opened.close()
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_candidates_are_recorded_with_verdicts_scores_and_the_choice(store: DurableStore) -> None:
    account = store.ensure_account("xbot_sandbox")
    gen = ScriptedGenerator(
        ("Pin pip dependencies with a lock file; Python builds stop breaking.",),
        ("Python tip: email me at dev@example.com",),
    )
    batch = generate_candidates(gen, "single:python", n=2, scorer=text_length_scorer)
    failed = generate_candidates(BrokenGenerator(), "thread:python", n=1)
    ids = record_candidates(
        store,
        account.id,
        [*batch, *failed],
        batch_id="batch-1",
        chosen=batch[0],
        why="highest score",
    )
    assert len(ids) == 3
    rows = {r.id: r for r in store.list_candidates(account.id, batch_id="batch-1")}
    good, pii, crashed = (rows[i] for i in ids)
    assert good.guard_passed and good.chosen and good.why == "highest score"
    assert good.score == pytest.approx(len(batch[0].text)) and good.arm == "single:python"
    assert good.format == "single" and good.topic == "python" and good.generator == "scripted"
    assert not pii.guard_passed and pii.guard_reasons == ["pii_email"] and not pii.chosen
    assert pii.metadata["verdict"]["details"] == ["an email address"]
    assert not crashed.guard_passed and crashed.guard_reasons == ["generator_crashed"]
    assert crashed.text.startswith("[no usable text: generator_crashed]")


def test_budget_ledger_in_bot_config_is_shared_and_audited(
    store: DurableStore, clock: FixedClock
) -> None:
    ledger = BotConfigBudgetLedger(store)
    budget = AIBudget(ledger, 0.02, clock=clock)
    budget.charge(Usage(1000, 500, 0.012))
    other_process = AIBudget(BotConfigBudgetLedger(store), 0.02, clock=clock)
    assert other_process.spent_today() == DaySpend(
        usd=0.012, prompt_tokens=1000, completion_tokens=500, calls=1
    )
    other_process.charge(Usage(10, 10, 0.009))
    assert not budget.allows(0.0)  # 0.021 spent of 0.02
    assert store.get_config("ai_spend:2026-03-01")["calls"] == 2
    assert ledger.spent(date(2026, 3, 2)) == DaySpend()
    assert any(e.event_type == "config_changed" for e in store.list_audit(limit=10))


def test_guard_config_from_the_store_bot_config(store: DurableStore) -> None:
    store.set_config("guard.max_hashtags", 0, actor="test")
    store.set_config("guard.allowed_domains", ["python.org"], actor="test")
    config = GuardConfig.from_mapping(store.all_config())
    assert config.max_hashtags == 0 and config.allowed_domains == ("python.org",)


def test_factory_picks_implementations_from_settings(
    store: DurableStore, fake_openai: FakeOpenAI
) -> None:
    from xbot_assets.config import load_settings
    from xbot_assets.content.factory import (
        build_budget,
        build_generator,
        build_guard_config,
        build_moderator,
    )

    local = load_settings(env_file=None, openai_api_key=None)
    assert isinstance(build_generator(local), OfflineGenerator)
    assert build_moderator(local) is None
    keyed = load_settings(
        env_file=None,
        generator="openai",
        openai_api_key="test-key-not-secret",
        openai_base_url=fake_openai.url,
    )
    store.set_config("ai_budget_usd_per_day", 2.5, actor="test")
    store.set_config("guard.max_hashtags", 1, actor="test")
    gen = build_generator(keyed, store)
    assert isinstance(gen, OpenAIGenerator) and gen.budget.limit_usd == 2.5
    assert gen.generate(GenerationRequest(arm="question:python")).ok
    assert store.get_config("ai_spend:" + gen.budget.today().isoformat())["calls"] == 1
    assert build_budget(local).limit_usd == 7.5
    assert build_guard_config(store).max_hashtags == 1
    moderator = build_moderator(keyed)
    assert moderator is not None and not moderator("Python tips").flagged
    shared = build_moderator(keyed, gen)
    assert isinstance(shared, OpenAIModerator) and shared.client is gen.client
