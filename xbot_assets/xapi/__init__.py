"""The shared X API v2 client (see :mod:`xbot_assets.xapi.client` for why httpx directly)."""

from xbot_assets.xapi.client import (
    MAX_IDS_PER_LOOKUP,
    BearerAuth,
    CreatedTweet,
    OAuth1Auth,
    TweetsPage,
    XApiClient,
    user_auth_from_settings,
)
from xbot_assets.xapi.errors import (
    RateLimit,
    XApiError,
    XAuthError,
    XAutomationBlockedError,
    XBadRequestError,
    XConnectionError,
    XDuplicateContentError,
    XForbiddenError,
    XNotFoundError,
    XRateLimitError,
    XServerError,
    XTimeoutError,
)
from xbot_assets.xapi.oauth1 import OAuth1Credentials

__all__ = [
    "MAX_IDS_PER_LOOKUP",
    "BearerAuth",
    "CreatedTweet",
    "OAuth1Auth",
    "OAuth1Credentials",
    "RateLimit",
    "TweetsPage",
    "XApiClient",
    "XApiError",
    "XAuthError",
    "XAutomationBlockedError",
    "XBadRequestError",
    "XConnectionError",
    "XDuplicateContentError",
    "XForbiddenError",
    "XNotFoundError",
    "XRateLimitError",
    "XServerError",
    "XTimeoutError",
    "user_auth_from_settings",
]
