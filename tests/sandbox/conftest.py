"""Fixtures of the sandbox tests: a fresh sandbox per test and its HTTP server on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from xbot_assets.sandbox import SandboxX
from xbot_assets.sandbox.server import running_server


@pytest.fixture
def sandbox() -> SandboxX:
    return SandboxX("default", seed=7)


@pytest.fixture
def base_url(sandbox: SandboxX) -> Iterator[str]:
    with running_server(sandbox) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        yield http


@pytest.fixture
def user_headers(sandbox: SandboxX) -> dict[str, str]:
    return {"Authorization": f"Bearer {sandbox.account().user_token}"}


@pytest.fixture
def app_headers(sandbox: SandboxX) -> dict[str, str]:
    return {"Authorization": f"Bearer {sandbox.bearer_token}"}
