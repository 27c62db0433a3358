"""The sandbox's audience engine: what a post earns, and how its counts unfold over time.

A post's outcome is drawn once, when it is created, from the audience model (its text features,
the account's recent history and the simulated time) with a random generator keyed by
``(seed, account, post number)``; its counts then unfold deterministically with the clock
(1h, 6h, 24h, 72h). The same seed and the same calls give the same outcomes. This is the hidden
truth of the sandbox: the API surface reads counts from here, never the rates behind them.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import numpy as np

from xbot_assets.sandbox.features import TextFeatures
from xbot_assets.sandbox.model import AudienceModel
from xbot_assets.sandbox.scenario import ALL_TOPICS, AudienceParams
from xbot_assets.sandbox.state import Account, Post, words_of
from xbot_assets.sandbox.vocabulary import ENGAGEMENT_METRICS, FORMATS, METRICS


class AudienceEngine:
    """Draws each post's outcome and reports its counts and the account's followers at any time.

    Args:
        params: the scenario's hidden truth (its ``fatigue``, ``text``, ``spam``, ``threads``,
            ``unfold`` and ``followers`` sections tune the effects below).
        seed: keys every draw, so the same seed and the same posts give the same outcomes.
        epoch: the simulated start; a post's ``days`` (for drift) count from here.
    """

    def __init__(self, params: AudienceParams, seed: int, epoch: datetime) -> None:
        self.params = params
        self.seed = int(seed)
        self.epoch = epoch
        self.model = AudienceModel(params)
        self.tz = ZoneInfo(params.timezone)
        raw = params.raw
        self.fatigue = dict(raw.get("fatigue") or {})
        self.text = dict(raw.get("text") or {})
        self.spam = dict(raw.get("spam") or {})
        self.threads = dict(raw.get("threads") or {})
        unfold = dict(raw.get("unfold") or {})
        self.tau = float(unfold.get("tau_hours", 4.0))
        self.shape = float(unfold.get("shape", 0.8))
        self.f72 = 1.0 - math.exp(-((72.0 / self.tau) ** self.shape))
        self.unfollow = float(
            (raw.get("followers") or {}).get("unfollow_per_negative_feedback", 0.3)
        )
        self._own_effects: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def account_effects(self, account: Account) -> tuple[np.ndarray, np.ndarray]:
        """The account's own (topic, format) engagement offsets, log scale: zero unless it was
        created with ``audience_jitter``; else normal draws keyed by the seed and the handle (not
        by the account's index, so an account keeps its audience whatever was added before it)."""
        cached = self._own_effects.get(account.handle)
        if cached is None:
            sigma = float(account.audience_jitter)
            if sigma > 0:
                key = zlib.crc32(account.handle.lower().encode())
                rng = np.random.default_rng([self.seed, key, 0xACC7])
                cached = (
                    rng.normal(0.0, sigma, len(ALL_TOPICS)),
                    rng.normal(0.0, sigma, len(FORMATS)),
                )
            else:
                cached = (np.zeros(len(ALL_TOPICS)), np.zeros(len(FORMATS)))
            self._own_effects[account.handle] = cached
        return cached

    # --- outcome drawing ---------------------------------------------------------------------
    def rng(self, account: Account, post_seq: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, account.index, post_seq, 0xB07])

    def max_similarity(self, account: Account, text: str, now: datetime) -> float:
        """The highest word overlap (Jaccard) of ``text`` with the account's last week."""
        words = words_of(text)
        if not words:
            return 0.0
        best = 0.0
        week = timedelta(days=7)
        for other in reversed(account.posts):
            if now - other.created_at > week:
                break
            other_words = other.words
            if other_words:
                best = max(best, len(words & other_words) / len(words | other_words))
        return best

    def text_context(
        self, account: Account, features: TextFeatures, now: datetime, similarity: float
    ) -> tuple[float, float, float]:
        """(engagement log, reach log, negative-feedback multiplier) of a root post."""
        t, fz, sp = self.text, self.fatigue, self.spam
        length = max(features.weighted_length, 20)
        eng = (
            -float(t.get("length_strength", 0.25))
            * math.log(length / float(t.get("optimal_length", 180))) ** 2
        )
        eng += float(t.get("hashtag_penalty", -0.12)) * features.hashtag_count
        nf = 1.0
        if features.hashtag_count >= int(t.get("hashtag_spam_threshold", 3)):
            nf *= float(t.get("hashtag_spam_nf", 2.5))
        reach = 0.0
        if features.has_link:
            eng += float(t.get("link_engagement", -0.1))
            reach += self.model.link_penalty
        if features.has_number:
            eng += float(t.get("number_bonus", 0.05))
        if features.has_emoji:
            eng += float(t.get("emoji_bonus", 0.03))
        # Fatigue: recent roots on the same topic, decayed; novelty: topic unseen for a while.
        half_life = float(fz.get("topic_half_life_hours", 18))
        novelty_window = timedelta(days=float(fz.get("novelty_days", 7)))
        fatigue, seen_recently, roots_last_hour = 0.0, False, 0
        for other in reversed(account.posts):
            age = now - other.created_at
            if age > novelty_window:
                break
            if other.root is not other:
                continue
            if age <= timedelta(hours=1):
                roots_last_hour += 1
            if other.features.topic == features.topic:
                seen_recently = True
                fatigue += 0.5 ** (age.total_seconds() / 3600.0 / half_life)
        eng -= float(fz.get("topic_strength", 0.12)) * fatigue
        if not seen_recently:
            eng += float(fz.get("novelty_bonus", 0.1))
        if similarity >= float(fz.get("near_duplicate_similarity", 0.6)):
            eng += float(fz.get("near_duplicate_penalty", -0.7))
            nf *= float(fz.get("near_duplicate_nf", 3.0))
        extra = roots_last_hour + 1 - int(sp.get("posts_per_hour", 3))
        if extra > 0:
            nf *= 1.0 + float(sp.get("nf_per_extra_post", 0.6)) * extra
            reach += float(sp.get("reach_per_extra_post", -0.15)) * extra
        return eng, reach, nf

    def _draw_root(
        self,
        account: Account,
        seq: int,
        fmt: str,
        topic: str,
        slot: tuple[int, int],
        days: float,
        followers: float,
        context: tuple[float, float, float],
        reach_extra: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng(account, seq)
        m = self.model
        f_idx, t_idx = np.array([FORMATS.index(fmt)]), np.array([ALL_TOPICS.index(topic)])
        hour, weekday = np.array([slot[0]]), np.array([slot[1]])
        day_arr = np.array([days])
        eng, reach, nf = context
        if account.audience_jitter:
            topic_own, format_own = self.account_effects(account)
            eng = eng + float(topic_own[t_idx[0]] + format_own[f_idx[0]])
        quality = m.draw_quality(rng, 1)
        rates = m.rates(
            t_idx, f_idx, hour, weekday, day_arr,
            engagement_log=eng, nf_multiplier=nf, quality=quality,
        )  # fmt: skip
        median = m.median_impressions(
            followers, t_idx, f_idx, hour, weekday, day_arr,
            engagement_log=eng, reach_log=reach + reach_extra, quality=quality,
        )  # fmt: skip
        impressions = m.draw_impressions(rng, median)
        counts = m.draw_counts(rng, impressions, rates)[0]
        return np.concatenate([impressions, counts]), rates[0]

    def root_post(
        self,
        account: Account,
        seq: int,
        post_id: str,
        text: str,
        now: datetime,
        features: TextFeatures,
        parent: Post | None,
        similarity: float,
    ) -> Post:
        """A new root post (or a reply outside a thread) with its drawn outcome."""
        context = self.text_context(account, features, now, similarity)
        local = now.astimezone(self.tz)
        slot = (local.hour, local.weekday())
        days = (now - self.epoch).total_seconds() / 86400.0
        followers = self.followers_at(account, now)
        # A reply to someone else's post (or a late self-reply) is seen mostly in that
        # conversation: a fraction of a root's reach.
        reach_extra = -1.2 if parent is not None else 0.0
        totals, rates = self._draw_root(
            account, seq, features.format, features.topic, slot, days, followers, context,
            reach_extra,
        )  # fmt: skip
        post = Post(
            seq=seq, id=post_id, account=account, text=text, created_at=now,
            features=features, format=features.format, reply_to=parent, root=cast(Post, None),
            depth=0 if parent is None else parent.depth + 1, totals=totals, rates=rates,
            context=context, local_slot=slot, days=days, followers_at_post=followers,
        )  # fmt: skip
        post.root = post
        post.near_duplicate = similarity >= float(
            self.fatigue.get("near_duplicate_similarity", 0.6)
        )
        if parent is not None:
            parent.children.append(post)
        return post

    def thread_reply(
        self,
        account: Account,
        seq: int,
        post_id: str,
        text: str,
        now: datetime,
        features: TextFeatures,
        parent: Post,
    ) -> Post:
        """A self-reply inside the thread window: it shares the root's audience."""
        root = parent.root
        if root.format != "thread":
            # The root now has a self-reply chain: it is a thread. Redraw its outcome with the
            # thread format from the same generator (deterministic either way).
            root.format = "thread"
            root.totals, root.rates = self._draw_root(
                account, root.seq, "thread", root.features.topic, root.local_slot, root.days,
                root.followers_at_post, root.context,
            )  # fmt: skip
            for child in self._chain(root):
                self._draw_reply(child)
        depth = parent.depth + 1
        post = Post(
            seq=seq, id=post_id, account=account, text=text, created_at=now,
            features=features, format=features.format, reply_to=parent, root=root, depth=depth,
            totals=np.zeros(len(METRICS), dtype=np.int64), rates=root.rates, context=root.context,
            local_slot=root.local_slot, days=root.days, followers_at_post=root.followers_at_post,
        )  # fmt: skip
        parent.children.append(post)
        self._draw_reply(post)
        return post

    def _chain(self, root: Post) -> Iterable[Post]:
        stack = list(root.children)
        while stack:
            node = stack.pop()
            if node.root is root:
                yield node
                stack.extend(node.children)

    def _draw_reply(self, post: Post) -> None:
        rng = self.rng(post.account, post.seq)
        share = float(self.threads.get("reply_impression_share", 0.3))
        decay = float(self.threads.get("reply_decay", 0.75))
        rate_share = float(self.threads.get("reply_rate_share", 0.5))
        mean = float(post.root.totals[0]) * share * decay ** (post.depth - 1)
        impressions = int(rng.poisson(max(mean, 0.0)))
        rates = np.minimum(post.root.rates * rate_share, 1.0)
        counts = rng.binomial(impressions, rates)
        post.totals = np.concatenate([[impressions], counts]).astype(np.int64)

    # --- outcomes over time ------------------------------------------------------------------
    def share(self, post: Post, at: datetime) -> float:
        """The part of its final counts a post has reached at ``at`` (0 at birth, 1 from 72h)."""
        end = at if post.deleted_at is None else min(at, post.deleted_at)
        age_h = (end - post.created_at).total_seconds() / 3600.0
        if age_h <= 0:
            return 0.0
        if age_h >= 72.0:
            return 1.0
        return min(1.0, (1.0 - math.exp(-((age_h / self.tau) ** self.shape))) / self.f72)

    def counts(self, post: Post, at: datetime) -> np.ndarray:
        """The post's counts at ``at``, in :data:`METRICS` order."""
        share = self.share(post, at)
        return np.floor(post.totals * share).astype(np.int64)

    def followers_at(self, account: Account, at: datetime) -> float:
        """Initial followers + follows - unfollows of every post up to ``at``.

        Posts older than 72h at ``at`` no longer change, so their sum is cached per account
        (reset when asked about an earlier time); a month of posting stays O(recent posts).
        """
        follows_i = METRICS.index("follows")
        nf_i = METRICS.index("negative_feedback")
        cache = account.settled
        if at < cache.at:
            cache.reset()
        cutoff = at - timedelta(hours=72)
        posts = account.posts
        while cache.count < len(posts) and posts[cache.count].created_at <= cutoff:
            post = posts[cache.count]
            share = self.share(post, at)
            cache.gain += math.floor(post.totals[follows_i] * share)
            cache.gain -= math.floor(post.totals[nf_i] * share * self.unfollow)
            cache.count += 1
        cache.at = at
        gained = cache.gain
        for post in posts[cache.count :]:
            if post.created_at >= at:
                continue
            share = self.share(post, at)
            gained += math.floor(post.totals[follows_i] * share)
            gained -= math.floor(post.totals[nf_i] * share * self.unfollow)
        return max(account.initial_followers + gained, 0.0)

    @staticmethod
    def reward_vector(weights: Mapping[str, float]) -> np.ndarray:
        """Reward weights in :data:`ENGAGEMENT_METRICS` order (ValueError on an unknown name)."""
        unknown = sorted(set(weights) - set(ENGAGEMENT_METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; use {ENGAGEMENT_METRICS}")
        return np.array([float(weights.get(m, 0.0)) for m in ENGAGEMENT_METRICS])
