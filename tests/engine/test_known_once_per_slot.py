"""The refill reads which texts the account already queued once per slot (``content_hashes``,
one query), not once per candidate.

Driven through :func:`~xbot_assets.engine.decide.decide_slot` (what the refill runs for each
slot) on the embedded SQLite store: the texts of the first drawn arm's whole batch are held by
the store, so that arm is dry and the decision falls back to the draw's next arm. Two batches of
five candidates each: one read, where asking per candidate would cost ten.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from tests.orchestration.conftest import Env, hold_as_failed

START = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)
SLOT = START + timedelta(hours=4)
HASH_LOOKUP = re.compile(r"tweets\.content_hash( (IN|=)|\s+FROM tweets)", re.IGNORECASE)
"""A statement that looks up the account's posts by content hash, or reads their hashes."""


def test_decide_slot_reads_the_stores_hashes_once_per_slot(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xbot_assets.content.factory import build_guard_config
    from xbot_assets.engine.decide import decide_slot, load_models
    from xbot_assets.engine.runtime import build_runtime
    from xbot_assets.store.durable import DurableStore

    runtime = build_runtime(env.settings, now=START)
    try:
        store = runtime.store()
        account = runtime.account_id(store)
        models = load_models(runtime.settings)
        generator = runtime.generator(store)
        guard_config = build_guard_config(store)

        def decide() -> Any:
            return decide_slot(
                runtime, store, account, SLOT, models, generator=generator, timezone="UTC",
                recent=[], history=[], guard_config=guard_config,
            )  # fmt: skip

        first, made, _ = decide()
        assert first.exhausted_arms == [] and made and all(c.accepted for c in made)
        for candidate in made:  # the whole first batch is now known: that arm is dry
            hold_as_failed(store, account, list(candidate.parts), START)

        calls: dict[str, int] = {"content_hashes": 0, "find_post_by_hash": 0}
        for name in calls:
            original = getattr(DurableStore, name)

            def counted(self: Any, *args: Any, _name: str = name, _f: Any = original) -> Any:
                calls[_name] += 1
                return _f(self, *args)

            monkeypatch.setattr(DurableStore, name, counted)
        statements: list[str] = []

        def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if HASH_LOOKUP.search(statement):
                statements.append(statement)

        event.listen(store.engine, "before_cursor_execute", seen)
        try:
            decision, candidates, chosen = decide()
        finally:
            event.remove(store.engine, "before_cursor_execute", seen)
    finally:
        runtime.close()

    assert decision.exhausted_arms == [first.arm], decision.skipped_reason
    assert chosen is not None and decision.arm != first.arm
    assert [c.reasons for c in candidates[: len(made)]] == [["already_posted"]] * len(made)
    batches = len(decision.exhausted_arms) + 1
    per_candidate = sum(1 for c in candidates if c.accepted or "already_posted" in c.reasons)
    assert batches == 2 and per_candidate >= 2 * batches  # asking per candidate would differ
    assert calls == {"content_hashes": 1, "find_post_by_hash": 0}
    assert len(statements) == 1, statements
