"""The oracle-greedy reference policy: what a poster who knew the audience's truth would post.

For each candidate text it computes the true expected reward the audience would give it if it
were posted now (topic and format effects with drift, hour and weekday, text effects, topic
fatigue and novelty, near-duplicate penalties, spam context), at average content quality, and
picks the best. Greedy: it does not plan ahead (posting the best topic now may tire the audience
for the next slot), so it is a strong reference, not an upper bound.

Evaluation only: it reads the sandbox's hidden state. It imports nothing from the bot; the weights
of the reward come from the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

from xbot_assets.sandbox.features import classify_text
from xbot_assets.sandbox.platform import SandboxX
from xbot_assets.sandbox.scenario import ALL_TOPICS
from xbot_assets.sandbox.vocabulary import ENGAGEMENT_METRICS, FORMATS


def true_expected_reward(
    sandbox: SandboxX,
    text: str,
    weights: Mapping[str, float],
    *,
    handle: str | None = None,
    at: datetime | None = None,
    is_thread: bool = False,
) -> float:
    """Σ weights x per-impression rates the audience would give ``text`` posted at ``at``."""
    account = sandbox.account(handle)
    now = at or sandbox.clock.now()
    features = classify_text(text, is_thread=is_thread)
    similarity = sandbox.audience.max_similarity(account, text, now)
    eng, _reach, nf = sandbox.audience.text_context(account, features, now, similarity)
    if account.audience_jitter:
        # The account's own audience (``add_account(audience_jitter=...)``), as its posts get it.
        topic_own, format_own = sandbox.audience.account_effects(account)
        eng += float(topic_own[ALL_TOPICS.index(features.topic)])
        eng += float(format_own[FORMATS.index(features.format)])
    local = now.astimezone(sandbox.tz)
    days = (now - sandbox.epoch).total_seconds() / 86400.0
    rates = sandbox.model.rates(
        np.array([ALL_TOPICS.index(features.topic)]),
        np.array([FORMATS.index(features.format)]),
        np.array([local.hour]),
        np.array([local.weekday()]),
        np.array([days]),
        engagement_log=eng,
        nf_multiplier=nf,
        quality=1.0,
    )[0]
    vector = np.array([float(weights.get(m, 0.0)) for m in ENGAGEMENT_METRICS])
    return float(rates @ vector)


def oracle_greedy_choice(
    sandbox: SandboxX,
    candidates: Sequence[tuple[str, bool]],
    weights: Mapping[str, float],
    *,
    handle: str | None = None,
    at: datetime | None = None,
) -> tuple[int, np.ndarray]:
    """Index of the best ``(root_text, is_thread)`` candidate, and every candidate's value."""
    if not candidates:
        raise ValueError("oracle_greedy_choice needs at least one candidate")
    values = np.array(
        [
            true_expected_reward(sandbox, text, weights, handle=handle, at=at, is_thread=thread)
            for text, thread in candidates
        ]
    )
    return int(values.argmax()), values
