"""Row-level security on Postgres: environments are kept apart by the database itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.store.conftest import pg_admin
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.schema import ENVIRONMENTS

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
INSERT_TWEET = text(
    "INSERT INTO tweets (environment, account_id, text, content_hash, status, scores, "
    "scheduled_at, metadata, created_at, updated_at) VALUES "
    "(:env, :acc, 'sneaky', :hash, 'queued', '{}', now(), '{}', now(), now())"
)


def _owner(url: str) -> psycopg.Connection:
    db = make_url(url).database
    return psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={db}", autocommit=True)


@pytest.fixture
def production_rows(pg_url: str) -> Iterator[dict[str, int]]:
    prod = DurableStore.from_url(pg_url, environment="production")
    try:
        acc = prod.ensure_account("prod_bot")
        post = prod.enqueue_post(acc.id, "production post", scheduled_at=T0)
        prod.set_config("learning.policy", {"kind": "thompson"}, actor="ops")
        yield {"account": acc.id, "post": post.id}
    finally:
        prod.close()


def _assert_production_untouched(pg_url: str, ids: dict[str, int]) -> None:
    with _owner(pg_url) as conn:
        rows = conn.execute("SELECT environment, text, status FROM tweets ORDER BY id").fetchall()
        assert rows == [("production", "production post", "queued")]
        assert conn.execute("SELECT value FROM bot_config").fetchall() == [({"kind": "thompson"},)]


def _attack(conn: object, ids: dict[str, int]) -> None:
    """Everything a staging connection might try against production rows."""
    from sqlalchemy import Connection
    from sqlalchemy import exc as sa_exc

    assert isinstance(conn, Connection)
    with conn.begin():
        for table in ("tweets", "accounts", "bot_config", "audit_log"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
        only_prod = text("SELECT count(*) FROM tweets WHERE environment = 'production'")
        assert conn.execute(only_prod).scalar_one() == 0
    with conn.begin():
        hit = conn.execute(
            text("UPDATE tweets SET text = 'defaced', environment = 'staging' WHERE id = :id"),
            {"id": ids["post"]},
        )
        assert hit.rowcount == 0
        hit = conn.execute(text("UPDATE bot_config SET value = '{}'"))
        assert hit.rowcount == 0
    with pytest.raises(sa_exc.ProgrammingError, match="row-level security"), conn.begin():
        conn.execute(
            INSERT_TWEET, {"env": "production", "acc": ids["account"], "hash": uuid.uuid4().hex}
        )
    with pytest.raises(sa_exc.ProgrammingError, match="row-level security"), conn.begin():
        conn.execute(
            text(
                "INSERT INTO bot_config (environment, key, value, updated_by, updated_at) "
                "VALUES ('production', 'brake', 'true', 'attacker', now())"
            )
        )
    with pytest.raises(sa_exc.ProgrammingError, match="permission denied"), conn.begin():
        conn.execute(text("DELETE FROM tweets"))


def test_staging_role_can_neither_read_nor_write_production_rows(
    pg_url: str, production_rows: dict[str, int]
) -> None:
    staging = DurableStore.from_url(pg_url, environment="staging")
    try:
        with staging.engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == "xbot_staging"
            conn.rollback()
            _attack(conn, production_rows)
    finally:
        staging.close()
    _assert_production_untouched(pg_url, production_rows)


def test_a_login_member_of_the_staging_role_is_held_by_the_same_policies(
    pg_url: str, production_rows: dict[str, int]
) -> None:
    """How a deployment logs in: a LOGIN user that is a member of ``xbot_staging``."""
    login = f"xbot_test_login_{uuid.uuid4().hex[:8]}"
    with pg_admin() as admin:
        admin.execute(f"CREATE ROLE {login} LOGIN IN ROLE xbot_staging")
    try:
        url = make_url(pg_url).set(username=login).render_as_string(hide_password=False)
        # db_role=None: no SET ROLE, the policies must hold through membership alone.
        member = DurableStore.from_url(url, environment="staging", db_role=None)
        try:
            with member.engine.connect() as conn:
                assert conn.execute(text("SELECT current_user")).scalar_one() == login
                conn.rollback()
                _attack(conn, production_rows)
            acc = member.ensure_account("staging_bot")  # its own environment works
            assert member.enqueue_post(acc.id, "staging post").environment == "staging"
        finally:
            member.close()
    finally:
        with pg_admin() as admin:
            admin.execute(f"DROP ROLE IF EXISTS {login}")
    with _owner(pg_url) as conn:
        envs = conn.execute("SELECT environment FROM tweets ORDER BY created_at").fetchall()
    assert envs == [("production",), ("staging",)]


def test_every_environment_table_has_forced_rls_and_a_policy_per_role(pg_url: str) -> None:
    with _owner(pg_url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT table_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND column_name = 'environment' ORDER BY 1"
            )
        ]
        assert len(tables) >= 9, tables
        problems = []
        for table in tables:
            enabled, forced = conn.execute(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass",
                (f"public.{table}",),
            ).fetchone() or (False, False)
            if not (enabled and forced):
                problems.append(f"{table}: RLS enabled={enabled} forced={forced}")
            roles = {
                r[0]
                for r in conn.execute(
                    "SELECT unnest(roles)::text FROM pg_policies "
                    "WHERE schemaname = 'public' AND tablename = %s",
                    (table,),
                )
            }
            missing = {f"xbot_{e}" for e in ENVIRONMENTS} - roles
            if missing:
                problems.append(f"{table}: no policy for {sorted(missing)}")
        assert not problems, problems


def test_the_bot_role_is_neither_owner_nor_superuser_nor_bypassrls(pg_url: str) -> None:
    for env in ENVIRONMENTS:
        store = DurableStore.from_url(pg_url, environment=env)
        try:
            with store.engine.connect() as conn:
                user, superuser, bypass = conn.execute(
                    text(
                        "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles "
                        "WHERE rolname = current_user"
                    )
                ).one()
                owned: int = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                        "AND tableowner = current_user"
                    )
                ).scalar_one()
            assert (user, superuser, bypass, owned) == (f"xbot_{env}", False, False, 0)
        finally:
            store.close()


def test_json_columns_are_jsonb_with_gin_indexes_on_postgres(pg_url: str) -> None:
    with _owner(pg_url) as conn:
        kinds = {
            (r[0], r[1]): r[2]
            for r in conn.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' AND column_name IN "
                "('metadata', 'scores', 'value', 'data', 'metrics', 'guard_reasons')"
            )
        }
        gin = {
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
                "AND indexdef ILIKE '%USING gin%'"
            )
        }
    assert len(kinds) >= 9 and set(kinds.values()) == {"jsonb"}, kinds
    assert {"ix_tweets_metadata_gin", "ix_audit_log_data_gin"} <= gin
