"""The sandbox platform's state: its accounts and posts, and X's own rules for a new post.

What X *stores* (accounts, posts, who replied to whom, who is blocked until when) and what X
*refuses* (empty or over-long text, a reply to a deleted post, duplicate content, automation
blocks) live here. How an audience reacts to a post lives in :mod:`.audience`; how the state is
shared between processes lives in :mod:`.journal`; the X API v2 answers live in :mod:`.api`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from xbot_assets.sandbox import errors
from xbot_assets.sandbox.features import TextFeatures, classify_text
from xbot_assets.sandbox.scenario import AudienceParams

if TYPE_CHECKING:
    from xbot_assets.sandbox.audience import AudienceEngine

TWITTER_EPOCH_MS = 1288834974657
MAX_WEIGHTED_LENGTH = 280
_DAWN = datetime.min.replace(tzinfo=UTC)
_WORD = re.compile(r"[a-z0-9']+")


@dataclass
class Account:
    """A sandbox account (the bot's, or another one added for multi-account tests).

    Attributes:
        user_token: the OAuth 2.0 user token (also accepted as OAuth 1.0a ``oauth_token``) that
            authorises writes for this account; a public test value, not a secret.
        password: the web login password (``/i/flow/login``); a public test value.
    """

    index: int
    id: str
    handle: str
    name: str
    initial_followers: int
    following: int
    created_at: datetime
    user_token: str
    password: str
    posts: list[Post] = field(default_factory=list)
    blocked_until: datetime | None = None
    settled: SettledFollowers = field(default_factory=lambda: SettledFollowers())
    audience_jitter: float = 0.0
    """Standard deviation of this account's own topic and format effects around the scenario's
    (log scale; 0 = the scenario's audience exactly). Opt-in, so one account's figures stay the
    scenario's; a deployment of many accounts sets it so each account learns something else."""


@dataclass
class SettledFollowers:
    """Cached follower change of an account's posts that are past 72h (they no longer move)."""

    count: int = 0
    gain: float = 0.0
    at: datetime = _DAWN

    def reset(self) -> None:
        self.count, self.gain, self.at = 0, 0.0, _DAWN


@dataclass
class Post:
    """One post and its drawn outcome (``totals``: final counts in :data:`METRICS` order)."""

    seq: int
    id: str
    account: Account
    text: str
    created_at: datetime
    features: TextFeatures
    format: str
    reply_to: Post | None
    root: Post
    depth: int
    totals: np.ndarray
    rates: np.ndarray
    context: tuple[float, float, float]
    local_slot: tuple[int, int]
    days: float
    followers_at_post: float
    deleted_at: datetime | None = None
    near_duplicate: bool = False
    words: frozenset[str] = frozenset()
    children: list[Post] = field(default_factory=list)

    @property
    def conversation_id(self) -> str:
        """The id of the conversation's first post (X's ``conversation_id``)."""
        node = self
        while node.reply_to is not None:
            node = node.reply_to
        return node.id


class PlatformState:
    """Accounts and posts of one sandbox, and the rules X applies before it stores a post.

    Args:
        params: the scenario (its ``platform``, ``threads`` and ``fatigue`` sections set the rules).
        record: appends a write to the journal (a no-op when the sandbox has none, or replays).
    """

    def __init__(self, params: AudienceParams, record: Callable[[dict[str, Any]], None]) -> None:
        self.params = params
        self.record = record
        raw = params.raw
        self.fatigue = dict(raw.get("fatigue") or {})
        self.threads = dict(raw.get("threads") or {})
        self.platform = dict(raw.get("platform") or {})
        self.accounts: dict[str, Account] = {}
        self.by_id: dict[str, Account] = {}
        self.posts: dict[str, Post] = {}
        self.seq = 0

    # --- accounts ----------------------------------------------------------------------------
    def add_account(
        self,
        handle: str,
        followers: int,
        *,
        name: str | None,
        following: int,
        audience_jitter: float = 0.0,
    ) -> Account:
        """Create an account (its tokens are derived from the handle; see :class:`Account`)."""
        if not re.fullmatch(r"[A-Za-z0-9_]{1,15}", handle):
            raise ValueError(f"handle {handle!r} is not a valid X handle (1-15 of A-Z a-z 0-9 _)")
        if handle.lower() in self.accounts:
            raise ValueError(f"account @{handle} already exists in this sandbox")
        index = len(self.accounts)
        account = Account(
            index=index,
            id=str(1_500_000_001 + index),
            handle=handle,
            name=name or handle.replace("_", " "),
            initial_followers=int(followers),
            following=int(following),
            created_at=self.params.start - timedelta(days=400),
            user_token=f"sandbox-user-{handle}",
            password=f"sandbox-password-{handle}",
            audience_jitter=float(audience_jitter),
        )
        self.accounts[handle.lower()] = account
        self.by_id[account.id] = account
        if index > 0:
            self.record(
                {"op": "account", "handle": handle, "followers": int(followers),
                 "name": account.name, "following": int(following),
                 **({"audience_jitter": account.audience_jitter} if audience_jitter else {})}
            )  # fmt: skip
        return account

    def account(self, handle: str | None = None) -> Account:
        """The account with this handle (default: the scenario's own account)."""
        key = (handle or self.params.handle).lstrip("@").lower()
        try:
            return self.accounts[key]
        except KeyError:
            raise KeyError(f"no sandbox account @{key}; add it with add_account()") from None

    def account_for_token(self, token: str | None) -> Account | None:
        """The account a user token belongs to (None for the app bearer token or unknown)."""
        if not token:
            return None
        for account in self.accounts.values():
            if account.user_token == token:
                return account
        return None

    def posts_of(self, handle: str | None = None, *, include_deleted: bool = False) -> list[Post]:
        """The account's posts, newest first."""
        posts = [p for p in self.account(handle).posts if include_deleted or p.deleted_at is None]
        return sorted(posts, key=lambda p: (p.created_at, p.seq), reverse=True)

    # --- a new post --------------------------------------------------------------------------
    def create_post(
        self,
        account: Account,
        text: str,
        reply_to: str | None,
        *,
        now: datetime,
        audience: AudienceEngine,
        replay: bool = False,
    ) -> Post:
        """Apply X's rules, then store the post with the outcome the audience draws for it.

        ``replay`` (the journal rebuilding state) skips the refusals: the post was accepted once.
        """
        if not isinstance(text, str) or not text.strip():
            raise errors.invalid_request("Post text must not be empty.", "text")
        features = classify_text(text)
        if features.weighted_length > MAX_WEIGHTED_LENGTH:
            raise errors.forbidden(
                "Your Tweet text is too long. For more information on how X counts characters, "
                "see https://developer.x.com/en/docs/counting-characters.",
                code=186,
            )
        parent: Post | None = None
        if reply_to is not None:
            parent = self.posts.get(str(reply_to))
            if parent is None or parent.deleted_at is not None:
                raise errors.forbidden(
                    "You attempted to reply to a Tweet that is deleted or not visible to you.",
                    code=385,
                )
        if not replay and account.blocked_until and now < account.blocked_until:
            raise errors.automation_block()
        window = timedelta(hours=float(self.platform.get("duplicate_window_hours", 168)))
        normalized = text.strip()
        for other in [] if replay else reversed(account.posts):
            if now - other.created_at > window:
                break
            if other.deleted_at is None and other.text.strip() == normalized:
                raise errors.duplicate_content()
        in_thread = (
            parent is not None
            and parent.account is account
            and now - parent.root.created_at
            <= timedelta(minutes=float(self.threads.get("window_minutes", 15)))
        )
        similarity = audience.max_similarity(account, text, now)
        if not replay:
            self._check_automation(account, now, similarity, counts_as_root=not in_thread)
        self.seq += 1
        post_id = self._snowflake(now)
        if in_thread and parent is not None:
            post = audience.thread_reply(account, self.seq, post_id, text, now, features, parent)
        else:
            post = audience.root_post(
                account, self.seq, post_id, text, now, features, parent, similarity
            )
        post.words = words_of(text)
        if account.posts and account.posts[-1].created_at > now:
            account.settled.reset()  # the clock was set back: creation order != time order
        self.posts[post.id] = post
        account.posts.append(post)
        return post

    def _snowflake(self, now: datetime) -> str:
        ms = max(int(now.timestamp() * 1000) - TWITTER_EPOCH_MS, 0)
        return str((ms << 22) | (self.seq & 0x3FFFFF))

    def _check_automation(
        self, account: Account, now: datetime, similarity: float, *, counts_as_root: bool
    ) -> None:
        rules = dict(self.platform.get("automation_block") or {})
        max_per_hour = int(rules.get("max_posts_per_hour", 12))
        max_near = int(rules.get("near_duplicates_per_day", 5))
        threshold = float(self.fatigue.get("near_duplicate_similarity", 0.6))
        hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
        roots_last_hour = sum(
            1 for p in account.posts if p.created_at > hour_ago and p.root is p
        ) + int(counts_as_root)
        near_today = sum(1 for p in account.posts if p.created_at > day_ago and p.near_duplicate)
        near_today += int(similarity >= threshold)
        if roots_last_hour > max_per_hour or near_today > max_near:
            account.blocked_until = now + timedelta(minutes=float(rules.get("block_minutes", 120)))
            self.record(
                {
                    "op": "block",
                    "handle": account.handle,
                    "until": account.blocked_until.isoformat(),
                }
            )
            raise errors.automation_block()


def words_of(text: str) -> frozenset[str]:
    """The lower-case words of a text (near-duplicate similarity is Jaccard over these)."""
    return frozenset(_WORD.findall(text.lower()))
