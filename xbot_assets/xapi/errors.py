"""Typed errors of the X API client, one per outcome the posting layer must treat differently.

Every error says whether the request may have reached X and taken effect
(:attr:`XApiError.may_have_taken_effect`): a write that timed out after sending, or that got a
5xx, might have created the post anyway, so the poster must leave it for the reconciler instead of
retrying. Messages carry X's title and detail (never a header, token or request body).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx


@dataclass(frozen=True)
class RateLimit:
    """The ``x-rate-limit-*`` headers of one response (``None`` where a header is absent)."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: datetime | None = None

    @classmethod
    def from_headers(cls, headers: httpx.Headers | dict[str, str]) -> RateLimit:
        """Parse the three headers; malformed values count as absent rather than failing."""

        def as_int(name: str) -> int | None:
            raw = headers.get(name)
            if raw is None:
                return None
            try:
                return int(str(raw).strip())
            except ValueError:
                return None

        reset = as_int("x-rate-limit-reset")
        return cls(
            limit=as_int("x-rate-limit-limit"),
            remaining=as_int("x-rate-limit-remaining"),
            reset_at=datetime.fromtimestamp(reset, tz=UTC) if reset is not None else None,
        )

    def seconds_until_reset(self, now: datetime | None = None) -> float | None:
        """How long to wait for the window to reset (never negative), or None if unknown."""
        if self.reset_at is None:
            return None
        now = now or datetime.now(UTC)
        return max(0.0, (self.reset_at - now).total_seconds())


class XApiError(Exception):
    """Base class: a request to the X API failed.

    Attributes:
        status: HTTP status, or None when no response arrived.
        title: X's short title (``Forbidden``, ``Too Many Requests``, ...).
        detail: X's human explanation.
        codes: legacy numeric error codes found in the body (e.g. 226, 187).
        rate_limit: the rate-limit headers of the failed response, if any.
        may_have_taken_effect: True when a write might have been applied despite the error.
    """

    may_have_taken_effect: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        title: str | None = None,
        detail: str | None = None,
        codes: tuple[int, ...] = (),
        rate_limit: RateLimit | None = None,
        may_have_taken_effect: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.detail = detail
        self.codes = codes
        self.rate_limit = rate_limit or RateLimit()
        if may_have_taken_effect is not None:
            self.may_have_taken_effect = may_have_taken_effect


class XAuthError(XApiError):
    """401 (or 403 naming the credentials): the token is missing, expired or lacks a scope."""


class XForbiddenError(XApiError):
    """403 for another reason (not duplicate, not automation): the action is not allowed."""


class XDuplicateContentError(XForbiddenError):
    """X refused the post because the account already posted the same text (legacy code 187)."""


class XAutomationBlockedError(XForbiddenError):
    """X's automation block (legacy code 226): stop all posting and alert a person."""


class XRateLimitError(XApiError):
    """429: back off until :attr:`rate_limit.reset_at` (or a safe default if X gave none)."""


class XNotFoundError(XApiError):
    """404 or a resource-not-found problem."""


class XBadRequestError(XApiError):
    """400: the request itself is wrong (too long, bad id); retrying the same one will not help."""


class XServerError(XApiError):
    """5xx: X failed; a write may still have gone through (X is known to do that)."""

    may_have_taken_effect = True


class XTimeoutError(XApiError):
    """No answer in time after the request was sent: a write's outcome is unknown."""

    may_have_taken_effect = True


class XConnectionError(XApiError):
    """The connection could not be made: the request never left, nothing happened on X."""


DUPLICATE_CODE = 187
AUTOMATION_CODE = 226


def _legacy_codes(body: Any) -> tuple[int, ...]:
    codes: list[int] = []
    if isinstance(body, dict):
        for err in body.get("errors") or []:
            if isinstance(err, dict) and isinstance(err.get("code"), int):
                codes.append(err["code"])
        if isinstance(body.get("code"), int):
            codes.append(body["code"])
    return tuple(codes)


def _text_fields(body: Any) -> tuple[str | None, str | None]:
    """X's ``title`` and ``detail`` (problem+json), or the first legacy ``message``."""
    if not isinstance(body, dict):
        return None, None
    title = body.get("title") if isinstance(body.get("title"), str) else None
    detail = body.get("detail") if isinstance(body.get("detail"), str) else None
    if detail is None:
        for err in body.get("errors") or []:
            if isinstance(err, dict):
                text = err.get("detail") or err.get("message")
                if isinstance(text, str):
                    detail = text
                    break
    if detail is None and isinstance(body.get("message"), str):
        detail = body["message"]
    return title, detail


def error_from_response(response: httpx.Response, *, is_write: bool) -> XApiError:
    """Map an unsuccessful X response to the typed error the caller should handle.

    Args:
        response: the HTTP response with status >= 400.
        is_write: whether the request changes state (a 5xx then may have taken effect).
    """
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    status = response.status_code
    title, detail = _text_fields(body)
    codes = _legacy_codes(body)
    rate_limit = RateLimit.from_headers(response.headers)
    text = (detail or "").lower()
    where = f"{response.request.method} {response.request.url.path}"
    summary = f"X API {where} answered {status}"
    if title or detail:
        summary += f": {title or ''}{' - ' if title and detail else ''}{detail or ''}"
    kwargs: dict[str, Any] = {
        "status": status,
        "title": title,
        "detail": detail,
        "codes": codes,
        "rate_limit": rate_limit,
    }
    if AUTOMATION_CODE in codes or "automated" in text:
        return XAutomationBlockedError(
            summary + " (automation block: posting stops and the brake is raised)", **kwargs
        )
    if DUPLICATE_CODE in codes or "duplicate content" in text:
        return XDuplicateContentError(summary, **kwargs)
    if status == 429:
        wait = rate_limit.seconds_until_reset()
        hint = f"; retry after {wait:.0f} s" if wait is not None else ""
        return XRateLimitError(summary + hint, **kwargs)
    if status == 401 or (status == 403 and "authenticat" in (title or "").lower()):
        return XAuthError(summary + " (check the X credentials in the settings)", **kwargs)
    if status == 403:
        return XForbiddenError(summary, **kwargs)
    if status == 404:
        return XNotFoundError(summary, **kwargs)
    if status >= 500:
        return XServerError(summary, may_have_taken_effect=is_write, **kwargs)
    if status == 400:
        return XBadRequestError(summary, **kwargs)
    return XApiError(summary, **kwargs)
