"""Real concurrency: processes charging the AI budget at once never lose a charge.

The day's spend lives in one bot_config row; a lost update would undercount and let generation
overspend its daily cap, so two OS processes charge the same day at once and the total must be
the sum of every charge, on Postgres and on SQLite.
"""

from __future__ import annotations

import multiprocessing as mp
from datetime import date
from typing import Any

import pytest

from xbot_assets.content.base import Usage
from xbot_assets.content.budget import BotConfigBudgetLedger, DaySpend
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.errors import InvalidInputError

DAY = date(2026, 3, 1)
WORKERS = 2
CHARGES = 40
KEY = f"{BotConfigBudgetLedger.KEY_PREFIX}{DAY.isoformat()}"


def _usage(worker: int, i: int) -> Usage:
    """A distinct charge per (worker, i) so the expected total is known exactly."""
    prompt, completion = 100 + worker * 1000 + i, 10 + i
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost_usd=(prompt * 0.15 + completion * 0.60) / 1_000_000,
    )


def _charge_many(url: str, worker: int, barrier: Any, out: Any) -> None:
    store = DurableStore.from_url(url, environment="staging", check_schema=False)
    try:
        ledger = BotConfigBudgetLedger(store, actor=f"worker{worker}")
        barrier.wait(timeout=60)
        for i in range(CHARGES):
            ledger.add(DAY, _usage(worker, i))
        out.put((worker, None))
    except Exception as exc:  # reported to the parent, which fails the test
        out.put((worker, repr(exc)))
    finally:
        store.close()


def _race(url: str) -> None:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(WORKERS)
    out = ctx.Queue()
    procs = [ctx.Process(target=_charge_many, args=(url, w, barrier, out)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    results = [out.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert [err for _, err in results if err is not None] == []

    charges = [_usage(w, i) for w in range(WORKERS) for i in range(CHARGES)]
    store = DurableStore.from_url(url, environment="staging")
    try:
        total = BotConfigBudgetLedger(store).spent(DAY)
        assert total.calls == WORKERS * CHARGES, f"lost {WORKERS * CHARGES - total.calls} charges"
        assert total.prompt_tokens == sum(u.prompt_tokens for u in charges)
        assert total.completion_tokens == sum(u.completion_tokens for u in charges)
        assert abs(total.usd - sum(u.cost_usd for u in charges)) < 1e-6
        # Every charge still leaves its audit row, and the rows form one chain: each charge
        # started from the total the one before it left (old -> new, 1 call more each time).
        audits = [
            e
            for e in store.list_audit(event_type="config_changed", limit=1000)
            if e.data.get("key") == KEY
        ]
        assert len(audits) == WORKERS * CHARGES
        assert sum(1 for e in audits if e.data["created"]) == 1
        chain = sorted(
            (DaySpend.from_json(e.data["old"]).calls, DaySpend.from_json(e.data["new"]).calls)
            for e in audits
        )
        assert chain == [(n, n + 1) for n in range(WORKERS * CHARGES)]
    finally:
        store.close()


def test_two_processes_charging_at_once_lose_no_charge_on_postgres(pg_url: str) -> None:
    _race(pg_url)


def test_two_processes_charging_at_once_lose_no_charge_on_sqlite(sqlite_url: str) -> None:
    _race(sqlite_url)


def test_update_config_creates_then_changes_the_value_and_audits_each_write(
    store: DurableStore,
) -> None:
    def bump(old: Any) -> dict[str, int]:
        return {"n": (old or {"n": 0})["n"] + 1}

    assert store.update_config("counter", bump, actor="a", reason="first") == {"n": 1}
    assert store.update_config("counter", bump, actor="b") == {"n": 2}
    assert store.get_config("counter") == {"n": 2}
    audits = store.list_audit(event_type="config_changed")
    assert [(e.actor, e.data["old"], e.data["new"], e.data["created"]) for e in audits] == [
        ("b", {"n": 1}, {"n": 2}, False),
        ("a", None, {"n": 1}, True),
    ]


def test_update_config_refuses_a_value_that_is_not_json_and_changes_nothing(
    store: DurableStore,
) -> None:
    store.set_config("k", 1, actor="setup")
    with pytest.raises(InvalidInputError, match="not JSON"):
        store.update_config("k", lambda old: object(), actor="a")
    with pytest.raises(InvalidInputError, match="change must be a function"):
        store.update_config("k", 5, actor="a")  # type: ignore[arg-type]
    assert store.get_config("k") == 1
    assert len(store.list_audit(event_type="config_changed")) == 1
