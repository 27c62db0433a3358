"""Issue 17 item 8: keys that ignored the environment let environments interfere on Postgres.

Unique and foreign keys are checked without row-level security, so before migration 0003 a
statement of one environment could block another's writes (a metrics snapshot for a production
tweet id), reference another's rows (staging posts for production accounts) or learn that a key
exists (``ON CONFLICT DO NOTHING`` on a production audit ``event_id``; an explicit primary key).
Every test here runs as the per-environment roles migration 0002 creates (``xbot_<env>``, no
superuser, no BYPASSRLS), through :class:`DurableStore` or raw SQL on its connections.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from itertools import permutations
from typing import Any

import psycopg
import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Date,
    Float,
    ForeignKeyConstraint,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql

from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.models import MetricSnapshot
from xbot_assets.store.durable.schema import ENVIRONMENT_TABLES, ENVIRONMENTS, UTCDateTime, metadata

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = date(2026, 3, 1)
FIXED = {"horizon": "1h", "status": "ok", "guard_passed": False}
"""Values a column's check constraint needs (system_health.status, tweet_metrics.horizon)."""
TWEET_STATUS = "queued"
Outcome = tuple[Any, ...]


def _role_store(url: str, env: str) -> DurableStore:
    store = DurableStore.from_url(url, environment=env)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == f"xbot_{env}"
    return store


def _reset(url: str) -> None:
    db = url.rsplit("/", 1)[1]
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={db}") as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(f"DELETE FROM {table.name}")


def _value(table: Table, name: str, unique: str) -> Any:
    column = table.c[name]
    if table.name == "tweets" and name == "status":
        return TWEET_STATUS
    if name in FIXED:
        return FIXED[name]
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return T0
    if isinstance(kind, Date):
        return DAY
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Float):
        return 0.0
    if isinstance(kind, JSON):
        return {}
    if isinstance(kind, (String, Text)):
        return f"{name}-{unique}"[: getattr(kind, "length", None) or 200]
    return 0


def _row(table: Table, env: str, own: dict[str, int], unique: str) -> dict[str, Any]:
    """A minimal valid row of ``table`` in ``env`` pointing at its own account and post."""
    row: dict[str, Any] = {"environment": env}
    for column in table.c:
        if column.name in ("id", "environment"):
            continue
        if column.name == "account_id":
            row[column.name] = own["accounts"]
        elif column.name == "tweet_id":
            row[column.name] = own["tweets"]
        elif column.name in ("event_id", "attempt_id", "content_hash", "handle", "key"):
            row[column.name] = f"{column.name}_{unique}"
        elif column.name == "summary_type":
            row[column.name] = f"type_{unique}"
        elif column.nullable or column.server_default is not None:
            continue
        else:
            row[column.name] = _value(table, column.name, unique)
    return row


def _insert(conn: Connection, table: Table, row: dict[str, Any]) -> int:
    with conn.begin():
        return int(conn.execute(table.insert().values(**row).returning(table.c.id)).scalar_one())


def _populate(conn: Connection, env: str, unique: str) -> dict[str, dict[str, Any]]:
    """One row in every table of ``env`` (plus a thread reply), as that environment's role.

    Returns each table's row as stored (with its id), keyed by table name."""
    tables = {t.name: t for t in ENVIRONMENT_TABLES}
    own: dict[str, int] = {}
    rows: dict[str, dict[str, Any]] = {}
    for name in ("accounts", "tweets"):
        row = _row(tables[name], env, own, unique)
        own[name] = _insert(conn, tables[name], row)
        rows[name] = {**row, "id": own[name]}
    for table in ENVIRONMENT_TABLES:
        if table.name in rows:
            continue
        row = _row(table, env, own, unique)
        rows[table.name] = {**row, "id": _insert(conn, table, row)}
    reply = _row(tables["tweets"], env, own, f"{unique}_reply")
    reply.update(thread_root_id=own["tweets"], thread_parent_id=own["tweets"], thread_position=1)
    rows["reply"] = {**reply, "id": _insert(conn, tables["tweets"], reply)}
    return rows


def _outcome(conn: Connection, action: Callable[[Connection], Any]) -> Outcome:
    """What a statement tells its environment: success and row count, or the error's kind."""
    try:
        with conn.begin():
            result = action(conn)
        return ("ok", getattr(result, "rowcount", None))
    except sa_exc.DBAPIError as exc:
        diag = getattr(exc.orig, "diag", None)
        return (
            "error",
            getattr(exc.orig, "sqlstate", None),
            getattr(diag, "constraint_name", None),
        )


def _next_keys(victim: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The keys the victim will write next (see :func:`_victim_workload`)."""
    out = {}
    for name, row in victim.items():
        out[name] = {
            k: (v.rsplit("_", 1)[0] + "_next" if isinstance(v, str) and k != "environment" else v)
            for k, v in row.items()
        }
    out["tweet_metrics"]["horizon"] = "6h"
    return out


def _attacks(
    env: str, own: dict[str, int], victim: dict[str, dict[str, Any]]
) -> list[tuple[str, Callable[[Connection], Any]]]:
    return _attacks_on(env, own, victim, "") + _attacks_on(env, own, _next_keys(victim), "next ")


def _attacks_on(
    env: str, own: dict[str, int], victim: dict[str, dict[str, Any]], tag: str
) -> list[tuple[str, Callable[[Connection], Any]]]:
    """Every statement through which a key could reach the victim's rows, built from schema.py.

    For each table: every foreign key pointed at the victim's row; every unique key (primary
    key included) filled with the victim's values, as a plain INSERT, as ``ON CONFLICT DO
    NOTHING`` and as an UPDATE of the attacker's own row; and reads by the victim's ids.
    """
    out: list[tuple[str, Callable[[Connection], Any]]] = []
    for table in ENVIRONMENT_TABLES:
        base_of = victim[table.name]
        for fk in table.constraints:
            if not isinstance(fk, ForeignKeyConstraint):
                continue
            column = next(c.name for c in fk.columns if c.name != "environment")
            referred = fk.referred_table.name
            row = _row(table, env, own, uuid.uuid4().hex[:12])
            row[column] = victim["tweets" if referred == "tweets" else "accounts"]["id"]
            out.append((f"{tag}{table.name}: {fk.name} -> victim", _ins(table, row)))
        for key in table.constraints:
            if not isinstance(key, (UniqueConstraint, PrimaryKeyConstraint)):
                continue
            names = [c.name for c in key.columns if c.name != "environment"]
            taken = {n: base_of[n] for n in names if n in base_of}
            for variant, values in (
                ("all columns", taken),
                ("own keys", {n: v for n, v in taken.items() if not n.endswith("_id")}),
            ):
                row = {**_row(table, env, own, uuid.uuid4().hex[:12]), **values}
                label = f"{tag}{table.name}: {key.name or 'pk'} = victim's ({variant})"
                out.append((f"{label} insert", _ins(table, row)))
                out.append((f"{label} on conflict", _ins(table, row, conflict=True)))
                mine = {**_row(table, env, own, uuid.uuid4().hex[:12])}
                out.append((f"{label} update", _upd(table, mine, values)))
        out.append((f"{tag}{table.name}: read victim id", _read(table, base_of["id"])))
        out.append((f"{tag}{table.name}: update victim id", _touch(table, base_of["id"])))
    if tag:
        return out
    for table in ENVIRONMENT_TABLES:
        for other in ENVIRONMENTS:
            seq = f"{table.name}_id_{other}"
            if other != env:
                out.append((f"read sequence {seq}", _sql(f"SELECT last_value FROM {seq}")))
        out.append(
            (f"read {table.name}_id_seq", _sql(f"SELECT last_value FROM {table.name}_id_seq"))
        )
    return out


def _ins(table: Table, row: dict[str, Any], conflict: bool = False) -> Callable[[Connection], Any]:
    def run(conn: Connection) -> Any:
        stmt = postgresql.insert(table).values(**row)
        return conn.execute(stmt.on_conflict_do_nothing() if conflict else stmt)

    return run


def _upd(table: Table, row: dict[str, Any], values: dict[str, Any]) -> Callable[[Connection], Any]:
    def run(conn: Connection) -> Any:
        new_id: int = conn.execute(table.insert().values(**row).returning(table.c.id)).scalar_one()
        return conn.execute(table.update().where(table.c.id == new_id).values(**values))

    return run


def _read(table: Table, victim_id: int) -> Callable[[Connection], Any]:
    def run(conn: Connection) -> Any:
        found = conn.execute(select(table.c.id).where(table.c.id == victim_id)).all()
        assert found == []
        return conn.execute(select(table.c.id))

    return run


def _touch(table: Table, victim_id: int) -> Callable[[Connection], Any]:
    def run(conn: Connection) -> Any:
        return conn.execute(
            table.update().where(table.c.id == victim_id).values(environment=table.c.environment)
        )

    return run


def _sql(statement: str) -> Callable[[Connection], Any]:
    return lambda conn: conn.execute(text(statement))


def _victim_workload(store: DurableStore, rows: dict[str, dict[str, Any]]) -> list[Any]:
    """What the victim does next through the store, on keys the attacker may have taken first."""
    post = rows["tweets"]["id"]
    out: list[Any] = []
    for horizon in ("1h", "6h"):
        snap = MetricSnapshot(tweet_id=post, horizon=horizon, collected_at=T0, likes=7)
        out.append(store.upsert_metrics([snap]))
    out.append([(m.horizon, m.likes) for m in store.get_metrics(post)])
    for event in (rows["audit_log"]["event_id"], "event_id_next"):
        out.append(store.audit("probe", component="test", event_id=event) is not None)
    store.set_config("key_next", {"v": 1}, actor="test")
    out.append(store.get_config("key_next"))
    out.append(store.upsert_daily_summary(DAY, "type_next", {"n": 1}).metrics)
    out.append(store.ensure_account("handle_next").handle)
    out.append(store.enqueue_post(rows["accounts"]["id"], "next post", scheduled_at=T0).status)
    return out


def _visible(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """What an environment can see, without ids and clock-dependent timestamps."""
    seen: dict[str, list[tuple[Any, ...]]] = {}
    with conn.begin():
        for table in ENVIRONMENT_TABLES:
            cols = [
                c
                for c in table.c
                if not isinstance(c.type, UTCDateTime)
                and c.name not in ("id", "account_id", "tweet_id", "thread_root_id")
                and c.name not in ("thread_parent_id",)
            ]
            rows = conn.execute(select(*cols)).all()
            seen[table.name] = sorted(tuple(map(repr, r)) for r in rows)
    return seen


@pytest.fixture
def url(pg_url: str) -> Iterator[str]:
    yield pg_url
    _reset(pg_url)


@pytest.mark.parametrize(("attacker", "victim"), list(permutations(ENVIRONMENTS, 2)))
def test_no_statement_of_one_environment_changes_what_another_can_do_or_learn(
    url: str, attacker: str, victim: str
) -> None:
    """issue 17 item 8: a systematic pass over every unique and foreign key, as each role.

    Three runs: (A) the victim has rows, the attacker runs every key statement, the victim
    carries on; (B) the victim has no rows and the attacker runs the same statements with the
    same literal values; (C) the victim alone. Learn nothing: every attacker outcome is the same
    in A and B. Change nothing: the victim's results and view are the same in A and C.
    """
    a_store, v_store = _role_store(url, attacker), _role_store(url, victim)
    try:
        # A: victim first, then every attack, then the victim's next writes
        with v_store.engine.connect() as conn:
            victim_rows = _populate(conn, victim, "1")
        with a_store.engine.connect() as conn:
            own_rows = _populate(conn, attacker, uuid.uuid4().hex[:8])
            own = {"accounts": own_rows["accounts"]["id"], "tweets": own_rows["tweets"]["id"]}
            attacks = _attacks(attacker, own, victim_rows)
            with_victim = [(name, _outcome(conn, run)) for name, run in attacks]
        workload_a = _victim_workload(v_store, victim_rows)
        with v_store.engine.connect() as conn:
            seen_a = _visible(conn)
        # B: the same statements, with the victim's rows absent
        _reset(url)
        with a_store.engine.connect() as conn:
            own_rows = _populate(conn, attacker, uuid.uuid4().hex[:8])
            own = {"accounts": own_rows["accounts"]["id"], "tweets": own_rows["tweets"]["id"]}
            without_victim = [
                (name, _outcome(conn, run)) for name, run in _attacks(attacker, own, victim_rows)
            ]
        # C: the victim alone
        _reset(url)
        with v_store.engine.connect() as conn:
            alone_rows = _populate(conn, victim, "1")
        workload_c = _victim_workload(v_store, alone_rows)
        with v_store.engine.connect() as conn:
            seen_c = _visible(conn)
    finally:
        a_store.close()
        v_store.close()
    assert len(with_victim) > 60, len(with_victim)
    learned = [(a, b) for a, b in zip(with_victim, without_victim, strict=True) if a != b]
    assert learned == [], learned
    assert workload_a == workload_c
    assert seen_a == seen_c
    # and the cross-environment statements were refused, not quietly applied elsewhere
    refused = dict(with_victim)
    assert refused["tweet_metrics: fk_tweet_metrics_tweet_id_tweets -> victim"][0] == "error"
    assert refused["tweets: fk_tweets_account_id_accounts -> victim"][0] == "error"


def test_staging_cannot_take_a_production_snapshot_slot(url: str) -> None:
    """issue 17 item 8: staging wrote a snapshot for a production tweet id, after which
    production's own snapshot of that post failed (``(tweet_id, horizon)`` ignored the
    environment and the upsert met a row it may not see)."""
    prod, stg = _role_store(url, "production"), _role_store(url, "staging")
    try:
        acc = prod.ensure_account("prod_bot")
        post = prod.enqueue_post(acc.id, "production post", scheduled_at=T0)
        stg_acc = stg.ensure_account("stg_bot")
        with (
            stg.engine.connect() as conn,
            pytest.raises(sa_exc.IntegrityError, match="fk_"),
            conn.begin(),
        ):
            conn.execute(
                text(
                    "INSERT INTO tweet_metrics (environment, tweet_id, account_id, horizon, "
                    "collected_at) VALUES ('staging', :t, :a, '1h', now())"
                ),
                {"t": post.id, "a": stg_acc.id},
            )
        snap = MetricSnapshot(tweet_id=post.id, horizon="1h", collected_at=T0, likes=5)
        assert prod.upsert_metrics([snap]) == 1
        assert [(m.horizon, m.likes) for m in prod.get_metrics(post.id)] == [("1h", 5)]
    finally:
        prod.close()
        stg.close()


def test_staging_cannot_reference_production_accounts(url: str) -> None:
    """issue 17 item 8: staging inserted posts, candidates and attempts for production
    accounts (the foreign key was checked on the id alone, without row-level security)."""
    prod, stg = _role_store(url, "production"), _role_store(url, "staging")
    try:
        acc = prod.ensure_account("prod_bot")
        with stg.engine.connect() as conn:
            for statement in (
                "INSERT INTO tweets (environment, account_id, text, content_hash, scores, "
                "scheduled_at, metadata, created_at, updated_at) VALUES ('staging', :a, 'x', "
                "'h', '{}', now(), '{}', now(), now())",
                "INSERT INTO candidates (environment, account_id, text, content_hash, "
                "guard_passed, guard_reasons, metadata, created_at) VALUES ('staging', :a, 'x', "
                "'h', true, '[]', '{}', now())",
            ):
                with pytest.raises(sa_exc.IntegrityError, match="fk_"), conn.begin():
                    conn.execute(text(statement), {"a": acc.id})
    finally:
        prod.close()
        stg.close()


def test_on_conflict_does_not_tell_staging_which_production_event_ids_exist(url: str) -> None:
    """issue 17 item 8: ``INSERT ... ON CONFLICT DO NOTHING`` on a production ``event_id``
    inserted nothing, telling staging that production had that event."""
    prod, stg = _role_store(url, "production"), _role_store(url, "staging")
    try:
        assert prod.audit("deploy", component="ops", event_id="evt-secret") is not None
        assert stg.audit("probe", component="x", event_id="evt-secret") is not None
        assert stg.audit("probe", component="x", event_id="evt-never-used") is not None
        assert prod.audit("deploy", component="ops", event_id="evt-secret") is None  # a replay
        assert prod.audit("later", component="ops", event_id="evt-next") is not None
    finally:
        prod.close()
        stg.close()


def test_ids_come_from_each_environments_own_sequence(url: str) -> None:
    """issue 17 item 8: an explicit id could take the id production's next insert would get
    (which then failed) or probe for existing ids; the shared sequence told each environment
    how much the others wrote."""
    prod, stg = _role_store(url, "production"), _role_store(url, "staging")
    try:
        first = prod.ensure_account("p1").id
        with stg.engine.connect() as conn, conn.begin():
            taken: int = conn.execute(
                text(
                    "INSERT INTO accounts (id, environment, handle, metadata, created_at, "
                    "updated_at) VALUES (:id, 'staging', 's1', '{}', now(), now()) RETURNING id"
                ),
                {"id": first + 3},
            ).scalar_one()
            assert taken != first + 3  # the id given was not used
            with pytest.raises(sa_exc.ProgrammingError, match="never changes"), conn.begin_nested():
                conn.execute(text("UPDATE accounts SET id = :id"), {"id": first})
        for n in range(5):
            stg.ensure_account(f"s{n + 2}")
        second = prod.ensure_account("p2").id
        assert second == first + 3  # staging's writes do not show in production's ids
    finally:
        prod.close()
        stg.close()


def test_migration_0003_refuses_rows_that_already_cross_environments(empty_pg_url: str) -> None:
    """issue 17 item 8: a store that already holds a cross-environment reference (written
    before the fix) stops the migration with a message saying what to fix, changing nothing."""
    from xbot_assets.store.durable.migrate import upgrade

    upgrade(empty_pg_url, "0002")
    db = empty_pg_url.rsplit("/", 1)[1]
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={db}") as conn:
        acc = conn.execute(
            "INSERT INTO accounts (environment, handle, metadata, created_at, updated_at) "
            "VALUES ('production', 'p', '{}', now(), now()) RETURNING id"
        ).fetchone()
        assert acc is not None
        conn.execute(
            "INSERT INTO tweets (environment, account_id, text, content_hash, scores, "
            "scheduled_at, metadata, created_at, updated_at) VALUES ('staging', %s, 'x', 'h', "
            "'{}', now(), '{}', now(), now())",
            (acc[0],),
        )
    with pytest.raises(RuntimeError, match=r"1 tweets row\(s\) whose account_id.*xbot migrate"):
        upgrade(empty_pg_url)
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={db}") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0002",)
