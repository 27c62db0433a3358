"""A fresh local deployment per engine test (the orchestration tests' environment)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.orchestration.conftest import Env, make_env, restore_env


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    made, saved = make_env(tmp_path)
    try:
        yield made
    finally:
        restore_env(saved)
