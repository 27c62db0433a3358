from __future__ import annotations

import os
from pathlib import Path

import pytest

from xbot_assets.config import Settings


def settings_env_names() -> set[str]:
    names = {"LIVE_POSTS", "XBOT_HOME"}
    for name, field in Settings.model_fields.items():
        names.add((field.alias or name).upper())
    return names


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No xbot variable from the outer environment and no stray .env: each test sets its own."""
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XBOT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def subprocess_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """The current environment without xbot variables, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in settings_env_names()}
    env["XBOT_HOME"] = str(tmp_path / "home")
    env.update(values)
    return env
