"""One function picks every implementation the engine needs for an environment.

``local`` (the embedded default) runs against the sandbox X, shared between processes through
its journal under ``XBOT_HOME``; ``staging``/``production`` use the X API client and the poster
the settings name. The clock is the deployment's (wall time, or the rehearsal clock of
CLOCK_SPEED) unless a simulated time is given (the main job).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from threading import Lock
from typing import Any

from pydantic import SecretStr

from xbot_assets.config import ConfigError, Settings

_SANDBOXES: dict[tuple[str, str, int], Any] = {}
_SANDBOX_LOCK = Lock()

SECOND_SANDBOX_FOLLOWERS = 800
"""Followers of any extra sandbox account a deployment adds (the scenario's own keeps its)."""


def sandbox_journal_path(settings: Settings) -> Path:
    """Where the embedded sandbox keeps its write log (one per scenario and seed)."""
    folder = settings.xbot_home / "sandbox"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{settings.sandbox_scenario}-{settings.sandbox_seed}.jsonl"


def shared_sandbox(settings: Settings) -> Any:
    """The process's sandbox for these settings, replayed from its journal on first use.

    Dagster runs executed in this process reuse one instance (no replay per run); runs in other
    processes (the daemon) open the same journal and see the same posts.
    """
    from xbot_assets.sandbox import SandboxX

    journal = sandbox_journal_path(settings)
    key = (str(journal), settings.sandbox_scenario, settings.sandbox_seed)
    with _SANDBOX_LOCK:
        sandbox = _SANDBOXES.get(key)
        if sandbox is None:
            sandbox = SandboxX(settings.sandbox_scenario, settings.sandbox_seed, journal=journal)
            _SANDBOXES[key] = sandbox
        return sandbox


def forget_sandboxes() -> None:
    """Drop the cached sandboxes (tests that start over in the same process)."""
    with _SANDBOX_LOCK:
        _SANDBOXES.clear()


class SandboxReader:
    """The collector's X reader over the in-process sandbox (same bodies as the HTTP API)."""

    def __init__(self, sandbox: Any, user_token: str) -> None:
        self.sandbox = sandbox
        self.user_token = user_token

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        import httpx

        from xbot_assets.sandbox.errors import SandboxError
        from xbot_assets.xapi.errors import error_from_response

        try:
            return fn(*args, **kwargs)
        except SandboxError as exc:
            response = httpx.Response(
                exc.status,
                json=exc.body,
                headers=exc.headers,
                request=httpx.Request("GET", "http://sandbox.invalid/2/tweets"),
            )
            raise error_from_response(response, is_write=False) from None

    def get_tweets(
        self,
        ids: Sequence[str],
        *,
        tweet_fields: Sequence[str] = ("public_metrics",),
        user_context: bool = False,
    ) -> Any:
        from xbot_assets.xapi.errors import RateLimit
        from xbot_assets.xapi.models import TweetsPage

        token = self.user_token if user_context else self.sandbox.bearer_token
        body = self._call(self.sandbox.get_tweets, list(ids), list(tweet_fields), token=token)
        return TweetsPage(
            data=list(body.get("data") or []),
            errors=list(body.get("errors") or []),
            rate_limit=RateLimit.from_headers(dict(self.sandbox.last_headers)),
        )

    def get_user(self, user_id: str, *, user_fields: Sequence[str] = ("public_metrics",)) -> Any:
        body = self._call(self.sandbox.get_user, user_id, list(user_fields))
        return dict(body.get("data") or {})

    def get_tweet_analytics(
        self,
        ids: Sequence[str],
        *,
        start_time: datetime,
        end_time: datetime,
        granularity: str = "total",
        analytics_fields: Sequence[str] = ("follows",),
    ) -> Any:
        """``GET /2/tweets/analytics`` as the account (follows, negative feedback, reports)."""
        from xbot_assets.xapi.errors import RateLimit
        from xbot_assets.xapi.models import parse_analytics

        body = self._call(
            self.sandbox.get_analytics,
            [str(i) for i in ids],
            start_time,
            end_time,
            granularity,
            list(analytics_fields),
            token=self.user_token,
        )
        return parse_analytics(body, RateLimit.from_headers(dict(self.sandbox.last_headers)))

    def close(self) -> None:
        """Nothing to release (the sandbox is shared)."""


@dataclass
class Runtime:
    """What one run of the engine works with, for one account.

    Attributes:
        settings: the process settings with ``x_handle``/``x_user_id`` of this account.
        now: the time source (simulated in the main job).
        sandbox: the sandbox X when the environment posts to it, else None.
    """

    settings: Settings
    now: Callable[[], datetime]
    sandbox: Any = None
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _gate: Any = None

    @property
    def handle(self) -> str:
        return self.settings.x_handle

    def store(self) -> Any:
        """The durable store (the truth), at the current schema."""
        from xbot_assets.engine.sensing import cached_store

        return cached_store(self.settings)

    def account_id(self, store: Any) -> int:
        """This account's row id, created on first use with its X user id and time zone."""
        timezone = self.sandbox.params.timezone if self.sandbox is not None else None
        account = store.ensure_account(
            self.handle,
            x_user_id=self.settings.x_user_id,
            timezone=timezone or self.settings.account_timezone,
            now=self.now(),
        )
        return int(account.id)

    def x_api_gate(self) -> Any:
        """The gate every X API call of this run passes (15-minute limiter, monthly budget),
        counted in the durable store on this runtime's clock."""
        if self._gate is None:
            from xbot_assets.xapi.budget import XApiGate

            self._gate = XApiGate.for_store(self.settings, self.store(), self.now)
        return self._gate

    def hot_path(self, store: Any) -> Any:
        """The loop's hot path over ``store`` on this runtime's clock: Redis in front when
        REDIS_URL is set, the same calls on the store alone otherwise (one switch)."""
        from xbot_assets.posting.hotpath import open_hot_path

        return open_hot_path(self.settings, store.engine, clock=self.now)

    def poster(self) -> Any:
        """The poster for this environment (in-process sandbox poster in ``local``), its X API
        calls behind :meth:`x_api_gate`."""
        from xbot_assets.posting.factory import make_poster

        return make_poster(self.settings, sandbox=self.sandbox, gate=self.x_api_gate())

    def reader(self) -> Any:
        """The X reader for metrics (the sandbox in ``local``, the X API client elsewhere),
        every call behind :meth:`x_api_gate`."""
        from xbot_assets.xapi.budget import GatedReader

        if self.sandbox is not None:
            account = self.sandbox.account(self.handle)
            return GatedReader(SandboxReader(self.sandbox, account.user_token), self.x_api_gate())
        from xbot_assets.xapi.client import XApiClient

        client = XApiClient.from_settings(self.settings)
        self._closers.append(client.close)
        return GatedReader(client, self.x_api_gate())

    def generator(self, store: Any) -> Any:
        """The content generator the settings resolve to (offline needs no key); OpenAI's
        spend is kept against the daily budget in bot_config."""
        if self.settings.resolved_generator == "openai":
            from xbot_assets.content.budget import AIBudget, BotConfigBudgetLedger
            from xbot_assets.content.openai_generator import OpenAIGenerator

            budget = AIBudget(
                BotConfigBudgetLedger(store, clock=self.now),
                self.settings.ai_budget_usd_per_day,
                clock=self.now,
            )
            return OpenAIGenerator.from_settings(self.settings, budget)
        from xbot_assets.content.offline import OfflineGenerator

        return OfflineGenerator()

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()


def build_runtime(
    settings: Settings, *, handle: str | None = None, now: datetime | None = None
) -> Runtime:
    """Pick the implementations for ``settings.app_env`` and the account ``handle``.

    Args:
        settings: the process settings.
        handle: the account (partition key); default ``settings.x_handle``.
        now: a simulated time (the main job); None runs on the wall clock.

    Raises:
        ConfigError: ``handle`` is another account than X_HANDLE and has no user token in
            X_ACCOUNT_TOKENS, or POSTER=browser: a deployment has one browser session
            (BROWSER_STORAGE_STATE, X_HANDLE's) and no per-account sessions, so another
            account's posts would go out on X_HANDLE's account.
    """
    from xbot_assets.store.timebase import settings_clock

    handle = handle or settings.x_handle
    wall = settings_clock(settings)
    sandbox = None
    updates: dict[str, Any] = {"x_handle": handle}
    if settings.resolved_poster == "sandbox":
        sandbox = shared_sandbox(settings)
        try:
            account = sandbox.account(handle)
        except KeyError:
            account = sandbox.add_account(handle, followers=SECOND_SANDBOX_FOLLOWERS)
        updates["x_user_id"] = account.id
        target = now or wall()
        if now is not None or target > sandbox.clock.now():
            sandbox.clock.set(target)
    elif handle != settings.x_handle:
        if settings.resolved_poster == "browser":
            raise ConfigError(
                f"POSTER=browser posts through one saved session, X_HANDLE's "
                f"(@{settings.x_handle}), so account @{handle} cannot post with it: run "
                f"@{handle} in a deployment of its own (X_HANDLE={handle}, its own "
                "BROWSER_STORAGE_STATE saved by `xbot browser-login`), or use POSTER=api with "
                "its user token in X_ACCOUNT_TOKENS"
            )
        # Another account of the deployment: its own user token, never X_HANDLE's (a post made
        # with the wrong token would go out on the wrong account).
        updates["x_user_id"] = None
        token = settings.account_tokens().get(handle.lstrip("@").lower())
        if token is None:
            raise ConfigError(
                f"no X credentials for account @{handle}: add its user token to "
                'X_ACCOUNT_TOKENS ({"handle": "token", ...})'
            )
        updates["x_oauth2_user_token"] = SecretStr(token)
        for oauth1 in ("x_api_key", "x_api_secret", "x_access_token", "x_access_token_secret"):
            updates[oauth1] = None  # X_HANDLE's OAuth 1.0a keys would sign as X_HANDLE
    account_settings = settings.model_copy(update=updates)
    if now is None:
        return Runtime(account_settings, wall, sandbox)
    frozen = now

    def clock() -> datetime:
        # Within one simulated tick the sandbox's clock is the truth (it may be advanced).
        return sandbox.clock.now() if sandbox is not None else frozen

    return Runtime(account_settings, clock, sandbox)
