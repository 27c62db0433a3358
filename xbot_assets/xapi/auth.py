"""How the X API client authenticates: bearer tokens and OAuth 1.0a signing, with masked reprs.

Secrets never appear in a message or ``repr`` of this module.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import httpx

from xbot_assets.xapi.oauth1 import OAuth1Credentials, authorization_header


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
