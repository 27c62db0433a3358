"""JSON in and out of the sandbox's HTTP server: tokens, bodies, answers and the body-size limit.

Shared by the X API routes (:mod:`.server`), the admin routes (:mod:`.admin`) and kept apart from
both so each reads as routes only.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xbot_assets.sandbox import errors
from xbot_assets.sandbox.errors import SandboxError

MAX_BODY_BYTES = 64 * 1024
"""Largest request body served (a post is 280 characters; X's own limits are far below this)."""
ASCII_INT = re.compile(r"-?[0-9]{1,18}")
"""A whole number as text (what a query parameter or an admin body may carry for a count)."""


def bearer_token_of(request: Request) -> str | None:
    """The token of an ``Authorization`` header: ``Bearer <t>`` or OAuth 1.0a ``oauth_token``.

    OAuth 1.0a signatures are not verified (the sandbox only needs to know the account).
    """
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "oauth":
        for part in value.split(","):
            key, _, raw = part.strip().partition("=")
            if key == "oauth_token":
                return raw.strip().strip('"') or None
    return None


def json_response(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer with X's headers (rate limits) when given."""
    return JSONResponse(body, status_code=status, headers=headers or {})


def error_response(exc: SandboxError) -> Response:
    """X's error body, status and headers of a :class:`SandboxError`."""
    return json_response(exc.body, exc.status, exc.headers)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(raw: bytes, what: str = "The request body") -> Any:
    """The JSON document of a request body, or a 400 saying what is wrong with it.

    Refuses what Python's parser accepts but JSON does not (``NaN``, ``Infinity``), nesting too
    deep to parse (RecursionError) and strings that cannot be stored or answered as UTF-8 (a
    lone surrogate such as ``"\\ud800"``: stored, it broke every later timeline read).
    """
    try:
        payload = json.loads(raw or b"null", parse_constant=_reject_constant)
    except RecursionError:
        raise errors.invalid_request(f"{what} is nested too deeply.") from None
    except ValueError as exc:  # includes invalid UTF-8 (UnicodeDecodeError)
        raise errors.invalid_request(f"{what} is not valid JSON: {exc}"[:300]) from None
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise errors.invalid_request(
            f"{what} holds a lone surrogate (\\ud800-\\udfff without its pair): send valid "
            "Unicode text."
        ) from None
    except RecursionError:
        raise errors.invalid_request(f"{what} is nested too deeply.") from None
    return payload


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Answer 413 to a body over ``limit`` bytes at once, without reading the rest of it.

    Checked on ``Content-Length`` before the app runs and again while a chunked body arrives.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge
            return message

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watch)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = errors.invalid_request(
            f"The request body is larger than {self.limit} bytes (or its Content-Length is not "
            "a number): send a smaller body."
        )
        body = {**exc.body, "status": 413, "title": "Payload Too Large"}
        response = JSONResponse(body, status_code=413, headers={"connection": "close"})
        await response(scope, receive, send)
