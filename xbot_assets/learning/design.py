"""The design of the factored model: the account's past posts and the covariate row of a post
or an arm at a time.

A row (:class:`Design`) holds an intercept; format and topic one-hots; local-hour harmonics and
weekend; recency covariates from the account's own history before the post (decayed counts of
same-topic posts at 12 h and 48 h half-lives, "topic not seen for 7 days", decayed same-format
count); text covariates of the post (:func:`text_covariates`: max word-Jaccard similarity to the
last week's posts, near-duplicate flag, length, hashtags, link, number); optionally a format x
topic effect per arm. Both the fit (:mod:`~xbot_assets.learning.factored`) and the posterior's
Thompson sampler (:mod:`~xbot_assets.learning.posterior`) build their rows here.

Pure: numpy only, no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

TOPIC_HALF_LIVES_H: tuple[float, ...] = (12.0, 48.0)
FORMAT_HALF_LIFE_H = 24.0
NOVELTY_WINDOW = timedelta(days=7)
NEAR_DUPLICATE = 0.5
"""Word-Jaccard similarity from which a text counts as a near-duplicate of a recent post."""

_WORD = re.compile(r"[a-z0-9']+")
_HASHTAG = re.compile(r"(?<![\w#])#\w+")
_LINK = re.compile(r"https?://", re.IGNORECASE)
_NUMBER = re.compile(r"\d")


@dataclass(frozen=True)
class PastPost:
    """One posted root post of the account, as the bot knows it.

    Attributes:
        posted_at: when it went out (aware).
        format, topic: its arm.
        text: the root's text.
        metrics: its latest snapshot's counts (None: no snapshot yet).
        horizon: that snapshot's horizon (``6h``, ``24h``, ``72h``, ...).
    """

    posted_at: datetime
    format: str
    topic: str
    text: str
    metrics: Mapping[str, Any] | None = None
    horizon: str | None = None


def words_of(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def max_similarity(words: frozenset[str], others: Sequence[frozenset[str]]) -> float:
    """Largest word-Jaccard similarity of ``words`` to any of ``others``."""
    if not words:
        return 0.0
    best = 0.0
    for other in others:
        if other:
            best = max(best, len(words & other) / len(words | other))
    return best


def text_covariates(text: str, recent_words: Sequence[frozenset[str]]) -> np.ndarray:
    """[max similarity, near-duplicate, length/280, (length/280)^2, hashtags, link, number]."""
    sim = max_similarity(words_of(text), recent_words)
    length = min(len(text), 560) / 280.0
    return np.array(
        [
            sim,
            float(sim >= NEAR_DUPLICATE),
            length,
            length * length,
            min(len(_HASHTAG.findall(text)), 5),
            float(bool(_LINK.search(text))),
            float(bool(_NUMBER.search(text))),
        ]
    )


TEXT_NAMES = ("similarity", "near_duplicate", "length", "length_sq", "hashtags", "link", "number")
TIME_NAMES = ("hour_sin", "hour_cos", "hour_sin2", "hour_cos2", "weekend")
RECENCY_NAMES = ("topic_recent_12h", "topic_recent_48h", "topic_novel", "format_recent_24h")


class Design:
    """Builds model rows for arms at a time, against the account's history before that time."""

    def __init__(
        self,
        formats: Sequence[str],
        topics: Sequence[str],
        timezone: str = "UTC",
        *,
        interactions: bool = False,
        topic_half_lives: Sequence[float] = TOPIC_HALF_LIVES_H,
    ):
        self.formats, self.topics = list(formats), list(topics)
        self.tz = ZoneInfo(timezone)
        self.interactions = interactions
        if len(topic_half_lives) != 2 or min(topic_half_lives) <= 0:
            raise ValueError(
                f"topic_half_lives {tuple(topic_half_lives)}: give two positive hours, "
                "e.g. (12, 48)"
            )
        self.topic_half_lives = tuple(float(h) for h in topic_half_lives)
        recency = [f"topic_recent_{h:g}h" for h in self.topic_half_lives] + list(RECENCY_NAMES[2:])
        pairs = [f"{f}:{t}" for f in self.formats for t in self.topics] if interactions else []
        self.names = (
            ["intercept"]
            + [f"format={f}" for f in self.formats]
            + [f"topic={t}" for t in self.topics]
            + list(TIME_NAMES)
            + recency
            + list(TEXT_NAMES)
            + [f"arm={a}" for a in pairs]
        )
        self.n_features = len(self.names)
        self.groups = (
            ["intercept"]
            + ["format"] * len(self.formats)
            + ["topic"] * len(self.topics)
            + ["time"] * len(TIME_NAMES)
            + ["recency"] * len(RECENCY_NAMES)
            + ["text"] * len(TEXT_NAMES)
            + ["arm"] * len(pairs)
        )
        self.text_start = 1 + len(self.formats) + len(self.topics) + len(TIME_NAMES)
        self.text_start += len(RECENCY_NAMES)

    def time_block(self, at: datetime) -> np.ndarray:
        local = at.astimezone(self.tz)
        angle = 2 * math.pi * (local.hour + local.minute / 60.0) / 24.0
        return np.array(
            [
                math.sin(angle),
                math.cos(angle),
                math.sin(2 * angle),
                math.cos(2 * angle),
                float(local.weekday() >= 5),
            ]
        )

    def recency_block(
        self, at: datetime, history: Sequence[PastPost]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per topic ``[recent_12h, recent_48h, novel]`` and per format ``[recent_24h]``."""
        topic_block = np.zeros((len(self.topics), 3))
        topic_block[:, 2] = 1.0
        format_block = np.zeros(len(self.formats))
        t_index = {t: i for i, t in enumerate(self.topics)}
        f_index = {f: i for i, f in enumerate(self.formats)}
        for past in reversed(history):
            age = at - past.posted_at
            if age > NOVELTY_WINDOW:
                break
            if age.total_seconds() < 0:
                continue
            hours = age.total_seconds() / 3600.0
            ti = t_index.get(past.topic)
            if ti is not None:
                topic_block[ti, 0] += 0.5 ** (hours / self.topic_half_lives[0])
                topic_block[ti, 1] += 0.5 ** (hours / self.topic_half_lives[1])
                topic_block[ti, 2] = 0.0
            fi = f_index.get(past.format)
            if fi is not None:
                format_block[fi] += 0.5 ** (hours / FORMAT_HALF_LIFE_H)
        return topic_block, format_block

    @staticmethod
    def recent_words(at: datetime, history: Sequence[PastPost]) -> list[frozenset[str]]:
        out = []
        for past in reversed(history):
            if at - past.posted_at > NOVELTY_WINDOW:
                break
            if past.posted_at <= at:
                out.append(words_of(past.text))
        return out

    def row(
        self,
        fmt: str,
        topic: str,
        at: datetime,
        history: Sequence[PastPost],
        text: str | None = None,
        *,
        recent_words: Sequence[frozenset[str]] | None = None,
    ) -> np.ndarray:
        """One post's row (history: the account's posts before ``at``, oldest first)."""
        rows = self.arm_rows(at, history, [(fmt, topic)])
        if text is not None:
            words = recent_words if recent_words is not None else self.recent_words(at, history)
            t0 = self.text_start
            rows[0, t0 : t0 + len(TEXT_NAMES)] = text_covariates(text, words)
        return rows[0]

    def arm_rows(
        self, at: datetime, history: Sequence[PastPost], arms: Sequence[tuple[str, str]]
    ) -> np.ndarray:
        """Rows for each ``(format, topic)`` at ``at``; text covariates at a fresh text's (0)."""
        topic_block, format_block = self.recency_block(at, history)
        time = self.time_block(at)
        nf, nt = len(self.formats), len(self.topics)
        rows = np.zeros((len(arms), self.n_features))
        rows[:, 0] = 1.0
        base = 1 + nf + nt
        rows[:, base : base + len(TIME_NAMES)] = time
        rec = base + len(TIME_NAMES)
        for i, (fmt, topic) in enumerate(arms):
            if fmt in self.formats:
                fi = self.formats.index(fmt)
                rows[i, 1 + fi] = 1.0
                rows[i, rec + 3] = format_block[fi]
            if topic in self.topics:
                ti = self.topics.index(topic)
                rows[i, 1 + nf + ti] = 1.0
                rows[i, rec : rec + 3] = topic_block[ti]
            else:
                rows[i, rec + 2] = 1.0
            if self.interactions and fmt in self.formats and topic in self.topics:
                pair = self.formats.index(fmt) * nt + self.topics.index(topic)
                rows[i, self.text_start + len(TEXT_NAMES) + pair] = 1.0
        # A typical fresh text: the generator's median length (about 150 of 280), no hashtags.
        text0 = rec + len(RECENCY_NAMES)
        rows[:, text0 + 2] = 0.55
        rows[:, text0 + 3] = 0.55**2
        return rows
