"""`xbot sandbox serve` starts the HTTP sandbox; a bad scenario exits 2 with what to do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from xbot_assets.cli import app


def test_unknown_scenario_exits_2_with_a_hint() -> None:
    result = CliRunner().invoke(app, ["sandbox", "serve", "--scenario", "nope"])
    assert result.exit_code == 2
    assert "use one of default, drift, cold_start, large" in result.output


def test_serve_answers_on_loopback(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    journal = tmp_path / "journal.jsonl"
    command = [sys.executable, "-m", "xbot_assets.cli", "sandbox", "serve", "--port", str(port),
               "--scenario", "cold_start", "--seed", "3", "--journal", str(journal)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               cwd=Path(__file__).parents[2], start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                state = httpx.get(f"http://127.0.0.1:{port}/__sandbox/state", timeout=1).json()
                break
            except httpx.HTTPError:
                assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "xbot sandbox serve did not answer in 30 s"
                time.sleep(0.2)
        assert state["scenario"] == "cold_start" and state["seed"] == 3
        r = httpx.post(f"http://127.0.0.1:{port}/2/tweets", json={"text": "Hello, Python"},
                       headers={"Authorization": "Bearer sandbox-user-xbot_sandbox"})  # fmt: skip
        assert r.status_code == 201
        assert r.json()["data"]["id"] in journal.read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
