"""The poster protocol and the outcomes every poster maps its failures to.

A poster is the thing that makes one post appear on X (or the sandbox). The posting service
(:mod:`xbot_assets.posting.service`) owns the at-most-once protocol; posters only act and report
precisely what happened, in the transport-independent vocabulary of this module:

- :class:`PostResult`: it worked, here is X's id for the new post (read from X, never invented);
- a :class:`PostingError` subclass otherwise, whose ``may_have_posted`` says whether the post might
  exist anyway (timeout after sending, server error): the service then leaves the row in
  ``posting`` for the reconciler instead of retrying into a duplicate.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

PosterKindName = Literal["sandbox", "api", "browser"]


@dataclass(frozen=True)
class PostResult:
    """A post that X accepted.

    Attributes:
        x_id: the new post's id as X reported it.
        text: the text X stored (may differ in whitespace from what was sent).
        posted_at: when X says it was created, if it said.
        raw: a small, secret-free summary of the answer (for the audit log).
    """

    x_id: str
    text: str
    posted_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OwnPost:
    """One post on the account's own timeline (what the reconciler compares against)."""

    x_id: str
    text: str
    created_at: datetime | None = None
    in_reply_to: str | None = None


@dataclass(frozen=True)
class SessionStatus:
    """Whether the poster can act for the account right now, and why not."""

    ok: bool
    reason: str = ""
    user_id: str | None = None
    handle: str | None = None


class PostingError(Exception):
    """A post did not (certainly) happen.

    Attributes:
        may_have_posted: True when the post might exist on X despite the error.
        retry_after: when the same action may be tried again (rate limits), if known.
        stop_posting: True when the whole account must stop (brake + alert), not just this post.
    """

    may_have_posted: bool = False
    stop_posting: bool = False
    outcome: str = "error"

    def __init__(
        self,
        message: str,
        *,
        may_have_posted: bool | None = None,
        retry_after: datetime | None = None,
    ) -> None:
        super().__init__(message)
        if may_have_posted is not None:
            self.may_have_posted = may_have_posted
        self.retry_after = retry_after


class DuplicateRefused(PostingError):
    """X refused the text as a duplicate of a post already on the account."""

    outcome = "duplicate"


class RateLimited(PostingError):
    """X said too many requests: back off until ``retry_after``."""

    outcome = "rate_limited"


class AutomationBlocked(PostingError):
    """X's automation block (226): stop posting, raise the brake, alert a person."""

    outcome = "automation_block"
    stop_posting = True


class AuthFailed(PostingError):
    """The credentials or session are not valid: stop and alert; a person must fix them."""

    outcome = "auth_failed"
    stop_posting = True


class SessionExpired(AuthFailed):
    """The browser session is logged out (the saved storage state no longer works)."""

    outcome = "session_expired"


class LoginChallenge(AuthFailed):
    """X asks for a verification step: never guess through it; a person must log in."""

    outcome = "login_challenge"


class WrongAccount(AuthFailed):
    """The session is logged in as another account: posting would put the post on that account."""

    outcome = "wrong_account"


class PostTimeout(PostingError):
    """No answer in time after sending: the post may exist."""

    outcome = "timeout"
    may_have_posted = True


class ServerFailed(PostingError):
    """X failed (5xx or an answer without an id); for a write the post may exist."""

    outcome = "server_error"
    may_have_posted = True


class NotSent(PostingError):
    """The action never reached X (connection refused, compose box missing before submit)."""

    outcome = "not_sent"


class Rejected(PostingError):
    """X refused this post for good (too long, forbidden); retrying the same text will not help."""

    outcome = "rejected"


@runtime_checkable
class Poster(Protocol):
    """What every poster offers; the posting service and the reconciler need nothing else."""

    kind: PosterKindName

    @property
    def targets_loopback(self) -> bool:
        """True when this poster can only reach a local sandbox (never the real X)."""
        ...

    def post(self, text: str, *, reply_to: str | None = None) -> PostResult:
        """Publish ``text`` (as a reply to ``reply_to`` for thread parts) and return X's id.

        Raises:
            PostingError: a subclass naming what happened.
        """
        ...

    def recent_own_posts(self, *, limit: int = 100) -> list[OwnPost]:
        """The account's most recent posts, newest first (timeline or profile page)."""
        ...

    def find_own_post(
        self, text: str, *, reply_to: str | None = None, exclude: Collection[str] = ()
    ) -> OwnPost | None:
        """The account's own recent post with this text (and reply parent), if any, other than
        the X ids ``exclude`` names (those other rows of the store already hold)."""
        ...

    def check_session(self) -> SessionStatus:
        """Whether the credentials or session work, without posting anything."""
        ...

    def close(self) -> None:
        """Release connections and browsers."""
        ...


class PosterBase:
    """Shared behaviour: :meth:`find_own_post` on top of :meth:`recent_own_posts`."""

    timeline_limit: int = 100

    def recent_own_posts(self, *, limit: int = 100) -> list[OwnPost]:  # pragma: no cover
        raise NotImplementedError

    def find_own_post(
        self, text: str, *, reply_to: str | None = None, exclude: Collection[str] = ()
    ) -> OwnPost | None:
        return match_own_post(
            self.recent_own_posts(limit=self.timeline_limit),
            text,
            reply_to=reply_to,
            exclude=exclude,
        )


def text_from_x(raw: str) -> str:
    """A post's text as it was typed, from the text X's API returns: X escapes ``&``, ``<`` and
    ``>`` as HTML entities in every post text it answers with (``&amp;``, ``&lt;``, ``&gt;``), so
    a post "Tips & tricks" reads back as "Tips &amp; tricks" and would not match its row."""
    return html.unescape(raw)


URL = re.compile(r"https?://\S+", re.IGNORECASE)
"""A link in a post's text: X shows every link as a t.co link of its own."""


def normalise_for_match(text: str) -> str:
    """Text as compared when looking for our own post: links masked, whitespace collapsed, NFC,
    casefolded.

    X may trim or normalise whitespace and replaces each link by a t.co link, so exact equality
    is too strict; the reconciler also requires the same reply parent for thread parts.
    """
    return " ".join(URL.sub("<link>", unicodedata.normalize("NFC", text)).split()).casefold()


def match_own_post(
    posts: list[OwnPost],
    text: str,
    *,
    reply_to: str | None = None,
    exclude: Collection[str] = (),
) -> OwnPost | None:
    """Find ``text`` among the account's posts: a reply to ``reply_to`` when given (or a post
    whose parent the poster cannot see), else not a reply, and never a post ``exclude`` names.

    Why ``exclude``: text alone does not identify a post. A thread may open with the text of an
    earlier single post, and two threads may close with the same line; the X ids other rows of
    the store already hold are someone else's, and adopting one would record a post X never got
    (the next part would then reply to the old post)."""
    wanted = normalise_for_match(text)
    for own in posts:
        if own.x_id in exclude or normalise_for_match(own.text) != wanted:
            continue
        if reply_to is None and own.in_reply_to is not None:
            continue  # a root is not a reply
        if reply_to is not None and own.in_reply_to not in (None, reply_to):
            continue
        return own
    return None
