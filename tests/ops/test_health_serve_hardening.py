"""`xbot health serve` on a store at the wrong schema (issue 17 item 12), and the health server
under header and connection fuzz (issue 17 "Also"). Everything binds 127.0.0.1 on a free port."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.ops.conftest import Store
from xbot_assets.health.checks import HealthContext
from xbot_assets.health.server import HealthServer
from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.durable.migrate import upgrade

XBOT = [sys.executable, "-m", "xbot_assets.cli"]


def _serve(tmp_path: Path, database_url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("DATABASE_", "REDIS_"))}
    env.update(XBOT_HOME=str(tmp_path / "home"), APP_ENV="local", DATABASE_URL=database_url)
    return subprocess.Popen(
        [*XBOT, "health", "serve", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("revision", "needle"), [("0001", "run `xbot migrate`"), ("9999", "upgrade xbot")]
)
def test_health_serve_starts_on_a_wrong_schema_and_readyz_says_why(
    tmp_path: Path, pg_database: str, revision: str, needle: str
) -> None:
    """Issue 17 item 12: `xbot health serve` started silently on a store whose schema is behind
    or ahead, while every other command exits 2. It must start (so probes can report it), say
    so on stderr, and /readyz must answer 503 with the reason."""
    upgrade(pg_database, "0001")
    if revision != "0001":
        engine = make_engine(pg_database)
        with engine.begin() as conn:
            conn.execute(text("update alembic_version set version_num = :v"), {"v": revision})
        engine.dispose()
    proc = _serve(tmp_path, pg_database)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()  # "xbot health server on http://127.0.0.1:PORT (...)"
        assert "http://127.0.0.1:" in line, (line, proc.poll())
        url = line.split(" on ", 1)[1].split()[0]
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/healthz").status_code == 200
            ready = client.get("/readyz")
        assert ready.status_code == 503
        store = next(c for c in ready.json()["checks"] if c["name"] == "durable_store")
        assert store["status"] == "down" and needle in store["detail"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "warning:" in err and needle in err and "/readyz answers 503" in err, err


# --- fuzz: /metrics and /readyz stay fast whatever arrives on the socket ------------------------


@pytest.fixture
def live_server(store: Store) -> Iterator[HealthServer]:
    ctx = HealthContext(store.settings, engine=store.engine)
    server = HealthServer(ctx, host="127.0.0.1", port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _timed_get(url: str, path: str) -> tuple[int, float]:
    started = time.perf_counter()
    with httpx.Client(timeout=10) as client:
        status = client.get(url + path).status_code
    return status, time.perf_counter() - started


def _raw(port: int, payload: bytes, *, read: bool = True) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    with contextlib.suppress(OSError):  # the server may close on garbage before all is sent
        sock.sendall(payload)
    if read:
        with contextlib.suppress(OSError):
            sock.recv(4096)
    return sock


def test_metrics_and_readyz_stay_fast_under_header_and_connection_fuzz(
    live_server: HealthServer,
) -> None:
    """Issue 17 "Also": the review fuzzed headers and connections (huge and many headers,
    slowloris-style partial requests, garbage bytes). /metrics and /readyz kept answering fast;
    this keeps it so. Bounded loops, 127.0.0.1 only."""
    url = live_server.url.rstrip("/")
    port = int(url.rsplit(":", 1)[1])
    before = {p: _timed_get(url, p) for p in ("/metrics", "/readyz")}
    baseline = max(elapsed for _, elapsed in before.values())
    rng = random.Random(17)
    held: list[socket.socket] = []
    try:
        # slowloris: 40 connections that send a partial request and then stay silent
        for _ in range(40):
            held.append(_raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-a: ", read=False))
        payloads = [
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
            b"GET /readyz HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(5_000))
            + b"\r\n",
            b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"\x00\xff\xfe" * 1000 + b"\r\n\r\n",
            b"GET /metrics HTTP/9.9\r\n\r\n",
            b"POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nabc",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ]
        payloads += [
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096))) for _ in range(30)
        ]
        for payload in payloads:
            _raw(port, payload).close()
        for _ in range(3):
            for path in ("/metrics", "/readyz"):
                status, elapsed = _timed_get(url, path)
                assert status == before[path][0], path
                assert elapsed < max(2.0, 10 * baseline), (path, elapsed, baseline)
    finally:
        for sock in held:
            sock.close()
    assert _timed_get(url, "/healthz")[0] == 200
