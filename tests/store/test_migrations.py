"""Migrations and the start-up guard, on both engines, through the API and the `xbot` command."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.durable.errors import SchemaAheadError, SchemaBehindError
from xbot_assets.store.durable.guard import require_current_schema, require_current_schema_at
from xbot_assets.store.durable.migrate import head_revision, known_revisions, schema_status, upgrade
from xbot_assets.store.durable.schema import metadata

XBOT = str(Path(sys.executable).with_name("xbot"))
POSTGRES_ONLY_INDEXES = {
    "ix_tweets_metadata_gin",
    "ix_audit_log_data_gin",
    "ix_candidates_guard_reasons_gin",
}


def _run_xbot(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `xbot` in a clean folder (no .env) with only the given settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("APP_ENV", "DATABASE_"))}
    base.update({"XBOT_HOME": str(tmp_path / "home"), **env})
    return subprocess.run(
        [XBOT, *args], cwd=tmp_path, env=base, capture_output=True, text=True, timeout=120
    )


def _one_behind(url: str) -> None:
    revisions = known_revisions()
    assert len(revisions) >= 2
    upgrade(url, revisions[-2])


def test_migrate_is_idempotent_and_reaches_head(tmp_path: Path, empty_pg_url: str) -> None:
    for url in (f"sqlite:///{tmp_path}/new/dir/xbot.db", empty_pg_url):
        first = upgrade(url)
        second = upgrade(url)
        assert first.is_current and second.is_current and second.current == head_revision()
        assert require_current_schema_at(url).current == head_revision()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrated_database_matches_the_schema_module(backend: str, store_url: str) -> None:
    """schema.py (what the code queries) and the migrations (what creates tables) agree."""
    engine = make_engine(store_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, metadata)
            names = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    relevant = [
        d for d in diff if not (d[0] == "remove_index" and d[1].name in POSTGRES_ONLY_INDEXES)
    ]
    assert relevant == [], relevant
    assert {t.name for t in metadata.sorted_tables} <= names


def test_guard_names_the_fix_for_empty_behind_and_ahead_stores(tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path}/empty/xbot.db"
    with pytest.raises(SchemaBehindError, match="xbot migrate"):
        require_current_schema_at(empty)
    behind = f"sqlite:///{tmp_path}/behind/xbot.db"
    _one_behind(behind)
    with pytest.raises(SchemaBehindError, match=r"1 migration\(s\) behind.*xbot migrate"):
        DurableStore.from_url(behind)
    ahead_path = tmp_path / "ahead" / "xbot.db"
    upgrade(f"sqlite:///{ahead_path}")
    with sqlite3.connect(ahead_path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    with pytest.raises(SchemaAheadError, match="upgrade xbot"):
        DurableStore.from_url(f"sqlite:///{ahead_path}")
    from xbot_assets.config import load_settings

    settings = load_settings(env_file=None, xbot_home=tmp_path / "fresh_home")
    with pytest.raises(SchemaBehindError, match="xbot migrate"):
        require_current_schema(settings)
    assert (tmp_path / "fresh_home").is_dir()  # the default SQLite folder is created


def test_guard_on_postgres_one_migration_behind(empty_pg_url: str) -> None:
    _one_behind(empty_pg_url)
    with pytest.raises(SchemaBehindError, match="xbot migrate"):
        DurableStore.from_url(empty_pg_url, environment="staging")
    upgrade(empty_pg_url)
    DurableStore.from_url(empty_pg_url, environment="staging").close()


def test_xbot_exits_2_on_a_store_one_migration_behind_before_doing_anything(
    tmp_path: Path,
) -> None:
    db = tmp_path / "store" / "xbot.db"
    url = f"sqlite:///{db}"
    _one_behind(url)
    before = db.read_bytes()
    checked = _run_xbot(["migrate", "--check"], tmp_path, DATABASE_URL=url)
    assert checked.returncode == 2, checked
    assert "xbot migrate" in checked.stderr and "behind" in checked.stderr
    assert checked.stdout == ""
    assert db.read_bytes() == before  # nothing ran against it
    # Any guarded command stops the same way, before it reads or starts anything else.
    status = _run_xbot(["status"], tmp_path, DATABASE_URL=url)
    assert status.returncode == 2 and "xbot migrate" in status.stderr, status
    assert status.stdout == "" and db.read_bytes() == before
    migrated = _run_xbot(["migrate"], tmp_path, DATABASE_URL=url)
    assert migrated.returncode == 0, migrated.stderr
    assert f"-> {head_revision()}" in migrated.stdout
    require_current_schema_at(url)


def test_xbot_exits_2_on_postgres_one_migration_behind(tmp_path: Path, empty_pg_url: str) -> None:
    _one_behind(empty_pg_url)
    shape = text(
        "SELECT (SELECT count(*) FROM pg_policies), (SELECT count(*) FROM pg_constraint c "
        "JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public'), "
        "(SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal)"
    )
    engine = make_engine(empty_pg_url)
    try:
        with engine.connect() as conn:
            before = conn.execute(shape).one()
        staging = _run_xbot(
            ["migrate", "--check"], tmp_path, APP_ENV="staging", DATABASE_URL=empty_pg_url
        )
        assert staging.returncode == 2 and "xbot migrate" in staging.stderr, staging
        assert schema_status(engine).behind_by == 1  # the check changed nothing
        with engine.connect() as conn:
            assert conn.execute(shape).one() == before
    finally:
        engine.dispose()


def test_xbot_migrate_refuses_a_store_from_a_newer_xbot(tmp_path: Path) -> None:
    db = tmp_path / "xbot.db"
    upgrade(f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    result = _run_xbot(["migrate"], tmp_path, DATABASE_URL=f"sqlite:///{db}")
    assert result.returncode == 2 and "upgrade xbot" in result.stderr, result


def test_new_revision_autogenerates_an_empty_script_when_schema_and_migrations_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from xbot_assets.store.durable import migrate

    copy = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", copy)
    migrate._script.cache_clear()
    try:
        head = migrate.head_revision()
        path = migrate.new_revision("nothing changed", f"sqlite:///{tmp_path}/scratch.db")
        body = path.read_text()
        assert path.parent == copy / "versions"
        assert path.name.startswith(f"{int(head[:4]) + 1:04d}_")
        assert (
            f"down_revision: str | None = '{head}'" in body
            or f'down_revision: str | None = "{head}"' in body
        )
        upgrade_body = body.split("def upgrade() -> None:")[1].split("def downgrade")[0]
        assert "op." not in upgrade_body  # no differences to migrate
    finally:
        migrate._script.cache_clear()


def _fill(url: str, environment: str) -> dict[str, int]:
    """One row or more in every table, through the store; returns each table's row count."""
    from datetime import UTC, date, datetime

    from xbot_assets.console.auth import issue_token
    from xbot_assets.store.durable.models import CandidateInput, MetricSnapshot

    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    store = DurableStore.from_url(url, environment=environment)
    try:
        acc = store.ensure_account("round_trip")
        tag = uuid.uuid4().hex[:8]
        post = store.enqueue_post(acc.id, f"a post {tag}", scheduled_at=t0)
        store.enqueue_thread(acc.id, [f"first part {tag}", "second part"], scheduled_at=t0)
        store.claim_post(post.id, worker="w", now=t0)
        store.upsert_metrics([MetricSnapshot(tweet_id=post.id, horizon="1h", collected_at=t0)])
        store.record_candidates(acc.id, [CandidateInput(text="idea", guard_passed=True)])
        store.audit("deploy", component="ops", event_id=f"evt-{uuid.uuid4().hex}")
        store.set_config("k", {"v": 1}, actor="test")
        store.upsert_daily_summary(date(2026, 3, 1), "daily", {"n": 1})
        store.record_health("poster", "ok")
        issue_token(store.engine, environment, label="round trip", created_by="test", now=t0)
    finally:
        store.close()
    return _counts(url)


def _counts(url: str) -> dict[str, int]:
    """Rows per table that exists at the store's revision (later tables are left out)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
            return {
                t.name: conn.execute(text(f"SELECT count(*) FROM {t.name}")).scalar_one()
                for t in metadata.sorted_tables
                if t.name in present
            }
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_upgrade_downgrade_upgrade_keeps_the_data(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """issue 17 item 8: migration 0003 (environment in every key) goes down and up again on
    a store holding rows in every table, losing none, and the store works after each step."""
    from xbot_assets.store.durable.migrate import downgrade

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/round/xbot.db"
    else:
        url = str(request.getfixturevalue("empty_pg_url"))
    upgrade(url)
    envs = ["local"] if backend == "sqlite" else ["staging", "production"]
    for env in envs:
        counts = _fill(url, env)
    assert all(counts[t.name] > 0 for t in metadata.sorted_tables), counts
    assert downgrade(url, "0002").current == "0002"
    assert _counts(url) == {k: n for k, n in counts.items() if k != "console_tokens"}
    engine = make_engine(url)
    try:
        with engine.begin() as conn:  # 0002's shape: ids from the table's default again
            new_id: int = conn.execute(
                text(
                    "INSERT INTO accounts (environment, handle, metadata, created_at, updated_at) "
                    "VALUES ('local', 'after_downgrade', '{}', :t, :t) RETURNING id"
                ),
                {"t": "2026-03-01 12:00:00+00:00"},
            ).scalar_one()
            top: int = conn.execute(text("SELECT max(id) FROM accounts")).scalar_one()
            assert new_id == top
    finally:
        engine.dispose()
    assert upgrade(url).is_current
    assert _counts(url)["accounts"] == counts["accounts"] + 1
    for env in envs:
        again = _fill(url, env)
    assert again["tweets"] == counts["tweets"] + 3 * len(envs)  # a post and a 2-part thread
    assert again["tweet_metrics"] == counts["tweet_metrics"] + len(envs)
