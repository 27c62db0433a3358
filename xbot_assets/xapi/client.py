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

Secrets never appear in a message, ``repr`` or log line of this module. The auth flows are in
:mod:`xbot_assets.xapi.auth`, the answers' types and parsing in :mod:`xbot_assets.xapi.models`.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Callable, Iterator, Sequence
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

from xbot_assets.xapi.auth import BearerAuth, user_auth_from_settings
from xbot_assets.xapi.errors import (
    RateLimit,
    XApiError,
    XConnectionError,
    XNotFoundError,
    XServerError,
    XTimeoutError,
    error_from_response,
)
from xbot_assets.xapi.models import (
    ANALYTICS_FIELDS,
    ANALYTICS_GRANULARITIES,
    DEFAULT_ANALYTICS_FIELDS,
    DEFAULT_TWEET_FIELDS,
    MAX_IDS_PER_ANALYTICS,
    MAX_IDS_PER_LOOKUP,
    SANDBOX_ANALYTICS_FIELDS,
    AnalyticsPage,
    CreatedTweet,
    TweetsPage,
    parse_analytics,
    parse_page,
    user_data,
)

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def default_ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process (loading the CA bundle costs ~0.15 s each time)."""
    return ssl.create_default_context(cafile=certifi.where())


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
        return parse_page(body, rate_limit)

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
        return user_data(body, "me")

    def get_user(
        self, user_id: str, *, user_fields: Sequence[str] = ("public_metrics",)
    ) -> dict[str, Any]:
        """``GET /2/users/{id}`` (``public_metrics.followers_count`` for follower growth)."""
        params = {"user.fields": ",".join(user_fields)} if user_fields else None
        body, _ = self._read(f"/2/users/{user_id}", params=params)
        return user_data(body, user_id)

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
        return parse_page(body, rate_limit)

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


def _rfc3339(when: datetime, name: str) -> str:
    """X's query timestamp (``YYYY-MM-DDTHH:MM:SSZ``, UTC, whole seconds)."""
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime (e.g. datetime.now(UTC))")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
