"""The ``api`` poster: X API v2 ``POST /2/tweets`` through :class:`xbot_assets.xapi.XApiClient`.

The default poster in production, and the same code against the sandbox's HTTP API in tests
(only the base URL differs). Thread parts are replies (``reply.in_reply_to_tweet_id``). Each X
error becomes the posting outcome the service acts on (see :mod:`xbot_assets.posting.base`).
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from xbot_assets.posting.base import (
    AuthFailed,
    AutomationBlocked,
    DuplicateRefused,
    NotSent,
    OwnPost,
    PosterBase,
    PosterKindName,
    PostingError,
    PostResult,
    PostTimeout,
    RateLimited,
    Rejected,
    ServerFailed,
    SessionStatus,
    text_from_x,
)
from xbot_assets.xapi import (
    XApiClient,
    XApiError,
    XAuthError,
    XAutomationBlockedError,
    XBadRequestError,
    XConnectionError,
    XDuplicateContentError,
    XForbiddenError,
    XRateLimitError,
    XServerError,
    XTimeoutError,
)

DEFAULT_RATE_LIMIT_BACKOFF = timedelta(minutes=15)
"""X's windows are 15 minutes: the wait when a 429 carries no reset header."""

LOOPBACK_NAMES = frozenset({"localhost"})
"""The only host names taken as loopback; every other name may resolve anywhere."""


def is_loopback_url(url: str) -> bool:
    """True for a URL on this machine (the sandbox), never for X.

    Decided by the address, not the text: a literal IP counts when :mod:`ipaddress` calls it
    loopback (127.0.0.0/8, ::1, ::ffff:127.x), a name only when it is ``localhost``. A name such
    as ``127.x.com`` is not resolved (DNS could change its answer later), so it is not loopback.
    """
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    if host.rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def posting_error_from_x(exc: XApiError, *, now: datetime | None = None) -> PostingError:
    """Translate a typed X API error into the posting outcome (one place for the mapping)."""
    message = str(exc)
    if isinstance(exc, XAutomationBlockedError):
        return AutomationBlocked(message)
    if isinstance(exc, XDuplicateContentError):
        return DuplicateRefused(message)
    if isinstance(exc, XRateLimitError):
        now = now or datetime.now(UTC)
        reset = exc.rate_limit.reset_at
        retry_after = reset if reset is not None and reset > now else None
        return RateLimited(message, retry_after=retry_after or now + DEFAULT_RATE_LIMIT_BACKOFF)
    if isinstance(exc, XAuthError):
        return AuthFailed(message)
    if isinstance(exc, XTimeoutError):
        return PostTimeout(message, may_have_posted=exc.may_have_taken_effect)
    if isinstance(exc, XServerError):
        return ServerFailed(message, may_have_posted=exc.may_have_taken_effect)
    if isinstance(exc, XConnectionError):
        return NotSent(message)
    if isinstance(exc, XBadRequestError | XForbiddenError):
        return Rejected(message)
    return PostingError(message, may_have_posted=exc.may_have_taken_effect)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


class ApiPoster(PosterBase):
    """Posts through the X API v2 for one account.

    Args:
        client: the X API client (base URL and credentials already set).
        user_id: the account's X id; looked up once with ``GET /2/users/me`` when not given.
    """

    kind: PosterKindName = "api"

    def __init__(self, client: XApiClient, *, user_id: str | None = None) -> None:
        self.client = client
        self._user_id = user_id

    @property
    def targets_loopback(self) -> bool:
        return is_loopback_url(self.client.base_url)

    @property
    def user_id(self) -> str:
        """The account's id (``GET /2/users/me`` on first use when not configured)."""
        if self._user_id is None:
            try:
                self._user_id = str(self.client.get_me(user_fields=())["id"])
            except XApiError as exc:
                raise posting_error_from_x(exc) from None
        return self._user_id

    def post(self, text: str, *, reply_to: str | None = None) -> PostResult:
        try:
            created = self.client.create_tweet(text, reply_to=reply_to)
        except XApiError as exc:
            raise posting_error_from_x(exc) from None
        return PostResult(x_id=created.id, text=text_from_x(created.text), raw={"via": "api"})

    def recent_own_posts(self, *, limit: int = 100) -> list[OwnPost]:
        fields = ("created_at", "referenced_tweets", "in_reply_to_user_id")
        out: list[OwnPost] = []
        try:
            for item in self.client.iter_user_tweets(
                self.user_id,
                max_pages=max(1, (limit + 99) // 100),
                max_results=min(100, max(5, limit)),
                tweet_fields=fields,
            ):
                parent = None
                for ref in item.get("referenced_tweets") or []:
                    if isinstance(ref, dict) and ref.get("type") == "replied_to":
                        parent = str(ref.get("id"))
                out.append(
                    OwnPost(
                        x_id=str(item["id"]),
                        text=text_from_x(str(item.get("text", ""))),
                        created_at=_parse_time(item.get("created_at")),
                        in_reply_to=parent,
                    )
                )
                if len(out) >= limit:
                    break
        except XApiError as exc:
            raise posting_error_from_x(exc) from None
        return out

    def check_session(self) -> SessionStatus:
        try:
            me = self.client.get_me(user_fields=())
        except XApiError as exc:
            return SessionStatus(ok=False, reason=str(exc))
        self._user_id = self._user_id or str(me.get("id"))
        return SessionStatus(ok=True, user_id=str(me.get("id")), handle=me.get("username"))

    def close(self) -> None:
        self.client.close()
