"""The in-process sandbox X: accounts, posts, outcomes, X's own blocks and injectable faults.

Every public method returns exactly the JSON body the X API v2 would return and raises
:class:`~xbot_assets.sandbox.errors.SandboxError` (status, X's JSON body, headers) where X would
answer with an error, so the HTTP server is a thin translation and in-process callers (the sandbox
poster, benchmarks, tests) see the same behaviour without sockets.

A post's outcome is drawn once, when it is created, from the audience model (its text features,
the account's recent history and the simulated time) with a random generator keyed by
``(seed, account, post number)``; its counts then unfold deterministically with the clock
(1h, 6h, 24h, 72h). The same seed and the same calls give the same outcomes.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import itertools
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import numpy as np

from xbot_assets.sandbox import errors
from xbot_assets.sandbox.clock import SimClock
from xbot_assets.sandbox.errors import SandboxError
from xbot_assets.sandbox.features import (
    ENGAGEMENT_METRICS,
    FORMATS,
    METRICS,
    TextFeatures,
    classify_text,
    hashtags_with_spans,
    links_with_spans,
)
from xbot_assets.sandbox.model import AudienceModel
from xbot_assets.sandbox.scenario import ALL_TOPICS, AudienceParams, load_scenario

APP_BEARER_TOKEN = "sandbox-app-bearer-token"  # noqa: S105 - a public test value, not a secret
"""The app-only bearer token the sandbox accepts for reads."""

TWITTER_EPOCH_MS = 1288834974657
MAX_WEIGHTED_LENGTH = 280
_DAWN = datetime.min.replace(tzinfo=UTC)

POST_FIELDS = frozenset(
    {
        "attachments", "author_id", "card_uri", "community_id", "context_annotations",
        "conversation_id", "created_at", "display_text_range", "edit_controls",
        "edit_history_tweet_ids", "entities", "geo", "id", "in_reply_to_user_id", "lang",
        "non_public_metrics", "organic_metrics", "possibly_sensitive", "promoted_metrics",
        "public_metrics", "referenced_tweets", "reply_settings", "scopes", "source", "text",
        "withheld", "article", "article_title", "matched_media_notes", "media_metadata",
        "note_post", "note_request_suggestions", "paid_partnership", "suggested_source_links",
        "suggested_source_links_with_counts", "note_tweet",
    }
)  # fmt: skip
USER_FIELDS = frozenset(
    {
        "affiliation", "confirmed_email", "connection_status", "created_at", "description",
        "entities", "id", "is_identity_verified", "location", "most_recent_tweet_id",
        "most_recent_post_id", "name", "parody", "pinned_tweet_id", "pinned_post_id",
        "profile_banner_url", "profile_image_url", "protected", "public_metrics",
        "receives_your_dm", "subscribes_to_you", "subscription", "subscription_type", "url",
        "username", "verified", "verified_followers_count", "verified_type", "withheld",
    }
)  # fmt: skip
ANALYTICS_FIELDS = frozenset(
    {
        "app_install_attempts", "app_opens", "bookmarks", "detail_expands", "email_tweet",
        "engagements", "follows", "hashtag_clicks", "id", "impressions", "likes", "media_views",
        "permalink_clicks", "quote_tweets", "replies", "retweets", "shares", "timestamp",
        "timestamped_metrics", "unfollows", "unlikes", "url_clicks", "user_profile_clicks",
    }
)  # fmt: skip
ANALYTICS_EXTENSION_FIELDS = frozenset({"negative_feedback", "reports"})
"""Sandbox-only analytics fields (real X does not expose them); returned only when asked for."""

FAULTS: dict[str, str] = {
    "rate_limit": "every matching API request answers 429 with x-rate-limit-* headers",
    "automation_block": "every matching write answers 403 with error code 226",
    "server_error": "every matching API request answers 500",
    "unavailable": "every matching API request answers 503",
    "no_access": "every matching API request answers 403 client-not-enrolled (the app's access "
    "level lacks the endpoint, as X answers for analytics without the needed tier)",
    "lose_response": "a matching write takes effect, then answers 503 (the post exists)",
    "slow": "the HTTP server waits `seconds` (real time) before answering",
    "expired_session": "web: every session cookie is expired (redirect to /i/flow/login)",
    "login_challenge": "web: the login flow shows a verification challenge instead of /home",
    "layout_changed": "web: the compose testids are renamed (tweetTextarea_0 -> ...)",
}
"""Fault switches and what each one does (see :meth:`SandboxX.set_fault`)."""

WRITE_ENDPOINTS = frozenset({"create_tweet", "delete_tweet", "web_create_tweet"})

_WORD = re.compile(r"[a-z0-9']+")

T = TypeVar("T")


def _locked(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def wrapper(self: SandboxX, *args: Any, **kwargs: Any) -> T:
        with self._lock:
            if self._journal is None or self._journal.replaying:
                return method(self, *args, **kwargs)
            with self._journal.hold(self):  # file lock + the other processes' writes
                return method(self, *args, **kwargs)

    return wrapper


def iso(when: datetime) -> str:
    """X's timestamp format: ``2026-01-05T10:00:00.000Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_time(value: str, parameter: str) -> datetime:
    """An RFC 3339 timestamp from a query parameter (400 when malformed or naive)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise errors.invalid_request(
            f"Invalid '{parameter}':'{value}'. '{parameter}' must be a RFC 3339 timestamp "
            "(YYYY-MM-DDTHH:mm:ssZ).",
            parameter,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


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


@dataclass
class Fault:
    """An active fault switch: which requests it matches and how many it still affects."""

    name: str
    match: str | None = None
    remaining: int | None = None
    seconds: float = 0.0

    def applies(self, endpoint: str) -> bool:
        return self.match is None or self.match in endpoint


class SandboxX:
    """The simulated X platform, in process.

    Args:
        scenario: a scenario name (``default``, ``drift``, ``cold_start``, ``large``), a YAML
            path, or loaded :class:`AudienceParams`.
        seed: the audience and outcome seed; same seed and same calls give the same outcomes.
        clock: the simulated clock to share with the bot (default: a new :class:`SimClock`
            starting at the scenario's ``start``).

    Attributes:
        clock: the :class:`SimClock`.
        params: the scenario's hidden truth (do not read it from bot code).
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
        self.params = (
            scenario if isinstance(scenario, AudienceParams) else load_scenario(scenario, seed)
        )
        self.seed = int(seed)
        self.model = AudienceModel(self.params)
        self.clock = clock or SimClock(self.params.start)
        self.epoch = self.clock.now()
        self.tz = ZoneInfo(self.params.timezone)
        self.bearer_token = APP_BEARER_TOKEN
        self.counters: Counter[str] = Counter()
        self.last_headers: dict[str, str] = {}
        self.faults: dict[str, Fault] = {}
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        self._by_id: dict[str, Account] = {}
        self._posts: dict[str, Post] = {}
        self._seq = 0
        self._windows: dict[tuple[str, str], tuple[datetime, int]] = {}
        raw = self.params.raw
        self._fatigue = dict(raw.get("fatigue") or {})
        self._text = dict(raw.get("text") or {})
        self._spam = dict(raw.get("spam") or {})
        self._threads = dict(raw.get("threads") or {})
        self._platform = dict(raw.get("platform") or {})
        unfold = dict(raw.get("unfold") or {})
        self._tau = float(unfold.get("tau_hours", 4.0))
        self._shape = float(unfold.get("shape", 0.8))
        self._f72 = 1.0 - math.exp(-((72.0 / self._tau) ** self._shape))
        self._unfollow = float(
            (raw.get("followers") or {}).get("unfollow_per_negative_feedback", 0.3)
        )
        self.add_account(
            self.params.handle,
            followers=self.params.followers,
            name=self.params.display_name,
            following=self.params.following,
        )
        if journal is not None:
            self._journal = Journal(Path(journal))
            self._journal.open(self)

    # --- accounts ----------------------------------------------------------------------------
    @_locked
    def add_account(
        self,
        handle: str,
        followers: int = 500,
        *,
        name: str | None = None,
        following: int = 200,
    ) -> Account:
        """Create an account (its tokens are derived from the handle; see :class:`Account`)."""
        if not re.fullmatch(r"[A-Za-z0-9_]{1,15}", handle):
            raise ValueError(f"handle {handle!r} is not a valid X handle (1-15 of A-Z a-z 0-9 _)")
        if handle.lower() in self._accounts:
            raise ValueError(f"account @{handle} already exists in this sandbox")
        index = len(self._accounts)
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
        )
        self._accounts[handle.lower()] = account
        self._by_id[account.id] = account
        if index > 0:
            self._record(
                {"op": "account", "handle": handle, "followers": int(followers),
                 "name": account.name, "following": int(following)}
            )  # fmt: skip
        return account

    def account(self, handle: str | None = None) -> Account:
        """The account with this handle (default: the scenario's own account)."""
        key = (handle or self.params.handle).lstrip("@").lower()
        try:
            return self._accounts[key]
        except KeyError:
            raise KeyError(f"no sandbox account @{key}; add it with add_account()") from None

    @property
    def accounts(self) -> list[Account]:
        return list(self._accounts.values())

    def account_for_token(self, token: str | None) -> Account | None:
        """The account a user token belongs to (None for the app bearer token or unknown)."""
        if not token:
            return None
        for account in self._accounts.values():
            if account.user_token == token:
                return account
        return None

    def check_password(self, handle: str, password: str) -> Account | None:
        """The account when ``handle``/``password`` match (web login)."""
        try:
            account = self.account(handle)
        except KeyError:
            return None
        return account if password == account.password else None

    # --- faults ------------------------------------------------------------------------------
    @_locked
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
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; use one of {sorted(FAULTS)}")
        # checked here, not when a request meets the fault: a bad fault would fail every request
        if match is not None and not isinstance(match, str):
            raise ValueError("match must be text (part of an endpoint name) or absent")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise ValueError("count must be a whole number of requests or absent")
        if count is not None and not 1 <= count <= 1_000_000:
            raise ValueError("count must be between 1 and 1000000")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ValueError("seconds must be a number")
        if not 0.0 <= seconds <= 60.0:  # NaN fails this too
            raise ValueError("seconds must be between 0 and 60")
        self.faults[name] = Fault(name, match, count, float(seconds))

    @_locked
    def clear_faults(self, name: str | None = None) -> None:
        """Switch one fault (or all) off."""
        if name is None:
            self.faults.clear()
        else:
            self.faults.pop(name, None)

    def fault_active(self, name: str, endpoint: str, *, consume: bool = True) -> Fault | None:
        """The fault if it is on for this endpoint (consuming one of its ``count``)."""
        with self._lock:
            fault = self.faults.get(name)
            if fault is None or not fault.applies(endpoint):
                return None
            if consume and fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self.faults[name]
            return fault

    # --- request plumbing --------------------------------------------------------------------
    @_locked
    def record_request(self, endpoint: str, *, write: bool) -> None:
        """Count a request the HTTP layer refused before it reached a method (e.g. bad JSON)."""
        self.counters["requests"] += 1
        self.counters[f"endpoint:{endpoint}"] += 1
        if write:
            self.counters["write_requests"] += 1

    def _begin(self, endpoint: str, token: str | None, *, write: bool) -> Account | None:
        """Count, authenticate, apply faults and rate limits; returns the user account if any."""
        self.counters["requests"] += 1
        self.counters[f"endpoint:{endpoint}"] += 1
        if write:
            self.counters["write_requests"] += 1
        self.last_headers = {}
        account = self.account_for_token(token)
        if account is None and token != self.bearer_token:
            raise errors.unauthorized()
        if write and account is None:
            raise errors.unsupported_authentication()
        if self.fault_active("server_error", endpoint):
            raise errors.server_error()
        if self.fault_active("unavailable", endpoint):
            raise errors.unavailable()
        if self.fault_active("no_access", endpoint):
            raise errors.client_not_enrolled()
        subject = account.id if account else "app"
        self.last_headers = self._rate_limit(endpoint, subject)
        if write and self.fault_active("automation_block", endpoint):
            raise SandboxError(403, errors.automation_block().body, self.last_headers)
        return account

    def _rate_limit(self, endpoint: str, subject: str) -> dict[str, str]:
        limits = dict(self._platform.get("rate_limits") or {})
        group = "create_tweet" if endpoint == "web_create_tweet" else endpoint
        limit, window_s = limits.get(group, [900, 900])
        now = self.clock.now()
        key = (group, subject)
        start, used = self._windows.get(key, (now, 0))
        if now >= start + timedelta(seconds=int(window_s)) or now < start:
            start, used = now, 0
        reset = int((start + timedelta(seconds=int(window_s))).timestamp())
        forced = self.fault_active("rate_limit", endpoint)
        if forced or used >= int(limit):
            headers = {
                "x-rate-limit-limit": str(limit),
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(reset),
            }
            raise errors.rate_limited(headers)
        used += 1
        self._windows[key] = (start, used)
        return {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": str(int(limit) - used),
            "x-rate-limit-reset": str(reset),
        }

    def _fail(self, exc: SandboxError) -> SandboxError:
        if not exc.headers and self.last_headers:
            exc.headers.update(self.last_headers)
        return exc

    # --- writes ------------------------------------------------------------------------------
    @_locked
    def create_tweet(
        self, text: str, reply_to: str | None = None, *, token: str | None
    ) -> dict[str, Any]:
        """``POST /2/tweets``: create a post (a reply when ``reply_to`` is a post id).

        Returns:
            ``{"data": {"id": ..., "text": ..., "edit_history_tweet_ids": [...]}}``.

        Raises:
            SandboxError: 401/403 auth, 400 invalid text, 403 duplicate content (code 187),
                403 automation block (code 226), 403 reply to a deleted post, 429, faults.
        """
        return self._create(text, reply_to, token=token, endpoint="create_tweet")

    def _create(
        self, text: str, reply_to: str | None, *, token: str | None, endpoint: str
    ) -> dict[str, Any]:
        account = self._begin(endpoint, token, write=True)
        assert account is not None
        try:
            post = self._create_post(account, text, reply_to)
        except SandboxError as exc:
            self.counters["posts_refused"] += 1
            raise self._fail(exc) from None
        self._record(
            {"op": "post", "handle": account.handle, "text": text, "reply_to": reply_to,
             "id": post.id}
        )  # fmt: skip
        if self.fault_active("lose_response", endpoint):
            raise self._fail(errors.unavailable())
        return {"data": {"id": post.id, "text": post.text, "edit_history_tweet_ids": [post.id]}}

    @_locked
    def web_create_tweet(self, text: str, reply_to: str | None, account: Account) -> Post:
        """The web compose box's write (the browser poster's path); same rules as the API."""
        body = self._create(text, reply_to, token=account.user_token, endpoint="web_create_tweet")
        return self._posts[body["data"]["id"]]

    def _record(self, entry: dict[str, Any]) -> None:
        if self._journal is not None and not self._journal.replaying:
            self._journal.append(self, entry)

    def _create_post(
        self, account: Account, text: str, reply_to: str | None, *, replay: bool = False
    ) -> Post:
        if not isinstance(text, str) or not text.strip():
            raise errors.invalid_request("Post text must not be empty.", "text")
        features = classify_text(text)
        if features.weighted_length > MAX_WEIGHTED_LENGTH:
            raise errors.forbidden(
                "Your Tweet text is too long. For more information on how X counts characters, "
                "see https://developer.x.com/en/docs/counting-characters.",
                code=186,
            )
        now = self.clock.now()
        parent: Post | None = None
        if reply_to is not None:
            parent = self._posts.get(str(reply_to))
            if parent is None or parent.deleted_at is not None:
                raise errors.forbidden(
                    "You attempted to reply to a Tweet that is deleted or not visible to you.",
                    code=385,
                )
        if not replay and account.blocked_until and now < account.blocked_until:
            raise errors.automation_block()
        window = timedelta(hours=float(self._platform.get("duplicate_window_hours", 168)))
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
            <= timedelta(minutes=float(self._threads.get("window_minutes", 15)))
        )
        similarity = self._max_similarity(account, text, now)
        if not replay:
            self._check_automation(account, now, similarity, counts_as_root=not in_thread)
        self._seq += 1
        post_id = self._snowflake(now)
        if in_thread and parent is not None:
            post = self._thread_reply(account, post_id, text, now, features, parent)
        else:
            post = self._root_post(account, post_id, text, now, features, parent, similarity)
        post.words = _words(text)
        if account.posts and account.posts[-1].created_at > now:
            account.settled.reset()  # the clock was set back: creation order != time order
        self._posts[post.id] = post
        account.posts.append(post)
        self.counters["posts_created"] += 1
        return post

    def _snowflake(self, now: datetime) -> str:
        ms = max(int(now.timestamp() * 1000) - TWITTER_EPOCH_MS, 0)
        return str((ms << 22) | (self._seq & 0x3FFFFF))

    def _check_automation(
        self, account: Account, now: datetime, similarity: float, *, counts_as_root: bool
    ) -> None:
        rules = dict(self._platform.get("automation_block") or {})
        max_per_hour = int(rules.get("max_posts_per_hour", 12))
        max_near = int(rules.get("near_duplicates_per_day", 5))
        threshold = float(self._fatigue.get("near_duplicate_similarity", 0.6))
        hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
        roots_last_hour = sum(
            1 for p in account.posts if p.created_at > hour_ago and p.root is p
        ) + int(counts_as_root)
        near_today = sum(1 for p in account.posts if p.created_at > day_ago and p.near_duplicate)
        near_today += int(similarity >= threshold)
        if roots_last_hour > max_per_hour or near_today > max_near:
            account.blocked_until = now + timedelta(minutes=float(rules.get("block_minutes", 120)))
            self._record(
                {
                    "op": "block",
                    "handle": account.handle,
                    "until": account.blocked_until.isoformat(),
                }
            )
            raise errors.automation_block()

    # --- outcome drawing ---------------------------------------------------------------------
    def _rng(self, account: Account, post_seq: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, account.index, post_seq, 0xB07])

    def _max_similarity(self, account: Account, text: str, now: datetime) -> float:
        words = _words(text)
        if not words:
            return 0.0
        best = 0.0
        week = timedelta(days=7)
        for other in reversed(account.posts):
            if now - other.created_at > week:
                break
            other_words = other.words
            if other_words:
                best = max(best, len(words & other_words) / len(words | other_words))
        return best

    def _text_context(
        self, account: Account, features: TextFeatures, now: datetime, similarity: float
    ) -> tuple[float, float, float]:
        """(engagement log, reach log, negative-feedback multiplier) of a root post."""
        t, fz, sp = self._text, self._fatigue, self._spam
        length = max(features.weighted_length, 20)
        eng = (
            -float(t.get("length_strength", 0.25))
            * math.log(length / float(t.get("optimal_length", 180))) ** 2
        )
        eng += float(t.get("hashtag_penalty", -0.12)) * features.hashtag_count
        nf = 1.0
        if features.hashtag_count >= int(t.get("hashtag_spam_threshold", 3)):
            nf *= float(t.get("hashtag_spam_nf", 2.5))
        reach = 0.0
        if features.has_link:
            eng += float(t.get("link_engagement", -0.1))
            reach += self.model.link_penalty
        if features.has_number:
            eng += float(t.get("number_bonus", 0.05))
        if features.has_emoji:
            eng += float(t.get("emoji_bonus", 0.03))
        # Fatigue: recent roots on the same topic, decayed; novelty: topic unseen for a while.
        half_life = float(fz.get("topic_half_life_hours", 18))
        novelty_window = timedelta(days=float(fz.get("novelty_days", 7)))
        fatigue, seen_recently, roots_last_hour = 0.0, False, 0
        for other in reversed(account.posts):
            age = now - other.created_at
            if age > novelty_window:
                break
            if other.root is not other:
                continue
            if age <= timedelta(hours=1):
                roots_last_hour += 1
            if other.features.topic == features.topic:
                seen_recently = True
                fatigue += 0.5 ** (age.total_seconds() / 3600.0 / half_life)
        eng -= float(fz.get("topic_strength", 0.12)) * fatigue
        if not seen_recently:
            eng += float(fz.get("novelty_bonus", 0.1))
        if similarity >= float(fz.get("near_duplicate_similarity", 0.6)):
            eng += float(fz.get("near_duplicate_penalty", -0.7))
            nf *= float(fz.get("near_duplicate_nf", 3.0))
        extra = roots_last_hour + 1 - int(sp.get("posts_per_hour", 3))
        if extra > 0:
            nf *= 1.0 + float(sp.get("nf_per_extra_post", 0.6)) * extra
            reach += float(sp.get("reach_per_extra_post", -0.15)) * extra
        return eng, reach, nf

    def _draw_root(
        self,
        account: Account,
        seq: int,
        fmt: str,
        topic: str,
        slot: tuple[int, int],
        days: float,
        followers: float,
        context: tuple[float, float, float],
        reach_extra: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        rng = self._rng(account, seq)
        m = self.model
        f_idx, t_idx = np.array([FORMATS.index(fmt)]), np.array([ALL_TOPICS.index(topic)])
        hour, weekday = np.array([slot[0]]), np.array([slot[1]])
        day_arr = np.array([days])
        eng, reach, nf = context
        quality = m.draw_quality(rng, 1)
        rates = m.rates(
            t_idx, f_idx, hour, weekday, day_arr,
            engagement_log=eng, nf_multiplier=nf, quality=quality,
        )  # fmt: skip
        median = m.median_impressions(
            followers, t_idx, f_idx, hour, weekday, day_arr,
            engagement_log=eng, reach_log=reach + reach_extra, quality=quality,
        )  # fmt: skip
        impressions = m.draw_impressions(rng, median)
        counts = m.draw_counts(rng, impressions, rates)[0]
        return np.concatenate([impressions, counts]), rates[0]

    def _root_post(
        self,
        account: Account,
        post_id: str,
        text: str,
        now: datetime,
        features: TextFeatures,
        parent: Post | None,
        similarity: float,
    ) -> Post:
        context = self._text_context(account, features, now, similarity)
        local = now.astimezone(self.tz)
        slot = (local.hour, local.weekday())
        days = (now - self.epoch).total_seconds() / 86400.0
        followers = self._followers_at(account, now)
        # A reply to someone else's post (or a late self-reply) is seen mostly in that
        # conversation: a fraction of a root's reach.
        reach_extra = -1.2 if parent is not None else 0.0
        totals, rates = self._draw_root(
            account, self._seq, features.format, features.topic, slot, days, followers, context,
            reach_extra,
        )  # fmt: skip
        post = Post(
            seq=self._seq, id=post_id, account=account, text=text, created_at=now,
            features=features, format=features.format, reply_to=parent, root=cast(Post, None),
            depth=0 if parent is None else parent.depth + 1, totals=totals, rates=rates,
            context=context, local_slot=slot, days=days, followers_at_post=followers,
        )  # fmt: skip
        post.root = post
        post.near_duplicate = similarity >= float(
            self._fatigue.get("near_duplicate_similarity", 0.6)
        )
        if parent is not None:
            parent.children.append(post)
        return post

    def _thread_reply(
        self,
        account: Account,
        post_id: str,
        text: str,
        now: datetime,
        features: TextFeatures,
        parent: Post,
    ) -> Post:
        root = parent.root
        if root.format != "thread":
            # The root now has a self-reply chain: it is a thread. Redraw its outcome with the
            # thread format from the same generator (deterministic either way).
            root.format = "thread"
            root.totals, root.rates = self._draw_root(
                account, root.seq, "thread", root.features.topic, root.local_slot, root.days,
                root.followers_at_post, root.context,
            )  # fmt: skip
            for child in self._chain(root):
                self._draw_reply(child)
        depth = parent.depth + 1
        post = Post(
            seq=self._seq, id=post_id, account=account, text=text, created_at=now,
            features=features, format=features.format, reply_to=parent, root=root, depth=depth,
            totals=np.zeros(len(METRICS), dtype=np.int64), rates=root.rates, context=root.context,
            local_slot=root.local_slot, days=root.days, followers_at_post=root.followers_at_post,
        )  # fmt: skip
        parent.children.append(post)
        self._draw_reply(post)
        return post

    def _chain(self, root: Post) -> Iterable[Post]:
        stack = list(root.children)
        while stack:
            node = stack.pop()
            if node.root is root:
                yield node
                stack.extend(node.children)

    def _draw_reply(self, post: Post) -> None:
        rng = self._rng(post.account, post.seq)
        share = float(self._threads.get("reply_impression_share", 0.3))
        decay = float(self._threads.get("reply_decay", 0.75))
        rate_share = float(self._threads.get("reply_rate_share", 0.5))
        mean = float(post.root.totals[0]) * share * decay ** (post.depth - 1)
        impressions = int(rng.poisson(max(mean, 0.0)))
        rates = np.minimum(post.root.rates * rate_share, 1.0)
        counts = rng.binomial(impressions, rates)
        post.totals = np.concatenate([[impressions], counts]).astype(np.int64)

    # --- outcomes over time ------------------------------------------------------------------
    def _share(self, post: Post, at: datetime) -> float:
        end = at if post.deleted_at is None else min(at, post.deleted_at)
        age_h = (end - post.created_at).total_seconds() / 3600.0
        if age_h <= 0:
            return 0.0
        if age_h >= 72.0:
            return 1.0
        return min(1.0, (1.0 - math.exp(-((age_h / self._tau) ** self._shape))) / self._f72)

    def _counts(self, post: Post, at: datetime | None = None) -> np.ndarray:
        share = self._share(post, at or self.clock.now())
        return np.floor(post.totals * share).astype(np.int64)

    def _followers_at(self, account: Account, at: datetime) -> float:
        """Initial followers + follows - unfollows of every post up to ``at``.

        Posts older than 72h at ``at`` no longer change, so their sum is cached per account
        (reset when asked about an earlier time); a month of posting stays O(recent posts).
        """
        follows_i = METRICS.index("follows")
        nf_i = METRICS.index("negative_feedback")
        cache = account.settled
        if at < cache.at:
            cache.reset()
        cutoff = at - timedelta(hours=72)
        posts = account.posts
        while cache.count < len(posts) and posts[cache.count].created_at <= cutoff:
            post = posts[cache.count]
            share = self._share(post, at)
            cache.gain += math.floor(post.totals[follows_i] * share)
            cache.gain -= math.floor(post.totals[nf_i] * share * self._unfollow)
            cache.count += 1
        cache.at = at
        gained = cache.gain
        for post in posts[cache.count :]:
            if post.created_at >= at:
                continue
            share = self._share(post, at)
            gained += math.floor(post.totals[follows_i] * share)
            gained -= math.floor(post.totals[nf_i] * share * self._unfollow)
        return max(account.initial_followers + gained, 0.0)

    @_locked
    def post_metrics(self, post_id: str, at: datetime | None = None) -> dict[str, int]:
        """All shared metrics of a post now (or at ``at``), by the shared metric names.

        Not an X endpoint: the sandbox poster and tests read the full truth here, including
        ``negative_feedback`` and ``reports`` that X does not expose.
        """
        post = self._posts.get(str(post_id))
        if post is None:
            raise KeyError(f"no sandbox post {post_id}")
        counts = self._counts(post, at)
        return {m: int(c) for m, c in zip(METRICS, counts, strict=True)}

    @_locked
    def followers(self, handle: str | None = None, at: datetime | None = None) -> int:
        """The account's follower count now (or at ``at``)."""
        return int(self._followers_at(self.account(handle), at or self.clock.now()))

    def post(self, post_id: str) -> Post | None:
        """The post object (None when unknown); deleted posts are kept with ``deleted_at``."""
        return self._posts.get(str(post_id))

    @_locked
    def expected_reward(self, post_id: str, weights: Mapping[str, float]) -> float:
        """The post's true expected reward: ``Σ weights[m] × rate[m]`` of its per-impression rates.

        For evaluation only (benchmarks, the main job's report): it is the audience's hidden
        truth, so no decision path of the bot may call it. The weights come from the caller
        (``xbot_assets.learning.rewards.REWARD_WEIGHTS``) so the sandbox imports nothing from the
        bot. A thread part carries its root's rates, so a thread scores once per post (its root).
        Raises KeyError for an unknown post and ValueError for an unknown metric name.
        """
        unknown = sorted(set(weights) - set(ENGAGEMENT_METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; use {ENGAGEMENT_METRICS}")
        post = self._posts.get(str(post_id))
        if post is None:
            raise KeyError(f"no sandbox post {post_id!r}")
        vector = np.array([float(weights.get(m, 0.0)) for m in ENGAGEMENT_METRICS])
        return float(post.root.rates @ vector)

    @_locked
    def posts_of(self, handle: str | None = None, *, include_deleted: bool = False) -> list[Post]:
        """The account's posts, newest first."""
        posts = [p for p in self.account(handle).posts if include_deleted or p.deleted_at is None]
        return sorted(posts, key=lambda p: (p.created_at, p.seq), reverse=True)

    # --- rendering ---------------------------------------------------------------------------
    @staticmethod
    def _fields(fields: str | Sequence[str] | None, allowed: frozenset[str], name: str) -> set[str]:
        if fields is None:
            return set()
        items = fields.split(",") if isinstance(fields, str) else list(fields)
        chosen = {item.strip() for item in items if item.strip()}
        unknown = sorted(chosen - allowed)
        if unknown:
            raise errors.invalid_request(
                f"The `{name}` query parameter value [{unknown[0]}] is not one of "
                f"[{', '.join(sorted(allowed))}]",
                name,
            )
        return chosen

    def _render_post(
        self, post: Post, fields: set[str], viewer: Account | None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        data: dict[str, Any] = {
            "id": post.id,
            "text": post.text,
            "edit_history_tweet_ids": [post.id],
        }
        problems: list[dict[str, Any]] = []
        counts = self._counts(post)
        c = dict(zip(METRICS, (int(x) for x in counts), strict=True))
        if "created_at" in fields:
            data["created_at"] = iso(post.created_at)
        if "author_id" in fields:
            data["author_id"] = post.account.id
        if "conversation_id" in fields:
            data["conversation_id"] = post.conversation_id
        if "lang" in fields:
            data["lang"] = "en"
        if "possibly_sensitive" in fields:
            data["possibly_sensitive"] = False
        if "reply_settings" in fields:
            data["reply_settings"] = "everyone"
        if "source" in fields:
            data["source"] = "xbot sandbox"
        if post.reply_to is not None:
            if "in_reply_to_user_id" in fields:
                data["in_reply_to_user_id"] = post.reply_to.account.id
            if "referenced_tweets" in fields:
                refs = [{"type": "replied_to", "id": post.reply_to.id}]
                data["referenced_tweets"] = refs
                data["referenced_posts"] = refs  # the spec's name for the same list
        if "entities" in fields:
            entities: dict[str, Any] = {}
            tags = hashtags_with_spans(post.text)
            if tags:
                entities["hashtags"] = [{"start": s, "end": e, "tag": t} for s, e, t in tags]
            urls = links_with_spans(post.text)
            if urls:
                entities["urls"] = [
                    {"start": s, "end": e, "url": u, "expanded_url": u, "display_url": u}
                    for s, e, u in urls
                ]
            if entities:
                data["entities"] = entities
        if "public_metrics" in fields:
            data["public_metrics"] = {
                "retweet_count": c["reposts"],
                "repost_count": c["reposts"],
                "reply_count": c["replies"],
                "like_count": c["likes"],
                "quote_count": c["quotes"],
                "bookmark_count": c["bookmarks"],
                "impression_count": c["impressions"],
            }
        private = {"non_public_metrics", "organic_metrics"} & fields
        for name in sorted(private):
            owner = viewer is not None and viewer is post.account
            recent = self.clock.now() - post.created_at <= timedelta(days=30)
            if not (owner and recent):
                problems.append(errors.field_not_authorized(post.id, name))
                continue
            if name == "non_public_metrics":
                data[name] = {
                    "impression_count": c["impressions"],
                    "url_link_clicks": 0,
                    "user_profile_clicks": c["profile_clicks"],
                }
            else:
                data[name] = {
                    "impression_count": c["impressions"],
                    "like_count": c["likes"],
                    "reply_count": c["replies"],
                    "retweet_count": c["reposts"],
                    "url_link_clicks": 0,
                    "user_profile_clicks": c["profile_clicks"],
                }
        return data, problems

    def _render_user(self, account: Account, fields: set[str]) -> dict[str, Any]:
        data: dict[str, Any] = {"id": account.id, "name": account.name, "username": account.handle}
        live = [p for p in account.posts if p.deleted_at is None]
        if "created_at" in fields:
            data["created_at"] = iso(account.created_at)
        if "description" in fields:
            data["description"] = "A simulated account in the xbot sandbox."
        if "protected" in fields:
            data["protected"] = False
        if "verified" in fields:
            data["verified"] = False
        if "verified_type" in fields:
            data["verified_type"] = "none"
        if "profile_image_url" in fields:
            data["profile_image_url"] = "https://pbs.twimg.com/profile_images/default_normal.png"
        if "url" in fields:
            data["url"] = ""
        if ("most_recent_tweet_id" in fields or "most_recent_post_id" in fields) and live:
            newest = max(live, key=lambda p: (p.created_at, p.seq)).id
            data["most_recent_tweet_id" if "most_recent_tweet_id" in fields else
                 "most_recent_post_id"] = newest  # fmt: skip
        if "public_metrics" in fields:
            data["public_metrics"] = {
                "followers_count": int(self._followers_at(account, self.clock.now())),
                "following_count": account.following,
                "tweet_count": len(live),
                "post_count": len(live),
                "listed_count": max(account.initial_followers // 150, 0),
                "like_count": 0,
                "media_count": 0,
            }
        return data

    # --- reads -------------------------------------------------------------------------------
    def _lookup(
        self, ids: Sequence[str], fields: set[str], viewer: Account | None, parameter: str
    ) -> dict[str, Any]:
        data: list[dict[str, Any]] = []
        problems: list[dict[str, Any]] = []
        for post_id in ids:
            post = self._posts.get(str(post_id))
            if post is None or post.deleted_at is not None:
                problems.append(errors.not_found_item("tweet", str(post_id), parameter))
                continue
            item, item_problems = self._render_post(post, fields, viewer)
            data.append(item)
            problems.extend(item_problems)
        body: dict[str, Any] = {}
        if data:
            body["data"] = data
        if problems:
            body["errors"] = problems
        return body

    @_locked
    def get_tweets(
        self,
        ids: Sequence[str] | str,
        fields: str | Sequence[str] | None = None,
        *,
        token: str | None = APP_BEARER_TOKEN,
    ) -> dict[str, Any]:
        """``GET /2/tweets?ids=...&tweet.fields=...`` (missing ids come back in ``errors``)."""
        viewer = self._begin("get_tweets", token, write=False)
        try:
            id_list = ids.split(",") if isinstance(ids, str) else [str(i) for i in ids]
            id_list = [i.strip() for i in id_list if i.strip()]
            if not id_list:
                raise errors.invalid_request("The `ids` query parameter can not be empty", "ids")
            if len(id_list) > 100:
                raise errors.invalid_request("The `ids` query parameter allows 1 to 100 ids", "ids")
            bad = [i for i in id_list if not re.fullmatch(r"[0-9]{1,19}", i)]
            if bad:
                raise errors.invalid_request(
                    f"The `ids` query parameter value [{bad[0]}] does not match ^[0-9]{{1,19}}$",
                    "ids",
                )
            chosen = self._fields(fields, POST_FIELDS, "tweet.fields")
        except SandboxError as exc:
            raise self._fail(exc) from None
        return self._lookup(id_list, chosen, viewer, "ids")

    @_locked
    def get_tweet(
        self,
        post_id: str,
        fields: str | Sequence[str] | None = None,
        *,
        token: str | None = APP_BEARER_TOKEN,
    ) -> dict[str, Any]:
        """``GET /2/tweets/{id}``: ``{"data": {...}}`` or ``{"errors": [...]}`` when gone."""
        viewer = self._begin("get_tweets", token, write=False)
        try:
            if not re.fullmatch(r"[0-9]{1,19}", str(post_id)):
                raise errors.invalid_request(
                    f"The `id` query parameter value [{post_id}] does not match ^[0-9]{{1,19}}$",
                    "id",
                )
            chosen = self._fields(fields, POST_FIELDS, "tweet.fields")
        except SandboxError as exc:
            raise self._fail(exc) from None
        body = self._lookup([str(post_id)], chosen, viewer, "id")
        if "data" in body:
            body["data"] = body["data"][0]
        return body

    @_locked
    def delete_tweet(self, post_id: str, *, token: str | None) -> dict[str, Any]:
        """``DELETE /2/tweets/{id}``: ``{"data": {"deleted": true}}`` for the owner's post."""
        account = self._begin("delete_tweet", token, write=True)
        post = self._posts.get(str(post_id))
        if post is None or post.deleted_at is not None:
            raise self._fail(
                errors.not_found_request(f"Could not find tweet with id: [{post_id}].")
            )
        if post.account is not account:
            raise self._fail(errors.forbidden("You are not allowed to delete this Tweet.", 183))
        post.deleted_at = self.clock.now()
        self.counters["deletes"] += 1
        self._record({"op": "delete", "id": post.id})
        if self.fault_active("lose_response", "delete_tweet"):
            raise self._fail(errors.unavailable())
        return {"data": {"deleted": True}}

    @_locked
    def get_me(
        self, fields: str | Sequence[str] | None = None, *, token: str | None
    ) -> dict[str, Any]:
        """``GET /2/users/me`` (user token only)."""
        account = self._begin("get_users", token, write=False)
        if account is None:
            raise self._fail(errors.unsupported_authentication())
        try:
            chosen = self._fields(fields, USER_FIELDS, "user.fields")
        except SandboxError as exc:
            raise self._fail(exc) from None
        return {"data": self._render_user(account, chosen)}

    @_locked
    def get_user(
        self,
        user_id: str,
        fields: str | Sequence[str] | None = None,
        *,
        token: str | None = APP_BEARER_TOKEN,
    ) -> dict[str, Any]:
        """``GET /2/users/{id}``: ``{"data": {...}}`` or ``{"errors": [...]}`` when unknown."""
        self._begin("get_users", token, write=False)
        try:
            chosen = self._fields(fields, USER_FIELDS, "user.fields")
        except SandboxError as exc:
            raise self._fail(exc) from None
        account = self._by_id.get(str(user_id))
        if account is None:
            return {"errors": [errors.not_found_item("user", str(user_id), "id")]}
        return {"data": self._render_user(account, chosen)}

    @_locked
    def get_user_tweets(
        self,
        user_id: str,
        *,
        max_results: int | None = None,
        pagination_token: str | None = None,
        since_id: str | None = None,
        until_id: str | None = None,
        start_time: str | datetime | None = None,
        end_time: str | datetime | None = None,
        exclude: str | Sequence[str] | None = None,
        fields: str | Sequence[str] | None = None,
        token: str | None = APP_BEARER_TOKEN,
    ) -> dict[str, Any]:
        """``GET /2/users/{id}/tweets``: the account's timeline, newest first, paginated."""
        viewer = self._begin("get_user_tweets", token, write=False)
        try:
            size = 10 if max_results is None else int(max_results)
            if not 5 <= size <= 100:
                raise errors.invalid_request(
                    f"The `max_results` query parameter value [{size}] is not between 5 and 100",
                    "max_results",
                )
            chosen = self._fields(fields, POST_FIELDS, "tweet.fields")
            excluded = self._fields(exclude, frozenset({"replies", "retweets"}), "exclude")
            start = (
                parse_time(start_time, "start_time")
                if isinstance(start_time, str)
                else (start_time)
            )
            end = parse_time(end_time, "end_time") if isinstance(end_time, str) else end_time
            for name, value in (("since_id", since_id), ("until_id", until_id)):
                if value is not None and not re.fullmatch(r"[0-9]{1,19}", str(value)):
                    raise errors.invalid_request(
                        f"The `{name}` query parameter value [{value}] does not match "
                        "^[0-9]{1,19}$",
                        name,
                    )
            offset = 0
            if pagination_token:
                try:
                    offset = int(
                        base64.b32hexdecode(
                            pagination_token.upper() + "=" * (-len(pagination_token) % 8)
                        ).decode()
                    )
                except ValueError:
                    raise errors.invalid_request(
                        "The `pagination_token` query parameter value is not valid",
                        "pagination_token",
                    ) from None
        except SandboxError as exc:
            raise self._fail(exc) from None
        account = self._by_id.get(str(user_id))
        if account is None:
            return {"errors": [errors.not_found_item("user", str(user_id), "id")]}
        posts = [p for p in self.posts_of(account.handle)]
        if "replies" in excluded:
            posts = [p for p in posts if p.reply_to is None]
        if since_id:
            posts = [p for p in posts if int(p.id) > int(since_id)]
        if until_id:
            posts = [p for p in posts if int(p.id) < int(until_id)]
        if start:
            posts = [p for p in posts if p.created_at >= start]
        if end:
            posts = [p for p in posts if p.created_at <= end]
        page = posts[offset : offset + size]
        problems: list[dict[str, Any]] = []
        data = []
        for post in page:
            item, item_problems = self._render_post(post, chosen, viewer)
            data.append(item)
            problems.extend(item_problems)
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta["newest_id"] = page[0].id
            meta["oldest_id"] = page[-1].id
        if offset + size < len(posts):
            meta["next_token"] = _token(offset + size)
        if offset > 0:
            meta["previous_token"] = _token(max(offset - size, 0))
        body: dict[str, Any] = {"meta": meta}
        if data:
            body["data"] = data
        if problems:
            body["errors"] = problems
        return body

    @_locked
    def get_analytics(
        self,
        ids: Sequence[str] | str,
        start_time: str | datetime,
        end_time: str | datetime,
        granularity: str = "total",
        fields: str | Sequence[str] | None = None,
        *,
        token: str | None,
    ) -> dict[str, Any]:
        """``GET /2/tweets/analytics``: the owner's per-post analytics between two times.

        ``negative_feedback`` and ``reports`` are sandbox-only extension fields, returned only
        when requested in ``fields``.
        """
        viewer = self._begin("analytics", token, write=False)
        try:
            if viewer is None:
                raise errors.unsupported_authentication()
            id_list = ids.split(",") if isinstance(ids, str) else [str(i) for i in ids]
            id_list = [i.strip() for i in id_list if i.strip()]
            if not 1 <= len(id_list) <= 100:
                raise errors.invalid_request("The `ids` query parameter allows 1 to 100 ids", "ids")
            start = (
                parse_time(start_time, "start_time")
                if isinstance(start_time, str)
                else (start_time)
            )
            end = parse_time(end_time, "end_time") if isinstance(end_time, str) else end_time
            if end <= start:
                raise errors.invalid_request("end_time must be after start_time", "end_time")
            if granularity not in ("hourly", "daily", "weekly", "total"):
                raise errors.invalid_request(
                    f"The `granularity` query parameter value [{granularity}] is not one of "
                    "[hourly, daily, weekly, total]",
                    "granularity",
                )
            chosen = self._fields(
                fields, ANALYTICS_FIELDS | ANALYTICS_EXTENSION_FIELDS, "analytics.fields"
            )
        except SandboxError as exc:
            raise self._fail(exc) from None
        if not chosen:
            chosen = {
                "impressions", "likes", "retweets", "replies", "quote_tweets", "bookmarks",
                "user_profile_clicks", "follows", "engagements", "timestamped_metrics",
            }  # fmt: skip
        now = self.clock.now()
        end = min(end, now)
        step = {"hourly": timedelta(hours=1), "daily": timedelta(days=1),
                "weekly": timedelta(days=7)}.get(granularity)  # fmt: skip
        data: list[dict[str, Any]] = []
        problems: list[dict[str, Any]] = []
        for post_id in id_list:
            post = self._posts.get(post_id)
            if post is None or post.deleted_at is not None:
                problems.append(errors.not_found_item("tweet", post_id, "ids"))
                continue
            if post.account is not viewer:
                problems.append(errors.not_authorized_item("tweet", post_id, "ids"))
                continue
            total = self._analytics_metrics(post, start, end, chosen)
            item: dict[str, Any] = {"id": post.id}
            item.update(total)
            if "timestamp" in chosen:
                item["timestamp"] = iso(start)
            if "timestamped_metrics" in chosen:
                buckets = []
                edges = [start]
                if step is not None:
                    while edges[-1] + step < end and len(edges) < 2000:
                        edges.append(edges[-1] + step)
                edges.append(end)
                for lo, hi in itertools.pairwise(edges):
                    if hi > lo:
                        buckets.append(
                            {"timestamp": iso(lo),
                             "metrics": self._analytics_metrics(post, lo, hi, chosen)}
                        )  # fmt: skip
                item["timestamped_metrics"] = buckets
            data.append(item)
        body: dict[str, Any] = {}
        if data:
            body["data"] = data
        if problems:
            body["errors"] = problems
        return body

    def _analytics_metrics(
        self, post: Post, start: datetime, end: datetime, chosen: set[str]
    ) -> dict[str, int]:
        hi = dict(zip(METRICS, self._counts(post, end).tolist(), strict=True))
        lo = dict(zip(METRICS, self._counts(post, start).tolist(), strict=True))
        d = {k: int(hi[k] - lo[k]) for k in METRICS}
        engagements = sum(
            d[k] for k in ("likes", "reposts", "replies", "quotes", "bookmarks", "profile_clicks")
        )
        values = {
            "impressions": d["impressions"],
            "likes": d["likes"],
            "retweets": d["reposts"],
            "replies": d["replies"],
            "quote_tweets": d["quotes"],
            "bookmarks": d["bookmarks"],
            "user_profile_clicks": d["profile_clicks"],
            "follows": d["follows"],
            "unfollows": int(d["negative_feedback"] * self._unfollow),
            "engagements": engagements,
            "negative_feedback": d["negative_feedback"],
            "reports": d["reports"],
        }
        zero = {"app_install_attempts", "app_opens", "detail_expands", "email_tweet",
                "hashtag_clicks", "media_views", "permalink_clicks", "shares", "unlikes",
                "url_clicks"}  # fmt: skip
        out = {k: v for k, v in values.items() if k in chosen}
        out.update({k: 0 for k in zero & chosen})
        return out

    # --- admin -------------------------------------------------------------------------------
    @_locked
    def advance(self, delta: timedelta) -> datetime:
        """Move the simulated clock forward (admin convenience; journaled)."""
        now = self.clock.advance(delta)
        self._record({"op": "clock"})
        return now

    @_locked
    def admin_state(self) -> dict[str, Any]:
        """Counters, faults, clock and accounts as JSON (the ``/__sandbox/state`` body)."""
        return {
            "now": iso(self.clock.now()),
            "scenario": self.params.name,
            "seed": self.seed,
            "counters": dict(self.counters),
            "faults": {
                name: {"match": f.match, "remaining": f.remaining, "seconds": f.seconds}
                for name, f in self.faults.items()
            },
            "accounts": [
                {
                    "id": a.id,
                    "handle": a.handle,
                    "followers": int(self._followers_at(a, self.clock.now())),
                    "posts": sum(1 for p in a.posts if p.deleted_at is None),
                    "blocked_until": iso(a.blocked_until) if a.blocked_until else None,
                }
                for a in self._accounts.values()
            ],
        }


class Journal:
    """An append-only JSON-lines log of a sandbox's writes, replayed to rebuild its state.

    Outcomes are a deterministic function of the seed and the sequence of writes, so replaying
    the writes at their simulated times rebuilds every post, count and follower exactly. This
    lets separate processes (Dagster runs of the embedded default) share one sandbox: each
    opens ``SandboxX(..., journal=path)``, picks up the others' writes before every call, and
    appends its own under a file lock. Faults and rate-limit windows are not journaled.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.offset = 0
        self.replaying = False
        self._depth = 0
        self._lock_file: Any = None

    def open(self, sandbox: SandboxX) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.hold(sandbox, sync=False):
            if not self.path.exists() or self.path.stat().st_size == 0:
                meta = {
                    "op": "meta",
                    "scenario": sandbox.params.name,
                    "seed": sandbox.seed,
                    "epoch": sandbox.epoch.isoformat(),
                }
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(meta) + "\n")
            self.sync(sandbox)

    @contextlib.contextmanager
    def hold(self, sandbox: SandboxX, *, sync: bool = True) -> Iterator[None]:
        """Hold the journal's file lock (re-entrant) and catch up with other writers first."""
        if self._depth == 0:
            self._lock_file = self.lock_path.open("a")
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        self._depth += 1
        try:
            if sync and self._depth == 1:
                self.sync(sandbox)
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None

    def sync(self, sandbox: SandboxX) -> None:
        """Apply entries appended since the last read (by this or another process)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size <= self.offset:
            return
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.replaying = True
        saved_now = sandbox.clock.now()
        latest = saved_now
        try:
            for raw in complete.decode("utf-8").splitlines():
                if raw.strip():
                    latest = max(latest, self._apply(sandbox, json.loads(raw)))
        finally:
            self.replaying = False
            sandbox.clock.set(latest)
        self.offset += len(complete)

    def _apply(self, sandbox: SandboxX, entry: dict[str, Any]) -> datetime:
        op = entry["op"]
        if op == "meta":
            if entry["scenario"] != sandbox.params.name or int(entry["seed"]) != sandbox.seed:
                raise ValueError(
                    f"sandbox journal {self.path} belongs to scenario {entry['scenario']!r} "
                    f"seed {entry['seed']}, not {sandbox.params.name!r} seed {sandbox.seed}: "
                    "use the same scenario and seed, or another journal path"
                )
            sandbox.epoch = datetime.fromisoformat(entry["epoch"])
            return sandbox.clock.now()
        at = datetime.fromisoformat(entry["at"])
        sandbox.clock.set(at)
        if op == "account":
            sandbox.add_account(entry["handle"], entry["followers"], name=entry["name"],
                                following=entry["following"])  # fmt: skip
        elif op == "post":
            post = sandbox._create_post(
                sandbox.account(entry["handle"]), entry["text"], entry["reply_to"], replay=True
            )
            if post.id != entry["id"]:
                raise ValueError(
                    f"sandbox journal {self.path} does not replay (post {entry['id']} came back "
                    f"as {post.id}): it was written by another sandbox version; move it away"
                )
        elif op == "delete":
            post = sandbox._posts[entry["id"]]
            post.deleted_at = at
        elif op == "block":
            sandbox.account(entry["handle"]).blocked_until = datetime.fromisoformat(entry["until"])
        return at

    def append(self, sandbox: SandboxX, entry: dict[str, Any]) -> None:
        """Write one entry (stamped with the simulated time) under the file lock."""
        line = json.dumps({**entry, "at": sandbox.clock.now().isoformat()}) + "\n"
        with self.hold(sandbox, sync=False), self.path.open("ab") as handle:
            handle.write(line.encode("utf-8"))
            self.offset = handle.tell()


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def _token(offset: int) -> str:
    return base64.b32hexencode(str(offset).encode()).decode().rstrip("=").lower()


def engagement_metrics_of(counts: dict[str, int]) -> dict[str, int]:
    """Only the engagement metrics of a metrics dict (helper for reports)."""
    return {m: counts[m] for m in ENGAGEMENT_METRICS}


__all__ = [
    "APP_BEARER_TOKEN",
    "FAULTS",
    "Account",
    "Post",
    "SandboxError",
    "SandboxX",
]
