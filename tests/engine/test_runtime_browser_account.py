"""POSTER=browser has one saved session, X_HANDLE's: the runtime refuses any other account.

Switching only the API token for another account (as the ``api`` poster does) left the browser
poster on X_HANDLE's session, so that account's posts went out on X_HANDLE's account.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xbot_assets.config import ConfigError, load_settings
from xbot_assets.engine.runtime import build_runtime


def test_browser_poster_refuses_an_account_other_than_x_handle(tmp_path: Path) -> None:
    settings = load_settings(
        env_file=None,
        poster="browser",
        x_handle="alice",
        browser_storage_state=tmp_path / "alice-session.json",
        x_account_tokens=json.dumps({"bob": "bob-user-token"}),  # a token does not help
    )
    with pytest.raises(ConfigError, match=r"@bob cannot post.*deployment of its own"):
        build_runtime(settings, handle="bob")
    runtime = build_runtime(settings, handle="alice")  # the session's own account still runs
    try:
        assert runtime.settings.x_handle == "alice"
    finally:
        runtime.close()
