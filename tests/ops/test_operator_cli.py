"""The operator's `xbot` sub-commands as a user meets them, with their exit codes.

Each sub-command has its happy path and its error path here: migrate, status, post --dry-run,
health serve, sandbox serve (and brake / reconcile at the end of the file). Every error path and
both servers run as real subprocesses; happy paths that need many calls run the same typer app
in process (one interpreter start instead of ten: this machine has 2 cores).
"""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.foundation.conftest import settings_env_names, subprocess_env
from xbot_assets.cli import app
from xbot_assets.ops.audit import recent_audit
from xbot_assets.posting.ledger import PostingLedger
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.durable.migrate import upgrade
from xbot_assets.store.hot.brake import EmergencyBrake
from xbot_assets.store.hot.keys import KeySpace

XBOT = [sys.executable, "-m", "xbot_assets.cli"]


def xbot(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*XBOT, *args],
        cwd=tmp_path,
        env=subprocess_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def inproc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Ran]:
    """Run `xbot ARGS` in this process, with the environment a subprocess would get."""
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XBOT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str, **env: str) -> Ran:
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        return Ran(result.exit_code, result.stdout, result.stderr)

    return run


def one_line_error(proc: subprocess.CompletedProcess[str] | Ran, needle: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("xbot: ") and needle in lines[0], lines[0]


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'home' / 'xbot.db'}"


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    upgrade(db_url(tmp_path))
    return tmp_path


def queue_post(tmp_path: Path, text: str, *, arm: str = "how_to:python") -> tuple[int, int]:
    engine = make_engine(db_url(tmp_path))
    try:
        ledger = PostingLedger(engine, "local")
        account_id = DurableStore(engine, "local").ensure_account("xbot_sandbox").id
        now = datetime.now(UTC)
        ids = ledger.enqueue(account_id, [text], scheduled_at=now - timedelta(minutes=1), arm=arm)
        return account_id, ids[0]
    finally:
        engine.dispose()


def engage_brake(tmp_path: Path, reason: str) -> None:
    engine = make_engine(db_url(tmp_path))
    try:
        EmergencyBrake(engine, "local", None, KeySpace("local:")).engage(reason, actor="test")
    finally:
        engine.dispose()


# --- migrate -------------------------------------------------------------------------------------


def test_migrate_creates_then_checks_the_schema(tmp_path: Path, inproc: Callable[..., Ran]) -> None:
    one_line_error(inproc("migrate", "--check"), "xbot migrate")
    proc = xbot(tmp_path, "migrate")
    assert proc.returncode == 0, proc.stderr
    assert "-> " in proc.stdout
    assert inproc("migrate", "--check").returncode == 0
    assert inproc("migrate").returncode == 0  # idempotent


def test_migrate_error_paths(tmp_path: Path, inproc: Callable[..., Ran]) -> None:
    one_line_error(xbot(tmp_path, "migrate", "--revision", "nope"), "unknown revision")
    bad = inproc("migrate", DATABASE_URL="mysql://u:pw-secret@127.0.0.1/x")
    one_line_error(bad, "DATABASE_URL")
    assert "pw-secret" not in bad.stdout + bad.stderr


# --- status --------------------------------------------------------------------------------------


def test_status_on_an_unmigrated_store_exits_2(tmp_path: Path, inproc: Callable[..., Ran]) -> None:
    one_line_error(xbot(tmp_path, "status"), "xbot migrate")
    one_line_error(inproc("status", "--json", APP_ENV="production"), "DATABASE_URL")


def test_status_shows_queue_caps_and_health(migrated: Path, inproc: Callable[..., Ran]) -> None:
    _account, post_id = queue_post(migrated, "How to keep pytest fixtures small and fast")
    proc = inproc("status", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["environment"] == "local"
    assert data["posts_by_status"] == {"queued": 1}
    assert data["next_posts"][0]["id"] == post_id
    assert data["next_posts"][0]["arm"] == "how_to:python"
    assert data["caps"]["xbot_sandbox"]["left_today"] == 12
    assert data["ai_spend_today"]["budget_usd"] == 7.5
    assert data["learned"]["best_slots_local_hours"] == []
    assert data["health"]["ready"] is True
    assert "pytest fixtures" not in proc.stdout  # ids and arms, never the text
    engine = make_engine(db_url(migrated))
    DurableStore(engine, "local").set_config(
        "learned", {"best_slots": [9, 18], "best_topics": ["python"]}, actor="learning_engine"
    )
    DurableStore(engine, "local").record_health("job:post_job", "down", message="run 42 failed")
    engine.dispose()
    text = inproc("status")
    assert text.returncode == 0 and "next posts" in text.stdout and f"#{post_id}" in text.stdout
    assert "09:00, 18:00" in text.stdout
    assert "job:post_job" in text.stdout and "run 42 failed" in text.stdout


def test_status_exits_1_when_not_ready(migrated: Path, inproc: Callable[..., Ran]) -> None:
    engage_brake(migrated, "incident 42")
    proc = inproc("status", "--json")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    brake = next(c for c in data["health"]["checks"] if c["name"] == "brake")
    assert brake["status"] == "down" and "incident 42" in brake["detail"]


# --- post --dry-run ------------------------------------------------------------------------------


def test_post_posts_the_next_due_post_through_the_protocol(
    migrated: Path, inproc: Callable[..., Ran]
) -> None:
    _account, post_id = queue_post(migrated, "How to use pytest fixtures in Python")
    set_quiet_hours(migrated, start=0, end=0)  # no quiet hours: the test may run at any hour
    proc = inproc("post", "--json")
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout)
    assert done["status"] == "posted" and str(post_id) in done["detail"]
    assert done["clock"] == "sandbox (simulated)"
    status = json.loads(inproc("status", "--json").stdout)
    assert status["posts_by_status"] == {"posted": 1}
    # Nothing left: it says so and exits 0.
    again = inproc("post")
    assert again.returncode == 0 and "nothing_queued" in again.stdout
    help_text = inproc("post", "--help").stdout
    assert "schedule" not in help_text.lower(), "no such schedule: posting_sensor posts"
    one_line_error(inproc("post", "--account", "nobody"), "nobody")


def set_quiet_hours(tmp_path: Path, *, start: int, end: int) -> None:
    engine = make_engine(db_url(tmp_path))
    try:
        DurableStore(engine, "local").set_config(
            "schedule",
            {"quiet_start_hour": start, "quiet_end_hour": end},
            actor="test",
            reason="test",
            now=datetime.now(UTC),
        )
    finally:
        engine.dispose()


def test_post_dry_run_error_paths(tmp_path: Path, inproc: Callable[..., Ran]) -> None:
    one_line_error(inproc("post", "--dry-run"), "xbot migrate")
    upgrade(db_url(tmp_path))
    one_line_error(inproc("post", "--dry-run", "--account", "nobody"), "nobody")


def test_post_dry_run_shows_the_next_post_and_sends_nothing(
    migrated: Path, inproc: Callable[..., Ran]
) -> None:
    _account, post_id = queue_post(migrated, "How to use pytest fixtures in Python")
    proc = inproc("post", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)["accounts"][0]
    assert plan["post"]["id"] == post_id and plan["post"]["arm"] == "how_to:python"
    assert plan["guard"]["ok"] is True and plan["gate"]["open"] is True
    assert plan["would_post"] is True
    # nothing was claimed: the post is still queued
    status = json.loads(inproc("status", "--json").stdout)
    assert status["posts_by_status"] == {"queued": 1}
    # the gate and the guard are shown when they say no
    engage_brake(migrated, "storm")
    blocked = json.loads(inproc("post", "--dry-run", "--json").stdout)["accounts"][0]
    assert blocked["would_post"] is False and "storm" in blocked["gate"]["blocked_by"]
    text = inproc("post", "--dry-run")
    assert text.returncode == 0 and "gate: BLOCKED" in text.stdout


def test_post_dry_run_reports_a_guard_rejection(migrated: Path, inproc: Callable[..., Ran]) -> None:
    queue_post(migrated, "How to reach me: mail jane.doe@example.com or call 555-123-4567")
    plan = json.loads(inproc("post", "--dry-run", "--json").stdout)["accounts"][0]
    assert plan["guard"]["ok"] is False
    assert "pii_email" in plan["guard"]["reasons"]
    assert plan["would_post"] is False and "safety guard" in plan["why_not"]


# --- health serve --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_line(proc: subprocess.Popen[str], timeout_s: float = 30) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    assert ready, "the server printed nothing"
    return proc.stdout.readline()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_health_serve_answers_and_stops_on_sigterm(
    migrated: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    proc = subprocess.Popen(
        [*XBOT, "health", "serve", "--port", "0"],
        cwd=migrated,
        env=subprocess_env(migrated),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    spawn.append(proc)
    line = read_line(proc)
    assert "http://127.0.0.1:" in line, line
    url = line.split()[4]
    assert httpx.get(url + "/healthz", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(url + "/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"  # no post yet
    assert "xbot_posts_total" in httpx.get(url + "/metrics", timeout=10).text
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells it
    assert proc.wait(15) in (0, -signal.SIGTERM)


def test_health_serve_error_paths(tmp_path: Path, inproc: Callable[..., Ran]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        busy_port = xbot(tmp_path, "health", "serve", "--port", str(port))
        # The store has no schema yet: serve warns (and would serve, /readyz 503) before the
        # port is refused; the error itself is one line.
        assert busy_port.returncode == 2, busy_port.stderr
        errors = [x for x in busy_port.stderr.splitlines() if x.startswith("xbot: cannot")]
        assert len(errors) == 1 and "--port" in errors[0], busy_port.stderr
    mysql = inproc("health", "serve", DATABASE_URL="mysql://u:s3cr3tpw@127.0.0.1/x")
    assert mysql.returncode == 2, mysql.stderr
    errors = [x for x in mysql.stderr.splitlines() if x.startswith("xbot: unsupported")]
    assert len(errors) == 1 and "DATABASE_URL" in errors[0], mysql.stderr
    assert "s3cr3tpw" not in mysql.stderr
    bad = inproc("health", "serve", "--port", "70000")
    assert bad.returncode == 2 and "65535" in bad.stderr


# --- sandbox serve -------------------------------------------------------------------------------


def test_sandbox_serve_answers(tmp_path: Path, spawn: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*XBOT, "sandbox", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    spawn.append(proc)
    assert f"http://127.0.0.1:{port}" in read_line(proc)
    deadline = time.monotonic() + 30
    while True:
        try:
            resp = httpx.get(f"http://127.0.0.1:{port}/__sandbox/state", timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the sandbox did not start listening"
            time.sleep(0.1)
    assert resp.status_code == 200
    proc.send_signal(signal.SIGINT)
    proc.wait(15)


def test_sandbox_serve_rejects_an_unknown_scenario(inproc: Callable[..., Ran]) -> None:
    one_line_error(inproc("sandbox", "serve", "--scenario", "no_such_world"), "no_such")


# --- reconcile -----------------------------------------------------------------------------------


def test_reconcile_error_paths(tmp_path: Path, inproc: Callable[..., Ran]) -> None:
    # a store behind its schema stops the command before any poster starts
    one_line_error(xbot(tmp_path, "reconcile", POSTER="api"), "xbot migrate")
    # the in-process sandbox poster cannot be reconciled from another process
    upgrade(db_url(tmp_path))
    one_line_error(inproc("reconcile"), "POSTER=api")


def test_reconcile_against_the_sandbox_api(migrated: Path, inproc: Callable[..., Ran]) -> None:
    from xbot_assets.sandbox.platform import APP_BEARER_TOKEN, SandboxX
    from xbot_assets.sandbox.server import running_server

    sandbox = SandboxX(scenario="default", seed=5)
    account = sandbox.account()
    with running_server(sandbox) as url:
        proc = inproc(
            "reconcile",
            "--json",
            POSTER="api",
            X_API_BASE_URL=url,
            X_OAUTH2_USER_TOKEN=account.user_token,
            X_BEARER_TOKEN=APP_BEARER_TOKEN,
            X_HANDLE=account.handle,
        )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["found"] == {} and report["unknown"] == []
    assert account.user_token not in proc.stdout + proc.stderr


# --- brake ---------------------------------------------------------------------------------------


def test_brake_on_off_status_with_audit_and_readiness(
    migrated: Path, inproc: Callable[..., Ran]
) -> None:
    assert json.loads(inproc("brake", "status", "--json").stdout)["engaged"] is False
    on = inproc("brake", "on", "--reason", "odd replies", "--json", XBOT_ACTOR="operator:dana")
    assert on.returncode == 0, on.stderr
    assert json.loads(on.stdout)["engaged"] is True
    # readiness, status and the dry run all see it
    assert inproc("status", "--json").returncode == 1
    status = inproc("brake", "status")
    assert status.returncode == 0 and "ON" in status.stdout and "operator:dana" in status.stdout
    off = inproc("brake", "off", "--reason", "checked", "--json", XBOT_ACTOR="operator:dana")
    assert json.loads(off.stdout)["engaged"] is False
    assert inproc("status", "--json").returncode == 0
    engine = make_engine(db_url(migrated))
    try:
        audit = recent_audit(engine, environment="local")
    finally:
        engine.dispose()
    trail = [(a["event_type"], a["actor"]) for a in audit if a["event_type"].startswith("brake")]
    assert trail == [("brake.released", "operator:dana"), ("brake.engaged", "operator:dana")]


def test_brake_error_paths(tmp_path: Path, inproc: Callable[..., Ran]) -> None:
    one_line_error(xbot(tmp_path, "brake", "on"), "--reason")
    sideways = inproc("brake", "sideways")  # a choice: the command line names the three
    assert sideways.returncode == 2 and "'sideways' is not one of" in sideways.stderr
    assert all(a in sideways.stderr for a in ("'on'", "'off'", "'status'")), sideways.stderr
    one_line_error(inproc("brake", "status"), "xbot migrate")


def test_post_dry_run_policy_preview_writes_nothing(
    migrated: Path, inproc: Callable[..., Ran]
) -> None:
    engine = make_engine(db_url(migrated))
    try:
        store = DurableStore(engine, "local")
        account_id = store.ensure_account("xbot_sandbox").id
        proc = inproc("post", "--dry-run", "--policy", "--json")
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["accounts"][0]["post"] is None  # nothing queued yet
        preview = result["policy_preview"][0]
        fmt, topic = preview["arm"].split(":")
        assert fmt in ("single", "thread", "question", "list", "hot_take", "how_to")
        assert topic in ("ai", "python", "data_science", "startups")
        assert 0 < preview["propensity"] <= 1
        assert preview["candidates"] and preview["posteriors_cold_start"] is True
        if preview["chosen"] is not None:
            assert any(c["accepted"] for c in preview["candidates"])
        # nothing was queued or recorded
        assert store.list_posts(account_id) == []
        assert store.list_candidates(account_id) == []
        text = inproc("post", "--dry-run", "--policy")
        assert text.returncode == 0 and "policy preview" in text.stdout
    finally:
        engine.dispose()


def test_post_dry_run_policy_refuses_to_spend_ai_budget_unasked(
    migrated: Path, inproc: Callable[..., Ran]
) -> None:
    one_line_error(
        inproc("post", "--dry-run", "--policy", GENERATOR="openai", OPENAI_API_KEY="sk-test-x"),
        "--allow-ai-spend",
    )
