"""The dbt resource asks `dbt --version` once per process, however many runs copy it."""

from __future__ import annotations

import subprocess

import pytest

from xbot_assets.defs import dbt as dbt_defs


def test_dbt_version_is_asked_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_check_output(args: list[str], **kwargs: object) -> str:
        calls.append(list(args))
        return "Core:\n  - installed: 1.11.16\n"

    monkeypatch.setattr(subprocess, "check_output", fake_check_output)
    dbt_defs.dbt_version.cache_clear()
    try:
        assert dbt_defs.defs.resources is not None
        shared = dbt_defs.defs.resources["dbt"]
        # Dagster builds a fresh copy of the resource for every run; each asks the version.
        copies = [shared.model_copy() for _ in range(3)]
        versions = {str(copy._cli_version) for copy in copies}
    finally:
        dbt_defs.dbt_version.cache_clear()
    assert versions == {"1.11.16"}
    assert len(calls) == 1 and calls[0][-1] == "--version"


def test_an_unreadable_version_says_which_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "check_output", lambda args, **kw: "no version here")
    dbt_defs.dbt_version.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="cannot read dbt's version from `/x/dbt"):
            dbt_defs.dbt_version("/x/dbt")
    finally:
        dbt_defs.dbt_version.cache_clear()
