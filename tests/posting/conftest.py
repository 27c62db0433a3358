"""Fixtures of the posting tests: a migrated SQLite durable store per test, and a fake X."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from xbot_assets.posting.base import OwnPost, PosterBase, PostResult, SessionStatus
from xbot_assets.posting.ledger import PostingLedger
from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.durable.migrate import upgrade

_MIGRATED: dict[str, Path] = {}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite store (migrated once per worker, then copied: fast)."""
    import shutil

    template = _MIGRATED.get("t")
    if template is None or not template.exists():
        template = tmp_path.parent / f"template_{tmp_path.name}.db"
        upgrade(f"sqlite:///{template}")
        _MIGRATED["t"] = template
    db = tmp_path / "xbot.db"
    shutil.copy(template, db)
    return f"sqlite:///{db}"


@pytest.fixture
def ledger(sqlite_url: str) -> Iterator[PostingLedger]:
    engine = make_engine(sqlite_url)
    yield PostingLedger(engine, "local")
    engine.dispose()


class Clock:
    """A settable clock for protocol tests."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


class FakeX(PosterBase):
    """An in-memory X account for protocol tests: posts, a timeline, and scripted faults.

    ``faults`` is a list of exceptions (or None for success) consumed one per post() call; an
    exception whose ``may_have_posted`` is True is raised AFTER the post was stored (the way a
    timeout after sending behaves on X).
    """

    kind = "api"

    def __init__(self) -> None:
        self.posts: list[OwnPost] = []
        self.faults: list[BaseException | None] = []
        self.post_calls = 0
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()

    @property
    def targets_loopback(self) -> bool:
        return True

    def post(self, text: str, *, reply_to: str | None = None) -> PostResult:
        with self._lock:
            self.post_calls += 1
            fault = self.faults.pop(0) if self.faults else None
            if fault is not None and not getattr(fault, "may_have_posted", False):
                raise fault
            own = OwnPost(x_id=str(next(self._ids)), text=text, in_reply_to=reply_to)
            self.posts.insert(0, own)
            if fault is not None:
                raise fault
            return PostResult(x_id=own.x_id, text=text)

    def recent_own_posts(self, *, limit: int = 100) -> list[OwnPost]:
        return list(self.posts[:limit])

    def check_session(self) -> SessionStatus:
        return SessionStatus(ok=True)

    def close(self) -> None:
        pass


@pytest.fixture
def fake_x() -> FakeX:
    return FakeX()


# --- the sandbox X over HTTP ----------------------------------------------------------------
@pytest.fixture
def sandbox():
    from xbot_assets.sandbox.platform import SandboxX

    return SandboxX(scenario="default", seed=11)


@pytest.fixture
def sandbox_url(sandbox):
    from xbot_assets.sandbox.server import running_server

    with running_server(sandbox) as url:
        yield url


def api_settings(sandbox, base_url: str, database_url: str, **overrides):
    """Settings for the api poster against the sandbox's HTTP API, with open rate caps."""
    from xbot_assets.config import load_settings
    from xbot_assets.sandbox.platform import APP_BEARER_TOKEN

    account = sandbox.account()
    values = dict(
        poster="api",
        x_api_base_url=base_url,
        x_web_base_url=base_url,
        x_oauth2_user_token=account.user_token,
        x_bearer_token=APP_BEARER_TOKEN,
        x_handle=account.handle,
        database_url=database_url,
        max_posts_per_hour=100,
        max_posts_per_day=1000,
        min_spacing_minutes=0,
        max_replies_per_hour=100,
    )
    values.update(overrides)
    return load_settings(env_file=None, **values)


# --- Postgres --------------------------------------------------------------------------------
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"


def _pg_admin():
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )


@pytest.fixture(scope="session")
def pg_posting_db():
    """A migrated Postgres database of this worker's own, dropped at the end."""
    import uuid

    name = f"xbot_test_posting_{uuid.uuid4().hex[:8]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(f"postgresql://postgres@127.0.0.1:5432/{name}")
        yield name
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_posting_db):
    """The worker's Postgres database, emptied for this test."""
    import psycopg

    from xbot_assets.store.durable.schema import metadata

    with psycopg.connect(
        f"host=127.0.0.1 port=5432 user=postgres dbname={pg_posting_db}", autocommit=True
    ) as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(f"DELETE FROM {table.name}")
    return f"postgresql://postgres@127.0.0.1:5432/{pg_posting_db}"
