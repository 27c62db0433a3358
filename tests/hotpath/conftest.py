"""Fixtures of the hot-path tests: the machine's real Redis and Postgres, each test on its own
key prefix or database, cleaned up afterwards. A missing service fails with a clear message."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import redis

from xbot_assets.store.hot.keys import KeySpace, connect_redis, scan_delete

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


class FakeClock:
    """A settable clock: the bot runs on simulated time, so the tests do too."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = connect_redis(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not reachable at 127.0.0.1:6379 ({type(exc).__name__}): start it with "
            "`redis-server --daemonize yes --port 6379 --save '' --appendonly no`"
        )
    yield client
    client.close()


@pytest.fixture
def keys(redis_client: redis.Redis) -> Iterator[KeySpace]:
    space = KeySpace(f"test:{uuid.uuid4().hex[:8]}:")
    yield space
    scan_delete(redis_client, space)


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"Postgres is not reachable at 127.0.0.1:5432 ({type(exc).__name__}): start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database migrated to head once per test process, copied by each test (fast)."""
    from xbot_assets.store.durable.migrate import upgrade

    name = f"xbot_test_hotpath_tpl_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    upgrade(f"postgresql://postgres@127.0.0.1:5432/{name}")
    yield name
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh database on the machine's Postgres, at the migrations' head, dropped afterwards."""
    name = f"xbot_test_hotpath_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
