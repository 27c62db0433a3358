"""Features of a post for the scorer: what the text is, when it went out, and what came before.

One function, :func:`post_features`, turns rows of ``fct_post_outcomes`` (or a candidate that has
not been posted yet, as a dict) into the columns of :data:`FEATURE_SCHEMA`; the scorer saves that
schema with the model so a model never scores columns it was not trained on. Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from xbot_assets.learning.rewards import engagement_reward

FEATURE_VERSION = "1"
"""Bumped whenever a feature changes meaning: a saved model with another version is refused."""

CATEGORICAL_FEATURES: tuple[str, ...] = (
    "format",
    "topic",
    "hook_type",
    "length_bucket",
    "daypart",
    "weekday_local",
)
NUMERIC_FEATURES: tuple[str, ...] = (
    "n_hashtags",
    "has_link",
    "has_question",
    "has_number",
    "thread_length",
    "hour_sin",
    "hour_cos",
    "is_weekend",
    "log_hours_since_topic",
)
FEATURE_SCHEMA: dict[str, Any] = {
    "version": FEATURE_VERSION,
    "categorical": list(CATEGORICAL_FEATURES),
    "numeric": list(NUMERIC_FEATURES),
}

LENGTH_BUCKETS = ((80, "short"), (160, "medium"), (240, "long"))
NO_RECENT_TOPIC_HOURS = 24.0 * 30
"""Hours-since-topic used when the account never posted on the topic (a month: 'long ago')."""

_NUMBER = re.compile(r"\d")
_HASHTAG = re.compile(r"(?<!\w)#\w+")
_LINK = re.compile(r"https?://", re.IGNORECASE)


def hook_type_of(text: str) -> str:
    """The opening move of a post, from its first line (when the warehouse did not record it)."""
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    lowered = first.lower()
    if lowered.startswith(("hot take:", "unpopular opinion:")):
        return "contrarian"
    if lowered.startswith("how to"):
        return "how_to"
    if re.match(r"^\d", first):
        return "number"
    if first.rstrip().endswith("?"):
        return "question"
    if lowered.startswith(("i ", "i'", "my ", "we ")):
        return "story"
    return "statement"


def length_bucket(text_length: float) -> str:
    for limit, name in LENGTH_BUCKETS:
        if text_length < limit:
            return name
    return "very_long"


def daypart(hour: int) -> str:
    """Coarse time of day: enough levels to learn from, few enough to estimate."""
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 22:
        return "evening"
    return "night"


def _local_time(posted_at: Any, tz: ZoneInfo) -> datetime | None:
    if posted_at is None or (isinstance(posted_at, float) and math.isnan(posted_at)):
        return None
    stamp = pd.Timestamp(posted_at)
    if stamp is pd.NaT:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.tz_convert(tz).to_pydatetime()


def hours_since_same_topic(frame: pd.DataFrame) -> pd.Series:
    """Hours since the same account last posted on the same topic (NaN for the first one)."""
    if frame.empty:
        return pd.Series(dtype=float)
    stamps = pd.to_datetime(frame["posted_at"], utc=True)
    keys = [frame["account"] if "account" in frame else pd.Series("", index=frame.index)]
    keys.append(frame["topic"])
    ordered = stamps.sort_values(kind="stable")
    previous = ordered.groupby([k.loc[ordered.index] for k in keys]).shift(1)
    hours = (ordered - previous).dt.total_seconds() / 3600.0
    return hours.reindex(frame.index)


def post_features(
    posts: pd.DataFrame | Mapping[str, Any] | Iterable[Mapping[str, Any]],
    *,
    timezone: str = "UTC",
    last_topic_post_at: Mapping[str, datetime] | None = None,
    now: datetime | None = None,
) -> pd.DataFrame:
    """Feature frame (columns of :data:`FEATURE_SCHEMA`, same index) for posts or candidates.

    Args:
        posts: rows with (a subset of) the ``fct_post_outcomes`` columns; ``text`` fills in
            whatever is missing (length, hashtags, link, question, number, hook type).
        timezone: the account's IANA time zone, for hour and weekday when ``posted_at`` is
            given without ``hour_local``/``weekday_local``.
        last_topic_post_at: for candidates (one dict), when the account last posted per topic.
        now: the candidate's planned time (for candidates without ``posted_at``).

    Raises:
        ValueError: on an unknown time zone or rows missing both ``format`` and ``text``.
    """
    if isinstance(posts, pd.DataFrame):
        frame = posts.copy()
    elif isinstance(posts, Mapping):
        frame = pd.DataFrame([dict(posts)])
    else:
        frame = pd.DataFrame([dict(p) for p in posts])
    try:
        tz = ZoneInfo(timezone)
    except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(
            f"unknown time zone {timezone!r}: set ACCOUNT_TIMEZONE to an IANA name "
            "such as Europe/Paris"
        ) from exc
    n = len(frame)
    text = frame["text"].fillna("").astype(str) if "text" in frame else pd.Series([""] * n)
    text.index = frame.index
    if "format" not in frame and "text" not in frame:
        raise ValueError("posts need a 'format' column (or 'text' to infer the rest)")

    def column(name: str, default: Any) -> pd.Series:
        if name in frame:
            return frame[name]
        return pd.Series([default] * n, index=frame.index)

    out = pd.DataFrame(index=frame.index)
    out["format"] = column("format", "single").fillna("single").astype(str)
    out["topic"] = column("topic", "other").fillna("other").astype(str)
    hooks = column("hook_type", None)
    out["hook_type"] = [
        str(h) if isinstance(h, str) and h else hook_type_of(t)
        for h, t in zip(hooks, text, strict=True)
    ]
    lengths = column("text_length", None)
    lengths = lengths.where(lengths.notna(), text.str.len()).astype(float)
    out["length_bucket"] = [length_bucket(v) for v in lengths]
    hashtags = column("n_hashtags", None)
    out["n_hashtags"] = (
        hashtags.where(hashtags.notna(), text.map(lambda t: len(_HASHTAG.findall(t))))
        .astype(float)
        .clip(upper=5)
    )
    for name, derived in (
        ("has_link", text.map(lambda t: bool(_LINK.search(t)))),
        ("has_question", text.map(lambda t: "?" in t)),
        ("has_number", text.map(lambda t: bool(_NUMBER.search(t)))),
    ):
        given = column(name, None)
        out[name] = given.where(given.notna(), derived).astype(bool).astype(float)
    out["thread_length"] = column("thread_length", 1).fillna(1).astype(float).clip(1, 25)

    local = [_local_time(p, tz) for p in column("posted_at", None)]
    if now is not None:
        local = [loc or _local_time(now, tz) for loc in local]
    hour_given = column("hour_local", None)
    weekday_given = column("weekday_local", None)
    hours = [
        int(h) if h is not None and not pd.isna(h) else (loc.hour if loc else 12)
        for h, loc in zip(hour_given, local, strict=True)
    ]
    weekdays = [
        int(w) if w is not None and not pd.isna(w) else (loc.weekday() if loc else 0)
        for w, loc in zip(weekday_given, local, strict=True)
    ]
    out["daypart"] = [daypart(h) for h in hours]
    out["weekday_local"] = [f"d{w}" for w in weekdays]
    out["hour_sin"] = np.sin(2 * np.pi * np.array(hours, dtype=float) / 24.0)
    out["hour_cos"] = np.cos(2 * np.pi * np.array(hours, dtype=float) / 24.0)
    out["is_weekend"] = [1.0 if w >= 5 else 0.0 for w in weekdays]

    if last_topic_post_at is not None:
        since = []
        for topic, loc in zip(out["topic"], local, strict=True):
            last = last_topic_post_at.get(topic)
            if last is None or loc is None:
                since.append(np.nan)
            else:
                since.append((pd.Timestamp(loc) - pd.Timestamp(last)).total_seconds() / 3600)
        hours_since = pd.Series(since, index=frame.index, dtype=float)
    elif "posted_at" in frame and n:
        hours_since = hours_since_same_topic(frame.assign(topic=out["topic"]))
    else:
        hours_since = pd.Series(np.nan, index=frame.index, dtype=float)
    out["log_hours_since_topic"] = np.log1p(
        hours_since.fillna(NO_RECENT_TOPIC_HOURS).clip(lower=0, upper=NO_RECENT_TOPIC_HOURS)
    )
    return out[list(CATEGORICAL_FEATURES) + list(NUMERIC_FEATURES)]


def rolling_median_label(frame: pd.DataFrame, *, window: int = 50) -> pd.Series:
    """Whether each post beat the median reward of the account's previous ``window`` posts.

    The warehouse provides ``beats_median``; this recomputes it (same rule) when it is absent.
    The first post of an account has no history and gets NaN (left out of training).
    """
    if "reward" in frame:
        reward = frame["reward"].astype(float)
    else:
        reward = frame.apply(lambda r: engagement_reward(r.to_dict()), axis=1).astype(float)
    account = frame["account"] if "account" in frame else pd.Series("", index=frame.index)
    order = pd.to_datetime(frame["posted_at"], utc=True).sort_values(kind="stable").index
    ordered = reward.loc[order]
    previous_median = ordered.groupby(account.loc[order]).transform(
        lambda s: s.shift(1).rolling(window, min_periods=1).median()
    )
    label = (ordered > previous_median).astype(float).where(previous_median.notna())
    return label.reindex(frame.index)
