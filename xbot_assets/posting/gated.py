"""A poster whose X API calls pass the X API gate (15-minute limiter and monthly budget).

Posting stops before the month's write budget runs out: a write the gate refuses is never sent
and comes back as :class:`RateLimited` with the time it may be tried again (the next window, or
the first of next month), which the posting service already handles by releasing the post
until then. The reconciler's timeline reads and the API session check count as reads.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from xbot_assets.posting.base import (
    OwnPost,
    PostResult,
    RateLimited,
    SessionStatus,
    match_own_post,
)
from xbot_assets.store.budget import CallKind


class GatedPoster:
    """Wraps a poster (``api`` or ``sandbox``: both speak X API v2) with an ``XApiGate``."""

    timeline_limit: int = 100

    def __init__(self, poster: Any, gate: Any) -> None:
        self.poster = poster
        self.gate = gate
        self.kind = poster.kind

    @property
    def targets_loopback(self) -> bool:
        return bool(self.poster.targets_loopback)

    def _take(self, kind: CallKind, calls: int = 1) -> None:
        decision = self.gate.acquire(kind, calls)
        if not decision.allowed:
            raise RateLimited(
                f"X API {kind} not made: the budget refused it ({decision.reason})",
                retry_after=decision.retry_at,
            )

    def post(self, text: str, *, reply_to: str | None = None) -> PostResult:
        self._take("write")
        result: PostResult = self.poster.post(text, reply_to=reply_to)
        return result

    def recent_own_posts(self, *, limit: int = 100) -> list[OwnPost]:
        self._take("read", max(1, math.ceil(limit / 100)))  # one timeline page per 100
        posts: list[OwnPost] = self.poster.recent_own_posts(limit=limit)
        return posts

    def find_own_post(
        self, text: str, *, reply_to: str | None = None, exclude: Collection[str] = ()
    ) -> OwnPost | None:
        return match_own_post(
            self.recent_own_posts(limit=self.timeline_limit),
            text,
            reply_to=reply_to,
            exclude=exclude,
        )

    def check_session(self) -> SessionStatus:
        if self.kind == "api":  # GET /2/users/me; the sandbox poster checks without a call
            self._take("read")
        session: SessionStatus = self.poster.check_session()
        return session

    def close(self) -> None:
        self.poster.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.poster, name)
