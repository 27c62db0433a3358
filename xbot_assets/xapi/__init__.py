"""The shared X API v2 client (see :mod:`xbot_assets.xapi.client` for why httpx directly): the
client, its auth (``auth``), its answers' types (``models``), errors and the call budget."""

from xbot_assets.xapi.auth import BearerAuth, OAuth1Auth, user_auth_from_settings
from xbot_assets.xapi.client import XApiClient
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
from xbot_assets.xapi.models import (
    MAX_IDS_PER_ANALYTICS,
    MAX_IDS_PER_LOOKUP,
    AnalyticsBucket,
    AnalyticsMetrics,
    AnalyticsPage,
    CreatedTweet,
    TweetAnalytics,
    TweetsPage,
    parse_analytics,
)
from xbot_assets.xapi.oauth1 import OAuth1Credentials

__all__ = [
    "MAX_IDS_PER_ANALYTICS",
    "MAX_IDS_PER_LOOKUP",
    "AnalyticsBucket",
    "AnalyticsMetrics",
    "AnalyticsPage",
    "BearerAuth",
    "CreatedTweet",
    "OAuth1Auth",
    "OAuth1Credentials",
    "RateLimit",
    "TweetAnalytics",
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
    "parse_analytics",
    "user_auth_from_settings",
]
