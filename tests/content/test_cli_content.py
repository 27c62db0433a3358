"""`xbot content check` and `xbot content generate` (offline, no store needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xbot_assets.cli import app


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    for name in ("APP_ENV", "GENERATOR", "OPENAI_API_KEY", "LIVE_POSTS", "REDIS_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_check_exit_code_says_whether_text_may_be_posted(runner: CliRunner) -> None:
    ok = runner.invoke(
        app, ["content", "check", "Pin pip dependencies; Python builds stop breaking."]
    )
    assert ok.exit_code == 0 and ok.output.strip() == "ok"
    bad = runner.invoke(app, ["content", "check", "--json", "email bob@example.com"])
    assert bad.exit_code == 1
    assert json.loads(bad.output)["reasons"] == ["pii_email"]


def test_generate_prints_guarded_offline_candidates(runner: CliRunner) -> None:
    result = runner.invoke(app, ["content", "generate", "hot_take:startups", "-n", "2", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["seed"] for r in rows] == [0, 1]
    assert all(
        r["ok"] and r["parts"][0].startswith(("Hot take:", "Unpopular opinion:")) for r in rows
    )


def test_generate_rejects_a_malformed_arm_with_exit_2(runner: CliRunner) -> None:
    result = runner.invoke(app, ["content", "generate", "howto-python"])
    assert result.exit_code == 2 and "how_to:python" in result.output
