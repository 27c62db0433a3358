"""The X API v2 client every part of xbot uses (posting, metrics, reconciliation).

Why httpx directly rather than the official ``xdk`` package or tweepy:

- One small client must talk to the sandbox's HTTP API and to X with the same code, so the base URL
  is a setting. httpx takes it as-is; tweepy's v2 ``Client`` hard-codes ``api.twitter.com``.
- The posting layer needs precise failure facts that wrappers hide or retry away: whether a write
  may have taken effect (timeout after sending, 5xx), X's duplicate-content and automation (226)
  refusals, and the ``x-rate-limit-*`` headers of every answer. Here they become typed errors
  (:mod:`xbot_assets.xapi.errors`) and :class:`RateLimit` values.
- We use eight endpoints. httpx is already pinned (and used by the sandbox tests); ``xdk`` is
  young, generated, not pinned, and would add a dependency for little gain. OAuth 1.0a signing is
  small and covered by tests against the published examples (:mod:`xbot_assets.xapi.oauth1`).

Auth: writes and ``/2/users/me`` use the user context (an OAuth 2.0 user token, or OAuth 1.0a
when its four secrets are set); reads use the app-only bearer token when there is one, else the
user context. Writes are never retried here (X takes no idempotency key: the posting protocol
decides); reads get a short bounded retry on timeouts and 5xx.

Secrets never appear in a message, ``repr`` or log line of this module.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import certifi
import httpx
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from xbot_assets.xapi.errors import (
    RateLimit,
    XApiError,
    XConnectionError,
    XNotFoundError,
    XServerError,
    XTimeoutError,
    error_from_response,
)
from xbot_assets.xapi.oauth1 import OAuth1Credentials, authorization_header

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def default_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process (loading the CA bundle costs ~0.15 s each time)."""
    return ssl.create_default_context(cafile=certifi.where())


MAX_IDS_PER_LOOKUP = 100
"""X accepts at most 100 ids per ``GET /2/tweets``."""

DEFAULT_TWEET_FIELDS = ("created_at", "public_metrics", "author_id", "conversation_id")

MAX_IDS_PER_ANALYTICS = 100
"""X accepts 1 to 100 ids per ``GET /2/tweets/analytics`` (``ids`` maxItems in the spec)."""

ANALYTICS_GRANULARITIES = ("hourly", "daily", "weekly", "total")
"""The spec's ``granularity`` values (default ``total``: one sum over the whole window)."""

ANALYTICS_FIELDS = frozenset(
    {
        "app_install_attempts", "app_opens", "bookmarks", "detail_expands", "email_tweet",
        "engagements", "follows", "hashtag_clicks", "id", "impressions", "likes", "media_views",
        "permalink_clicks", "quote_tweets", "replies", "retweets", "shares", "timestamp",
        "timestamped_metrics", "unfollows", "unlikes", "url_clicks", "user_profile_clicks",
    }
)  # fmt: skip
"""Every ``analytics.fields`` value of X's OpenAPI description."""

SANDBOX_ANALYTICS_FIELDS = frozenset({"negative_feedback", "reports"})
"""Counters only the sandbox X answers (real X has no such field and refuses them with 400)."""

DEFAULT_ANALYTICS_FIELDS = (
    "impressions", "likes", "retweets", "replies", "quote_tweets", "bookmarks",
    "user_profile_clicks", "follows", "unfollows", "engagements",
)  # fmt: skip


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer ...`` (app-only bearer or OAuth 2.0 user token); masked repr."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("empty bearer token: set the X token in the settings")
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


class OAuth1Auth(httpx.Auth):
    """OAuth 1.0a user context: signs each request (method, URL, query) with HMAC-SHA1."""

    def __init__(self, credentials: OAuth1Credentials) -> None:
        self._credentials = credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = authorization_header(
            self._credentials, request.method, str(request.url)
        )
        yield request

    def __repr__(self) -> str:
        return "OAuth1Auth(***)"


@dataclass(frozen=True)
class CreatedTweet:
    """What ``POST /2/tweets`` returned: the new post's id (X's, never invented) and text."""

    id: str
    text: str
    rate_limit: RateLimit = field(default_factory=RateLimit)


@dataclass(frozen=True)
class TweetsPage:
    """One answer of a tweet lookup or timeline read.

    Attributes:
        data: the posts as X returns them (``id``, ``text`` and the requested fields).
        errors: per-item problems (e.g. a deleted post in a multi-id lookup).
        next_token: pagination token of the next page (timelines only).
        rate_limit: the rate-limit headers of this answer.
    """

    data: list[dict[str, Any]]
    errors: list[dict[str, Any]] = field(default_factory=list)
    includes: dict[str, Any] = field(default_factory=dict)
    next_token: str | None = None
    rate_limit: RateLimit = field(default_factory=RateLimit)


@dataclass(frozen=True)
class AnalyticsMetrics:
    """Counters of one post over one window (``None``: X did not return that field).

    The names are X's ``analytics.fields``; ``negative_feedback`` and ``reports`` are the
    sandbox's extension fields (always ``None`` from real X).
    """

    impressions: int | None = None
    likes: int | None = None
    retweets: int | None = None
    replies: int | None = None
    quote_tweets: int | None = None
    bookmarks: int | None = None
    user_profile_clicks: int | None = None
    follows: int | None = None
    unfollows: int | None = None
    engagements: int | None = None
    app_install_attempts: int | None = None
    app_opens: int | None = None
    detail_expands: int | None = None
    email_tweet: int | None = None
    hashtag_clicks: int | None = None
    media_views: int | None = None
    permalink_clicks: int | None = None
    shares: int | None = None
    unlikes: int | None = None
    url_clicks: int | None = None
    negative_feedback: int | None = None
    reports: int | None = None

    @classmethod
    def from_json(cls, raw: Any) -> AnalyticsMetrics:
        """Pick the known integer counters out of an X object; unknown keys are ignored."""
        if not isinstance(raw, dict):
            return cls()
        values: dict[str, int | None] = {}
        for f in fields(cls):
            value = raw.get(f.name)
            values[f.name] = int(value) if isinstance(value, (int, float)) else None
        return cls(**values)


@dataclass(frozen=True)
class AnalyticsBucket:
    """One entry of ``timestamped_metrics``: the counters of one granularity bucket."""

    timestamp: datetime | None
    metrics: AnalyticsMetrics


@dataclass(frozen=True)
class TweetAnalytics:
    """X's analytics of one post (one ``data`` item of ``GET /2/tweets/analytics``)."""

    id: str
    metrics: AnalyticsMetrics
    timestamp: datetime | None = None
    timestamped_metrics: tuple[AnalyticsBucket, ...] = ()


@dataclass(frozen=True)
class AnalyticsPage:
    """One answer of ``GET /2/tweets/analytics``.

    Attributes:
        data: one entry per post X answered for.
        errors: per-post problems (a deleted post, a post of another account).
        rate_limit: the rate-limit headers of this answer.
    """

    data: list[TweetAnalytics]
    errors: list[dict[str, Any]] = field(default_factory=list)
    rate_limit: RateLimit = field(default_factory=RateLimit)

    def by_id(self) -> dict[str, TweetAnalytics]:
        return {item.id: item for item in self.data}


class XApiClient:
    """A thin, typed X API v2 client over httpx.

    Args:
        base_url: ``https://api.x.com`` or the sandbox's URL (settings ``x_api_base_url``).
        user_auth: auth for the account's own actions (writes, ``/2/users/me``).
        app_auth: app-only bearer auth for reads; falls back to ``user_auth``.
        timeout: seconds per request (connect, read, write).
        read_attempts: attempts for reads on timeouts and 5xx (writes always get one).
        transport: an httpx transport (tests).
        trace: an httpcore trace callback ``(event, info)`` for every request (the crash-matrix
            tests use it to stop a process right after a request was sent).
    """

    def __init__(
        self,
        base_url: str,
        *,
        user_auth: httpx.Auth | None = None,
        app_auth: httpx.Auth | None = None,
        timeout: float = 10.0,
        read_attempts: int = 3,
        transport: httpx.BaseTransport | None = None,
        trace: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self._trace = trace
        self.base_url = base_url.rstrip("/")
        self._user_auth = user_auth
        self._app_auth = app_auth
        self._read_attempts = max(1, read_attempts)
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"User-Agent": "xbot/0.1"},
            follow_redirects=False,
            verify=default_ssl_context(),
        )
        self.last_rate_limit: RateLimit = RateLimit()
        """Rate-limit headers of the most recent answer (for pacing callers)."""

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> XApiClient:
        """Build from :class:`xbot_assets.config.Settings` (OAuth 2 user token preferred).

        Raises:
            ValueError: when the OAuth 1.0a secrets are only partly set.
        """
        return cls(
            settings.x_api_base_url,
            user_auth=user_auth_from_settings(settings),
            app_auth=(
                BearerAuth(settings.x_bearer_token.get_secret_value())
                if settings.x_bearer_token is not None
                else None
            ),
            **kwargs,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> XApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"XApiClient(base_url={self.base_url!r})"

    # --- low level ---------------------------------------------------------------------------
    def _auth(self, *, user: bool) -> httpx.Auth:
        auth = self._user_auth if user else (self._app_auth or self._user_auth)
        if auth is None:
            needed = "user-context credentials (X_OAUTH2_USER_TOKEN or the four OAuth 1.0a keys)"
            if not user:
                needed = "X_BEARER_TOKEN or user-context credentials"
            raise XApiError(f"no X credentials for this call: set {needed}")
        return auth

    def _send_once(
        self,
        method: str,
        path: str,
        *,
        user: bool,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> tuple[Any, RateLimit]:
        is_write = method in ("POST", "DELETE", "PUT")
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                json=json,
                auth=self._auth(user=user),
                extensions={"trace": self._trace} if self._trace else None,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise XConnectionError(
                f"X API {method} {path}: cannot connect to {self.base_url} ({type(exc).__name__})"
            ) from None
        except httpx.TimeoutException as exc:
            raise XTimeoutError(
                f"X API {method} {path}: no answer in time ({type(exc).__name__}); "
                "a write may still have been applied",
                may_have_taken_effect=is_write,
            ) from None
        except httpx.TransportError as exc:
            raise XTimeoutError(
                f"X API {method} {path}: connection broke ({type(exc).__name__}); "
                "a write may still have been applied",
                may_have_taken_effect=is_write,
            ) from None
        rate_limit = RateLimit.from_headers(response.headers)
        self.last_rate_limit = rate_limit
        if response.status_code >= 400:
            raise error_from_response(response, is_write=is_write)
        try:
            body = response.json()
        except ValueError:
            raise XServerError(
                f"X API {method} {path} answered {response.status_code} with a non-JSON body",
                status=response.status_code,
                rate_limit=rate_limit,
                may_have_taken_effect=is_write,
            ) from None
        return body, rate_limit

    def _read(
        self, path: str, *, params: dict[str, Any] | None = None, user: bool = False
    ) -> tuple[Any, RateLimit]:
        retrying = Retrying(
            stop=stop_after_attempt(self._read_attempts),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            retry=retry_if_exception_type((XServerError, XTimeoutError, XConnectionError)),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._send_once("GET", path, user=user, params=params)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- endpoints ---------------------------------------------------------------------------
    def create_tweet(self, text: str, *, reply_to: str | None = None) -> CreatedTweet:
        """``POST /2/tweets``; a reply (thread part) sets ``reply.in_reply_to_tweet_id``.

        Never retried: on :class:`XTimeoutError` or :class:`XServerError` the post may exist.
        """
        payload: dict[str, Any] = {"text": text}
        if reply_to is not None:
            payload["reply"] = {"in_reply_to_tweet_id": str(reply_to)}
        body, rate_limit = self._send_once("POST", "/2/tweets", user=True, json=payload)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not data.get("id"):
            raise XServerError(
                "X API POST /2/tweets answered without data.id; the post may exist "
                "(the reconciler will look for it)",
                rate_limit=rate_limit,
                may_have_taken_effect=True,
            )
        return CreatedTweet(
            id=str(data["id"]), text=str(data.get("text", text)), rate_limit=rate_limit
        )

    def delete_tweet(self, tweet_id: str) -> bool:
        """``DELETE /2/tweets/{id}``; True when X reports it deleted."""
        body, _ = self._send_once("DELETE", f"/2/tweets/{tweet_id}", user=True)
        return bool((body.get("data") or {}).get("deleted")) if isinstance(body, dict) else False

    def get_tweets(
        self,
        ids: Sequence[str],
        *,
        tweet_fields: Sequence[str] = DEFAULT_TWEET_FIELDS,
        expansions: Sequence[str] = (),
        user_context: bool = False,
    ) -> TweetsPage:
        """``GET /2/tweets`` for up to 100 ids (use :meth:`iter_tweets` for more).

        Args:
            ids: post ids, 1 to 100.
            tweet_fields: e.g. ``public_metrics``, ``non_public_metrics``, ``organic_metrics``
                (the last two need the user context: pass ``user_context=True``).
            expansions: optional expansions.
            user_context: use the account's own auth instead of the app bearer.
        """
        if not ids:
            return TweetsPage(data=[])
        if len(ids) > MAX_IDS_PER_LOOKUP:
            raise ValueError(
                f"GET /2/tweets takes at most {MAX_IDS_PER_LOOKUP} ids, got {len(ids)}: "
                "use iter_tweets() to batch"
            )
        params: dict[str, Any] = {"ids": ",".join(str(i) for i in ids)}
        if tweet_fields:
            params["tweet.fields"] = ",".join(tweet_fields)
        if expansions:
            params["expansions"] = ",".join(expansions)
        body, rate_limit = self._read("/2/tweets", params=params, user=user_context)
        return _page(body, rate_limit)

    def iter_tweets(
        self,
        ids: Sequence[str],
        *,
        tweet_fields: Sequence[str] = DEFAULT_TWEET_FIELDS,
        user_context: bool = False,
    ) -> Iterator[TweetsPage]:
        """Look up any number of ids, 100 per request."""
        for start in range(0, len(ids), MAX_IDS_PER_LOOKUP):
            yield self.get_tweets(
                ids[start : start + MAX_IDS_PER_LOOKUP],
                tweet_fields=tweet_fields,
                user_context=user_context,
            )

    def get_tweet(
        self,
        tweet_id: str,
        *,
        tweet_fields: Sequence[str] = DEFAULT_TWEET_FIELDS,
        user_context: bool = False,
    ) -> dict[str, Any]:
        """``GET /2/tweets/{id}``; raises :class:`XNotFoundError` when it does not exist."""
        params = {"tweet.fields": ",".join(tweet_fields)} if tweet_fields else None
        body, rate_limit = self._read(f"/2/tweets/{tweet_id}", params=params, user=user_context)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise XNotFoundError(
                f"X API GET /2/tweets/{tweet_id}: no such post", status=200, rate_limit=rate_limit
            )
        return data

    def get_tweet_analytics(
        self,
        ids: Sequence[str],
        *,
        start_time: datetime,
        end_time: datetime,
        granularity: str = "total",
        analytics_fields: Sequence[str] = DEFAULT_ANALYTICS_FIELDS,
    ) -> AnalyticsPage:
        """``GET /2/tweets/analytics``: the account's own per-post analytics over a window.

        The only source of ``follows`` per post. X requires the user context here (the spec
        lists OAuth 2.0 user and OAuth 1.0a tokens only) and answers 403/404 to an app whose
        access level lacks the endpoint.

        Args:
            ids: the account's own post ids, 1 to 100 (use :meth:`iter_tweet_analytics` for more).
            start_time: start of the window (timezone-aware; sent in whole seconds).
            end_time: end of the window, after ``start_time``.
            granularity: ``total`` (one sum) or ``hourly``/``daily``/``weekly`` buckets (ask for
                ``timestamped_metrics`` to get them).
            analytics_fields: X's ``analytics.fields`` (plus the sandbox's ``negative_feedback``
                and ``reports``, which real X refuses with 400).

        Raises:
            ValueError: bad ids, times, granularity or fields (nothing was sent).
            XForbiddenError, XNotFoundError: the endpoint is not available to this app.
        """
        if not ids:
            return AnalyticsPage(data=[])
        if len(ids) > MAX_IDS_PER_ANALYTICS:
            raise ValueError(
                f"GET /2/tweets/analytics takes at most {MAX_IDS_PER_ANALYTICS} ids, got "
                f"{len(ids)}: use iter_tweet_analytics() to batch"
            )
        bad_ids = [str(i) for i in ids if not str(i).isdigit() or len(str(i)) > 19]
        if bad_ids:
            raise ValueError(
                f"post ids must be 1 to 19 digits (X's ids), got {bad_ids[:3]}: pass X's ids, "
                "not the store's row ids"
            )
        if granularity not in ANALYTICS_GRANULARITIES:
            raise ValueError(
                f"granularity {granularity!r} is not one of {', '.join(ANALYTICS_GRANULARITIES)}"
            )
        chosen = list(dict.fromkeys(analytics_fields))  # the spec wants unique items
        unknown = sorted(set(chosen) - ANALYTICS_FIELDS - SANDBOX_ANALYTICS_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown analytics fields {unknown}: use X's analytics.fields "
                f"({', '.join(sorted(ANALYTICS_FIELDS))})"
            )
        start, end = _rfc3339(start_time, "start_time"), _rfc3339(end_time, "end_time")
        if end <= start:
            raise ValueError(
                f"end_time ({end}) must be after start_time ({start}) in whole seconds"
            )
        params: dict[str, Any] = {
            "ids": ",".join(str(i) for i in ids),
            "start_time": start,
            "end_time": end,
            "granularity": granularity,
        }
        if chosen:
            params["analytics.fields"] = ",".join(chosen)
        body, rate_limit = self._read("/2/tweets/analytics", params=params, user=True)
        return parse_analytics(body, rate_limit)

    def iter_tweet_analytics(self, ids: Sequence[str], **kwargs: Any) -> Iterator[AnalyticsPage]:
        """Analytics of any number of posts, 100 ids per request (same keywords as above)."""
        for start in range(0, len(ids), MAX_IDS_PER_ANALYTICS):
            yield self.get_tweet_analytics(ids[start : start + MAX_IDS_PER_ANALYTICS], **kwargs)

    def get_me(self, *, user_fields: Sequence[str] = ("public_metrics",)) -> dict[str, Any]:
        """``GET /2/users/me``: the account the user credentials belong to."""
        params = {"user.fields": ",".join(user_fields)} if user_fields else None
        body, _ = self._read("/2/users/me", params=params, user=True)
        return _user_data(body, "me")

    def get_user(
        self, user_id: str, *, user_fields: Sequence[str] = ("public_metrics",)
    ) -> dict[str, Any]:
        """``GET /2/users/{id}`` (``public_metrics.followers_count`` for follower growth)."""
        params = {"user.fields": ",".join(user_fields)} if user_fields else None
        body, _ = self._read(f"/2/users/{user_id}", params=params)
        return _user_data(body, user_id)

    def get_user_tweets(
        self,
        user_id: str,
        *,
        max_results: int = 100,
        pagination_token: str | None = None,
        since_id: str | None = None,
        start_time: str | None = None,
        tweet_fields: Sequence[str] = DEFAULT_TWEET_FIELDS,
        exclude: Sequence[str] = (),
    ) -> TweetsPage:
        """``GET /2/users/{id}/tweets``: one page of the account's own timeline, newest first.

        Args:
            user_id: the account's id.
            max_results: 5 to 100.
            pagination_token: ``next_token`` of the previous page.
            since_id: only posts newer than this id.
            start_time: RFC 3339 lower bound (e.g. ``2026-01-01T00:00:00Z``).
            tweet_fields: fields to return.
            exclude: ``replies`` and/or ``retweets`` (keep replies when reconciling threads).
        """
        params: dict[str, Any] = {"max_results": max(5, min(100, max_results))}
        if pagination_token:
            params["pagination_token"] = pagination_token
        if since_id:
            params["since_id"] = since_id
        if start_time:
            params["start_time"] = start_time
        if tweet_fields:
            params["tweet.fields"] = ",".join(tweet_fields)
        if exclude:
            params["exclude"] = ",".join(exclude)
        body, rate_limit = self._read(f"/2/users/{user_id}/tweets", params=params)
        return _page(body, rate_limit)

    def iter_user_tweets(
        self, user_id: str, *, max_pages: int = 5, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        """The account's posts, newest first, across up to ``max_pages`` pages."""
        token: str | None = None
        for _ in range(max_pages):
            page = self.get_user_tweets(user_id, pagination_token=token, **kwargs)
            yield from page.data
            token = page.next_token
            if not token:
                return


def user_auth_from_settings(settings: Any) -> httpx.Auth | None:
    """The account's auth: the OAuth 2.0 user token if set, else OAuth 1.0a, else None.

    Raises:
        ValueError: when only some of the four OAuth 1.0a secrets are set.
    """
    if settings.x_oauth2_user_token is not None:
        return BearerAuth(settings.x_oauth2_user_token.get_secret_value())
    names = ("x_api_key", "x_api_secret", "x_access_token", "x_access_token_secret")
    values = [getattr(settings, n) for n in names]
    if all(v is None for v in values):
        return None
    missing = [n.upper() for n, v in zip(names, values, strict=True) if v is None]
    if missing:
        raise ValueError(
            "OAuth 1.0a needs all four of X_API_KEY, X_API_SECRET, X_ACCESS_TOKEN, "
            f"X_ACCESS_TOKEN_SECRET: missing {', '.join(missing)}"
        )
    return OAuth1Auth(OAuth1Credentials(*(v.get_secret_value() for v in values)))


def parse_analytics(body: Any, rate_limit: RateLimit | None = None) -> AnalyticsPage:
    """Type a ``GET /2/tweets/analytics`` body (shared with the in-process sandbox reader)."""
    rate_limit = rate_limit or RateLimit()
    if not isinstance(body, dict):
        raise XServerError(
            "X API GET /2/tweets/analytics answered with an unexpected body shape",
            rate_limit=rate_limit,
        )
    items: list[TweetAnalytics] = []
    for raw in body.get("data") or []:
        if not isinstance(raw, dict) or raw.get("id") is None:
            continue
        buckets = tuple(
            AnalyticsBucket(
                _parse_time(b.get("timestamp")), AnalyticsMetrics.from_json(b.get("metrics"))
            )
            for b in raw.get("timestamped_metrics") or []
            if isinstance(b, dict)
        )
        items.append(
            TweetAnalytics(
                id=str(raw["id"]),
                metrics=AnalyticsMetrics.from_json(raw),
                timestamp=_parse_time(raw.get("timestamp")),
                timestamped_metrics=buckets,
            )
        )
    return AnalyticsPage(data=items, errors=list(body.get("errors") or []), rate_limit=rate_limit)


def _rfc3339(when: datetime, name: str) -> str:
    """X's query timestamp (``YYYY-MM-DDTHH:MM:SSZ``, UTC, whole seconds)."""
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime (e.g. datetime.now(UTC))")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _page(body: Any, rate_limit: RateLimit) -> TweetsPage:
    if not isinstance(body, dict):
        raise XServerError("X API answered with an unexpected body shape", rate_limit=rate_limit)
    meta = body.get("meta") or {}
    return TweetsPage(
        data=list(body.get("data") or []),
        errors=list(body.get("errors") or []),
        includes=dict(body.get("includes") or {}),
        next_token=meta.get("next_token"),
        rate_limit=rate_limit,
    )


def _user_data(body: Any, who: str) -> dict[str, Any]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise XNotFoundError(f"X API: no user data for {who}")
    return data
