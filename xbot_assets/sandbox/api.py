"""The sandbox's X API v2 surface: the endpoints ``server.py`` and ``web.py`` call, in process.

Every endpoint returns exactly the JSON body the X API v2 would return and raises
:class:`~xbot_assets.sandbox.errors.SandboxError` (status, X's JSON body, headers) where X would
answer with an error, so the HTTP server is a thin translation and in-process callers (the sandbox
poster, benchmarks, tests) see the same behaviour without sockets. Each request is counted,
authenticated, checked against the fault switches and X's rate limits (:meth:`_begin`) before
it reads or writes the platform state.

:class:`XApiSurface` holds the endpoints only; :class:`~xbot_assets.sandbox.platform.SandboxX`
binds them to one platform state, audience engine and set of fault switches.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, overload

from xbot_assets.sandbox import errors
from xbot_assets.sandbox.audience import AudienceEngine
from xbot_assets.sandbox.clock import SimClock
from xbot_assets.sandbox.errors import SandboxError
from xbot_assets.sandbox.faults import Fault
from xbot_assets.sandbox.journal import locked
from xbot_assets.sandbox.render import (
    ANALYTICS_EXTENSION_FIELDS,
    ANALYTICS_FIELDS,
    POST_FIELDS,
    USER_FIELDS,
    analytics_metrics,
    choose_fields,
    iso,
    page_offset,
    page_token,
    parse_time,
    render_post,
    render_user,
    x_text,
)
from xbot_assets.sandbox.state import Account, PlatformState, Post

APP_BEARER_TOKEN = "sandbox-app-bearer-token"  # noqa: S105 - a public test value, not a secret
"""The app-only bearer token the sandbox accepts for reads."""

_ID = re.compile(r"[0-9]{1,19}")


class XApiSurface:
    """The X API v2 endpoints over a platform state (see the module docstring).

    A subclass provides the attributes below (``SandboxX`` sets them in its constructor) and
    :meth:`fault_active`, :meth:`store_post` and :meth:`_record`.
    """

    state: PlatformState
    audience: AudienceEngine
    clock: SimClock
    bearer_token: str
    counters: Counter[str]
    last_headers: dict[str, str]
    _windows: dict[tuple[str, str], tuple[datetime, int]]

    def fault_active(self, name: str, endpoint: str, *, consume: bool = True) -> Fault | None:
        raise NotImplementedError

    def store_post(
        self, account: Account, text: str, reply_to: str | None, *, replay: bool = False
    ) -> Post:
        raise NotImplementedError

    def _record(self, entry: dict[str, Any]) -> None:
        raise NotImplementedError

    # --- request plumbing --------------------------------------------------------------------
    @locked
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
        account = self.state.account_for_token(token)
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
        limits = dict(self.state.platform.get("rate_limits") or {})
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
    @locked
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
            post = self.store_post(account, text, reply_to)
        except SandboxError as exc:
            self.counters["posts_refused"] += 1
            raise self._fail(exc) from None
        self._record(
            {"op": "post", "handle": account.handle, "text": text, "reply_to": reply_to,
             "id": post.id}
        )  # fmt: skip
        if self.fault_active("lose_response", endpoint):
            raise self._fail(errors.unavailable())
        data = {"id": post.id, "text": x_text(post.text), "edit_history_tweet_ids": [post.id]}
        return {"data": data}

    @locked
    def web_create_tweet(self, text: str, reply_to: str | None, account: Account) -> Post:
        """The web compose box's write (the browser poster's path); same rules as the API."""
        body = self._create(text, reply_to, token=account.user_token, endpoint="web_create_tweet")
        return self.state.posts[body["data"]["id"]]

    @locked
    def delete_tweet(self, post_id: str, *, token: str | None) -> dict[str, Any]:
        """``DELETE /2/tweets/{id}``: ``{"data": {"deleted": true}}`` for the owner's post."""
        account = self._begin("delete_tweet", token, write=True)
        post = self.state.posts.get(str(post_id))
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

    # --- reads -------------------------------------------------------------------------------
    def _render(
        self, post: Post, fields: set[str], viewer: Account | None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        now = self.clock.now()
        return render_post(post, fields, viewer, self.audience.counts(post, now), now)

    def _lookup(
        self, ids: Sequence[str], fields: set[str], viewer: Account | None, parameter: str
    ) -> dict[str, Any]:
        found: list[Post | dict[str, Any]] = []
        for post_id in ids:
            post = self.state.posts.get(str(post_id))
            if post is None or post.deleted_at is not None:
                found.append(errors.not_found_item("tweet", str(post_id), parameter))
            else:
                found.append(post)
        return self._render_page(found, fields, viewer)

    def _render_page(
        self, entries: Sequence[Post | dict[str, Any]], fields: set[str], viewer: Account | None
    ) -> dict[str, Any]:
        """X's body for ``entries``: posts rendered; a problem (a missing id) keeps its place
        among the render's own problems."""
        data: list[dict[str, Any]] = []
        problems: list[dict[str, Any]] = []
        for entry in entries:
            if isinstance(entry, dict):
                problems.append(entry)
                continue
            item, item_problems = self._render(entry, fields, viewer)
            data.append(item)
            problems.extend(item_problems)
        return _body(data, problems)

    @locked
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
            id_list = _id_list(ids)
            if not id_list:
                raise errors.invalid_request("The `ids` query parameter can not be empty", "ids")
            if len(id_list) > 100:
                raise errors.invalid_request("The `ids` query parameter allows 1 to 100 ids", "ids")
            for post_id in id_list:
                _check_id(post_id, "ids")
            chosen = choose_fields(fields, POST_FIELDS, "tweet.fields")
        except SandboxError as exc:
            raise self._fail(exc) from None
        return self._lookup(id_list, chosen, viewer, "ids")

    @locked
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
            _check_id(str(post_id), "id")
            chosen = choose_fields(fields, POST_FIELDS, "tweet.fields")
        except SandboxError as exc:
            raise self._fail(exc) from None
        body = self._lookup([str(post_id)], chosen, viewer, "id")
        if "data" in body:
            body["data"] = body["data"][0]
        return body

    def _user(self, account: Account, fields: set[str]) -> dict[str, Any]:
        return render_user(account, fields, self.audience.followers_at(account, self.clock.now()))

    @locked
    def get_me(
        self, fields: str | Sequence[str] | None = None, *, token: str | None
    ) -> dict[str, Any]:
        """``GET /2/users/me`` (user token only)."""
        account = self._begin("get_users", token, write=False)
        if account is None:
            raise self._fail(errors.unsupported_authentication())
        try:
            chosen = choose_fields(fields, USER_FIELDS, "user.fields")
        except SandboxError as exc:
            raise self._fail(exc) from None
        return {"data": self._user(account, chosen)}

    @locked
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
            chosen = choose_fields(fields, USER_FIELDS, "user.fields")
        except SandboxError as exc:
            raise self._fail(exc) from None
        account = self.state.by_id.get(str(user_id))
        if account is None:
            return {"errors": [errors.not_found_item("user", str(user_id), "id")]}
        return {"data": self._user(account, chosen)}

    @locked
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
            chosen = choose_fields(fields, POST_FIELDS, "tweet.fields")
            excluded = choose_fields(exclude, frozenset({"replies", "retweets"}), "exclude")
            start, end = _time(start_time, "start_time"), _time(end_time, "end_time")
            for name, value in (("since_id", since_id), ("until_id", until_id)):
                if value is not None:
                    _check_id(str(value), name)
            offset = 0
            if pagination_token:
                try:
                    offset = page_offset(pagination_token)
                except ValueError:
                    raise errors.invalid_request(
                        "The `pagination_token` query parameter value is not valid",
                        "pagination_token",
                    ) from None
        except SandboxError as exc:
            raise self._fail(exc) from None
        account = self.state.by_id.get(str(user_id))
        if account is None:
            return {"errors": [errors.not_found_item("user", str(user_id), "id")]}
        posts = self.state.posts_of(account.handle)
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
        body = self._render_page(page, chosen, viewer)
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta["newest_id"] = page[0].id
            meta["oldest_id"] = page[-1].id
        if offset + size < len(posts):
            meta["next_token"] = page_token(offset + size)
        if offset > 0:
            meta["previous_token"] = page_token(max(offset - size, 0))
        return {"meta": meta, **body}

    @locked
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
            id_list = _id_list(ids)
            if not 1 <= len(id_list) <= 100:
                raise errors.invalid_request("The `ids` query parameter allows 1 to 100 ids", "ids")
            start, end = _time(start_time, "start_time"), _time(end_time, "end_time")
            if end <= start:
                raise errors.invalid_request("end_time must be after start_time", "end_time")
            if granularity not in ("hourly", "daily", "weekly", "total"):
                raise errors.invalid_request(
                    f"The `granularity` query parameter value [{granularity}] is not one of "
                    "[hourly, daily, weekly, total]",
                    "granularity",
                )
            chosen = choose_fields(
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
            post = self.state.posts.get(post_id)
            if post is None or post.deleted_at is not None:
                problems.append(errors.not_found_item("tweet", post_id, "ids"))
                continue
            if post.account is not viewer:
                problems.append(errors.not_authorized_item("tweet", post_id, "ids"))
                continue
            total = self._analytics(post, start, end, chosen)
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
                             "metrics": self._analytics(post, lo, hi, chosen)}
                        )  # fmt: skip
                item["timestamped_metrics"] = buckets
            data.append(item)
        return _body(data, problems)

    def _analytics(
        self, post: Post, start: datetime, end: datetime, chosen: set[str]
    ) -> dict[str, int]:
        hi = self.audience.counts(post, end).tolist()
        lo = self.audience.counts(post, start).tolist()
        return analytics_metrics(hi, lo, chosen, self.audience.unfollow)


def _body(data: list[dict[str, Any]], problems: list[dict[str, Any]]) -> dict[str, Any]:
    """X's body: ``data`` and ``errors`` only when not empty (a partial success has both)."""
    body: dict[str, Any] = {}
    if data:
        body["data"] = data
    if problems:
        body["errors"] = problems
    return body


def _check_id(value: str, name: str) -> None:
    """X's 400 for an id parameter that is not 1 to 19 digits."""
    if not _ID.fullmatch(value):
        raise errors.invalid_request(
            f"The `{name}` query parameter value [{value}] does not match ^[0-9]{{1,19}}$", name
        )


def _id_list(ids: Sequence[str] | str) -> list[str]:
    """A comma-separated ``ids`` parameter (or a list of them) as stripped, non-empty ids."""
    id_list = ids.split(",") if isinstance(ids, str) else [str(i) for i in ids]
    return [i.strip() for i in id_list if i.strip()]


@overload
def _time(value: str | datetime, name: str) -> datetime: ...
@overload
def _time(value: str | datetime | None, name: str) -> datetime | None: ...
def _time(value: str | datetime | None, name: str) -> datetime | None:
    """A time query parameter: an RFC 3339 text parsed (a bad one is the parameter's 400)."""
    return parse_time(value, name) if isinstance(value, str) else value
