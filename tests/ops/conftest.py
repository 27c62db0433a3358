"""Fixtures of the operations tests: a migrated store of their own, a throwaway Redis server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, insert

from xbot_assets.config import Settings, load_settings
from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.durable.migrate import upgrade
from xbot_assets.store.durable.schema import accounts

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ThrowawayRedis:
    """A redis-server of this test's own: stop it to test the outage, never the shared one."""

    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    if not os.path.exists(REDIS_SERVER):
        pytest.fail("redis-server is not installed: apt-get install -y redis-server")
    port = free_port()
    workdir = tmp_path / "redis"
    workdir.mkdir()
    proc = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = ThrowawayRedis(port, proc)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                server.stop()
                pytest.fail(f"throwaway redis-server on port {port} did not start")
            time.sleep(0.02)
    client.close()
    yield server
    server.stop()


@dataclass
class Store:
    settings: Settings
    engine: Engine
    url: str
    account_id: int


def make_settings(home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"app_env": "local", "xbot_home": home, "redis_url": None}
    values.update(overrides)
    return load_settings(env_file=None, **values)


def add_account(engine: Engine, environment: str = "local", handle: str = "xbot_sandbox") -> int:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        result = conn.execute(
            insert(accounts).values(
                environment=environment,
                handle=handle,
                timezone="UTC",
                active=True,
                metadata={},
                created_at=now,
                updated_at=now,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A SQLite store migrated to head, with one account."""
    home = tmp_path / "home"
    settings = make_settings(home)
    url = settings.resolved_database_url
    upgrade(url)
    engine = make_engine(url)
    account_id = add_account(engine)
    yield Store(settings, engine, url, account_id)
    engine.dispose()


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh Postgres database of this test's own (dropped afterwards)."""
    name = f"xbot_test_ops_{uuid.uuid4().hex[:8]}"
    admin = make_engine("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is needed for this test: {exc}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
