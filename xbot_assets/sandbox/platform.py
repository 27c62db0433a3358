"""The in-process sandbox X: one object that binds the sandbox's parts together.

:class:`SandboxX` is the facade the rest of the sandbox, the benchmarks and the tests use. Each
part lives in its own module, so a change to one concept touches one file:

============================  =====================================================================
:mod:`.state`                 the platform state: accounts, posts, and X's rules for a new post
:mod:`.audience`              the audience engine: each post's drawn outcome, counts over time,
                              followers
:mod:`.faults`                the fault switches (429, 503, lost responses, web login trouble)
:mod:`.api`                   the X API v2 surface that ``server.py`` and ``web.py`` call
:mod:`.render`                how posts, users and analytics look as X's JSON
:mod:`.journal`               the write log that lets several processes share one sandbox
============================  =====================================================================

The same seed and the same calls give the same outcomes (see :mod:`.audience`).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from xbot_assets.sandbox.api import APP_BEARER_TOKEN, XApiSurface
from xbot_assets.sandbox.audience import AudienceEngine
from xbot_assets.sandbox.clock import SimClock
from xbot_assets.sandbox.errors import SandboxError
from xbot_assets.sandbox.faults import FAULTS, WRITE_ENDPOINTS, Fault, FaultSwitches
from xbot_assets.sandbox.journal import Journal, locked
from xbot_assets.sandbox.model import AudienceModel
from xbot_assets.sandbox.render import iso, parse_time
from xbot_assets.sandbox.scenario import AudienceParams, load_scenario
from xbot_assets.sandbox.state import Account, PlatformState, Post
from xbot_assets.sandbox.vocabulary import METRICS


class SandboxX(XApiSurface):
    """The simulated X platform, in process.

    Args:
        scenario: a scenario name (``default``, ``drift``, ``cold_start``, ``large``), a YAML
            path, or loaded :class:`AudienceParams`.
        seed: the audience and outcome seed; same seed and same calls give the same outcomes.
        clock: the simulated clock to share with the bot (default: a new :class:`SimClock`
            starting at the scenario's ``start``).
        journal: a JSON-lines path shared by every process that opens the same sandbox.

    Attributes:
        clock: the :class:`SimClock`.
        params: the scenario's hidden truth (do not read it from bot code).
        state: the :class:`~.state.PlatformState` (accounts and posts).
        audience: the :class:`~.audience.AudienceEngine` (outcomes; hidden truth).
        switches: the :class:`~.faults.FaultSwitches` that are on.
        bearer_token: the app-only token for reads (:data:`APP_BEARER_TOKEN`).
        counters: request counters (``requests``, ``write_requests``, ``posts_created``,
            ``posts_refused``, ``deletes``, ``endpoint:<name>``, ``status:<code>``).
        last_headers: the ``x-rate-limit-*`` headers of the last API call.
    """

    def __init__(
        self,
        scenario: str | Path | AudienceParams = "default",
        seed: int = 7,
        clock: SimClock | None = None,
        *,
        journal: str | Path | None = None,
    ) -> None:
        self._journal: Journal | None = None
        self._lock = threading.RLock()
        self.params = (
            scenario if isinstance(scenario, AudienceParams) else load_scenario(scenario, seed)
        )
        self.seed = int(seed)
        self.clock = clock or SimClock(self.params.start)
        self.audience = AudienceEngine(self.params, self.seed, self.clock.now())
        self.state = PlatformState(self.params, self._record)
        self.switches = FaultSwitches()
        self.bearer_token = APP_BEARER_TOKEN
        self.counters: Counter[str] = Counter()
        self.last_headers: dict[str, str] = {}
        self._windows: dict[tuple[str, str], tuple[datetime, int]] = {}
        self.add_account(
            self.params.handle,
            followers=self.params.followers,
            name=self.params.display_name,
            following=self.params.following,
        )
        if journal is not None:
            self._journal = Journal(Path(journal))
            self._journal.open(self)

    # --- the parts' shared facts -------------------------------------------------------------
    @property
    def epoch(self) -> datetime:
        """The simulated start (a journal written earlier sets it to its own)."""
        return self.audience.epoch

    @epoch.setter
    def epoch(self, value: datetime) -> None:
        self.audience.epoch = value

    @property
    def model(self) -> AudienceModel:
        """The audience model (hidden truth; the oracles read it)."""
        return self.audience.model

    @property
    def tz(self) -> ZoneInfo:
        """The scenario's audience time zone."""
        return self.audience.tz

    @property
    def faults(self) -> dict[str, Fault]:
        """The fault switches that are on, by name."""
        return self.switches.on

    def _record(self, entry: dict[str, Any]) -> None:
        if self._journal is not None and not self._journal.replaying:
            self._journal.append(self, entry)

    # --- accounts ----------------------------------------------------------------------------
    @locked
    def add_account(
        self,
        handle: str,
        followers: int = 500,
        *,
        name: str | None = None,
        following: int = 200,
        audience_jitter: float = 0.0,
    ) -> Account:
        """Create an account (its tokens are derived from the handle; see :class:`Account`).

        ``audience_jitter`` > 0 gives the account an audience of its own: its topic and format
        effects are the scenario's plus normal offsets of that standard deviation, seeded by the
        sandbox's seed and the handle (the same handle gets the same audience every time)."""
        return self.state.add_account(
            handle, followers, name=name, following=following, audience_jitter=audience_jitter
        )

    def account(self, handle: str | None = None) -> Account:
        """The account with this handle (default: the scenario's own account)."""
        return self.state.account(handle)

    @property
    def accounts(self) -> list[Account]:
        return list(self.state.accounts.values())

    def account_for_token(self, token: str | None) -> Account | None:
        """The account a user token belongs to (None for the app bearer token or unknown)."""
        return self.state.account_for_token(token)

    def check_password(self, handle: str, password: str) -> Account | None:
        """The account when ``handle``/``password`` match (web login)."""
        try:
            account = self.account(handle)
        except KeyError:
            return None
        return account if password == account.password else None

    # --- faults ------------------------------------------------------------------------------
    @locked
    def set_fault(
        self,
        name: str,
        *,
        match: str | None = None,
        count: int | None = None,
        seconds: float = 0.0,
    ) -> None:
        """Switch a fault on (see :data:`FAULTS`).

        Args:
            name: a key of :data:`FAULTS`.
            match: only requests whose endpoint name contains this text (e.g. ``create_tweet``,
                ``get_tweets``, ``web_``); None for all.
            count: affect only this many requests, then switch off; None until cleared.
            seconds: the delay of ``slow``.
        """
        self.switches.set(name, match=match, count=count, seconds=seconds)

    @locked
    def clear_faults(self, name: str | None = None) -> None:
        """Switch one fault (or all) off."""
        self.switches.clear(name)

    def fault_active(self, name: str, endpoint: str, *, consume: bool = True) -> Fault | None:
        """The fault if it is on for this endpoint (consuming one of its ``count``)."""
        with self._lock:
            return self.switches.active(name, endpoint, consume=consume)

    # --- posts and their truth ---------------------------------------------------------------
    def store_post(
        self, account: Account, text: str, reply_to: str | None, *, replay: bool = False
    ) -> Post:
        """Apply X's rules and store a post with its drawn outcome (the API and the journal)."""
        post = self.state.create_post(
            account, text, reply_to, now=self.clock.now(), audience=self.audience, replay=replay
        )
        self.counters["posts_created"] += 1
        return post

    @locked
    def post_metrics(self, post_id: str, at: datetime | None = None) -> dict[str, int]:
        """All shared metrics of a post now (or at ``at``), by the shared metric names.

        Not an X endpoint: the sandbox poster and tests read the full truth here, including
        ``negative_feedback`` and ``reports`` that X does not expose.
        """
        post = self.state.posts.get(str(post_id))
        if post is None:
            raise KeyError(f"no sandbox post {post_id}")
        counts = self.audience.counts(post, at or self.clock.now())
        return {m: int(c) for m, c in zip(METRICS, counts, strict=True)}

    @locked
    def followers(self, handle: str | None = None, at: datetime | None = None) -> int:
        """The account's follower count now (or at ``at``)."""
        return int(self.audience.followers_at(self.account(handle), at or self.clock.now()))

    def post(self, post_id: str) -> Post | None:
        """The post object (None when unknown); deleted posts are kept with ``deleted_at``."""
        return self.state.posts.get(str(post_id))

    @locked
    def expected_reward(self, post_id: str, weights: Mapping[str, float]) -> float:
        """The post's true expected reward: ``Σ weights[m] × rate[m]`` of its per-impression rates.

        For evaluation only (benchmarks, the main job's report): it is the audience's hidden
        truth, so no decision path of the bot may call it. The weights come from the caller
        (``xbot_assets.learning.rewards.REWARD_WEIGHTS``) so the sandbox imports nothing from the
        bot. A thread part carries its root's rates, so a thread scores once per post (its root).
        Raises KeyError for an unknown post and ValueError for an unknown metric name.
        """
        vector = self.audience.reward_vector(weights)
        post = self.state.posts.get(str(post_id))
        if post is None:
            raise KeyError(f"no sandbox post {post_id!r}")
        return float(post.root.rates @ vector)

    @locked
    def posts_of(self, handle: str | None = None, *, include_deleted: bool = False) -> list[Post]:
        """The account's posts, newest first."""
        return self.state.posts_of(handle, include_deleted=include_deleted)

    # --- admin -------------------------------------------------------------------------------
    @locked
    def advance(self, delta: timedelta) -> datetime:
        """Move the simulated clock forward (admin convenience; journaled)."""
        now = self.clock.advance(delta)
        self._record({"op": "clock"})
        return now

    @locked
    def admin_state(self) -> dict[str, Any]:
        """Counters, faults, clock and accounts as JSON (the ``/__sandbox/state`` body)."""
        now = self.clock.now()
        return {
            "now": iso(now),
            "scenario": self.params.name,
            "seed": self.seed,
            "counters": dict(self.counters),
            "faults": self.switches.as_json(),
            "accounts": [
                {
                    "id": a.id,
                    "handle": a.handle,
                    "followers": int(self.audience.followers_at(a, now)),
                    "posts": sum(1 for p in a.posts if p.deleted_at is None),
                    "blocked_until": iso(a.blocked_until) if a.blocked_until else None,
                }
                for a in self.state.accounts.values()
            ],
        }


__all__ = [
    "APP_BEARER_TOKEN",
    "FAULTS",
    "WRITE_ENDPOINTS",
    "Account",
    "Journal",
    "Post",
    "SandboxError",
    "SandboxX",
    "iso",
    "parse_time",
]
