"""The ``sandbox`` poster: in-process calls to :class:`~xbot_assets.sandbox.platform.SandboxX`.

The embedded default and the fast path of tests and benchmarks: no sockets, the same JSON
bodies and errors as the X API (the sandbox raises X's error bodies, which are mapped through the
very same code as the HTTP client's, so every outcome matches the ``api`` poster's).
"""

from __future__ import annotations

from typing import Any

import httpx

from xbot_assets.posting.api_poster import _parse_time, posting_error_from_x
from xbot_assets.posting.base import (
    OwnPost,
    PosterBase,
    PosterKindName,
    PostResult,
    SessionStatus,
    text_from_x,
)
from xbot_assets.xapi.errors import error_from_response


def _posting_error(exc: Any, *, method: str, path: str) -> Exception:
    """Map a ``SandboxError`` (status, X's body, headers) like an HTTP answer from X."""
    response = httpx.Response(
        exc.status,
        json=exc.body,
        headers=exc.headers,
        request=httpx.Request(method, f"http://sandbox.invalid{path}"),
    )
    return posting_error_from_x(error_from_response(response, is_write=method != "GET"))


class SandboxPoster(PosterBase):
    """Posts for one sandbox account through the in-process platform.

    Args:
        sandbox: the ``SandboxX`` instance (shared with the rest of the embedded run).
        handle: the account (default: the scenario's own account).
    """

    kind: PosterKindName = "sandbox"

    def __init__(self, sandbox: Any, *, handle: str | None = None) -> None:
        self.sandbox = sandbox
        self.account = sandbox.account(handle)

    @classmethod
    def from_settings(cls, settings: Any, *, sandbox: Any = None) -> SandboxPoster:
        """A poster for ``settings.x_handle`` (a new sandbox from the scenario if none given)."""
        if sandbox is None:
            from xbot_assets.sandbox.platform import SandboxX

            sandbox = SandboxX(scenario=settings.sandbox_scenario, seed=settings.sandbox_seed)
        handle = settings.x_handle
        try:
            sandbox.account(handle)
        except KeyError:
            handle = None
        return cls(sandbox, handle=handle)

    @property
    def targets_loopback(self) -> bool:
        return True

    def post(self, text: str, *, reply_to: str | None = None) -> PostResult:
        from xbot_assets.sandbox.errors import SandboxError

        try:
            body = self.sandbox.create_tweet(text, reply_to, token=self.account.user_token)
        except SandboxError as exc:
            raise _posting_error(exc, method="POST", path="/2/tweets") from None
        data = body["data"]
        return PostResult(
            x_id=str(data["id"]), text=text_from_x(str(data["text"])), raw={"via": "sandbox"}
        )

    def recent_own_posts(self, *, limit: int = 100) -> list[OwnPost]:
        from xbot_assets.sandbox.errors import SandboxError

        out: list[OwnPost] = []
        token: str | None = None
        while len(out) < limit:
            try:
                body = self.sandbox.get_user_tweets(
                    self.account.id,
                    max_results=100,
                    pagination_token=token,
                    fields="created_at,referenced_tweets",
                    token=self.account.user_token,
                )
            except SandboxError as exc:
                raise _posting_error(
                    exc, method="GET", path=f"/2/users/{self.account.id}/tweets"
                ) from None
            for item in body.get("data") or []:
                parent = next(
                    (
                        str(r["id"])
                        for r in item.get("referenced_tweets") or []
                        if r.get("type") == "replied_to"
                    ),
                    None,
                )
                out.append(
                    OwnPost(
                        x_id=str(item["id"]),
                        text=text_from_x(str(item.get("text", ""))),
                        created_at=_parse_time(item.get("created_at")),
                        in_reply_to=parent,
                    )
                )
            token = (body.get("meta") or {}).get("next_token")
            if not token:
                break
        return out[:limit]

    def check_session(self) -> SessionStatus:
        return SessionStatus(ok=True, user_id=self.account.id, handle=self.account.handle)

    def close(self) -> None:
        """Nothing to release: the sandbox belongs to the caller."""
