"""OAuth 1.0a (HMAC-SHA1) request signing for X's user-context endpoints.

X still accepts OAuth 1.0a user tokens ("UserToken" in the OpenAPI spec) for writes. No OAuth 1
library is pinned in the project, and the algorithm is small and fully specified (RFC 5849,
section 3.4), so it lives here with tests against the published worked examples rather than as a
new dependency. JSON request bodies are not part of the signature (only form bodies would be), so
signing needs the method, the URL and its query parameters.

Secrets never leave this module in text form: :class:`OAuth1Credentials` masks its ``repr``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding as OAuth 1 requires (only unreserved characters stay)."""
    return quote(value, safe="~-._")


@dataclass(frozen=True)
class OAuth1Credentials:
    """The four secrets of an OAuth 1.0a user context (app key pair and user token pair)."""

    consumer_key: str = field(repr=False)
    consumer_secret: str = field(repr=False)
    token: str = field(repr=False)
    token_secret: str = field(repr=False)

    def __repr__(self) -> str:
        return "OAuth1Credentials(***)"


def normalized_url(url: str) -> str:
    """Scheme and host lower-cased, default port dropped, no query (RFC 5849 3.4.1.2)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", "", ""))


def signature_base_string(method: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The text that gets signed: method, normalised URL and sorted encoded parameters."""
    encoded = sorted((percent_encode(k), percent_encode(v)) for k, v in params)
    param_string = "&".join(f"{k}={v}" for k, v in encoded)
    return "&".join(
        (method.upper(), percent_encode(normalized_url(url)), percent_encode(param_string))
    )


def hmac_sha1_signature(base_string: str, consumer_secret: str, token_secret: str) -> str:
    """Base64 HMAC-SHA1 of the base string keyed by both secrets."""
    key = f"{percent_encode(consumer_secret)}&{percent_encode(token_secret)}"
    digest = hmac.new(key.encode(), base_string.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def authorization_header(
    credentials: OAuth1Credentials,
    method: str,
    url: str,
    query_params: Iterable[tuple[str, str]] = (),
    *,
    nonce: str | None = None,
    timestamp: int | None = None,
) -> str:
    """The ``Authorization: OAuth ...`` header value for one request.

    Args:
        credentials: the user-context secrets.
        method: HTTP method.
        url: request URL (its query string, if any, is signed too).
        query_params: extra parameters to sign (form fields; not JSON bodies).
        nonce: fixed nonce for tests; random otherwise.
        timestamp: fixed timestamp for tests; now otherwise.
    """
    oauth_params = {
        "oauth_consumer_key": credentials.consumer_key,
        "oauth_nonce": nonce or secrets.token_hex(16),
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": str(timestamp if timestamp is not None else int(time.time())),
        "oauth_token": credentials.token,
        "oauth_version": "1.0",
    }
    url_params = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    all_params = [*url_params, *query_params, *oauth_params.items()]
    base = signature_base_string(method, url, all_params)
    oauth_params["oauth_signature"] = hmac_sha1_signature(
        base, credentials.consumer_secret, credentials.token_secret
    )
    return "OAuth " + ", ".join(
        f'{percent_encode(k)}="{percent_encode(v)}"' for k, v in sorted(oauth_params.items())
    )
