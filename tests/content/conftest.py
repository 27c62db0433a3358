"""Fixtures for the content tests: a loopback OpenAI-compatible server and a client for it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import openai
import pytest

from tests.content.fake_openai import FakeOpenAI
from xbot_assets.content.budget import AIBudget, InMemoryBudgetLedger


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openai_client(fake_openai: FakeOpenAI) -> openai.OpenAI:
    """The real openai client pointed at the loopback server (no retries, short timeout)."""
    return openai.OpenAI(
        api_key="test-key-not-secret", base_url=fake_openai.url, max_retries=0, timeout=5.0
    )


class FixedClock:
    """A settable UTC clock for budget tests."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def budget(clock: FixedClock) -> AIBudget:
    return AIBudget(InMemoryBudgetLedger(), 7.50, clock=clock)
