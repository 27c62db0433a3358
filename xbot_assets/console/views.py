"""What the four pages show, read in a few indexed queries per page (no N+1): the queue with
why each post was chosen, the recent posts with their metrics, the learning state, the controls.

Everything here reads only. Values the engine did not record are returned as None and the
templates label them "not recorded", so a page never invents a number.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from xbot_assets.learning.rewards import engagement_reward
from xbot_assets.ops.dbread import read_connection
from xbot_assets.store.durable.schema import (
    HORIZONS,
    METRIC_NAMES,
    bot_config,
    candidates,
    tweet_metrics,
)
from xbot_assets.store.durable.schema import tweets as t

PAGE_SIZE = 50
QUEUE_PAGE_SIZE = 25
"""Queued posts per page: each carries four forms, so a lighter page renders faster."""
LEARNED_KEY = "learned"
SCORER_KEY = "model.engagement_scorer"
POLICY_KEY = "policy.estimates"


@dataclass
class Page:
    """One page of rows and where the pager stands."""

    rows: list[dict[str, Any]]
    page: int
    total: int
    """-1 when not counted (keyset paging)."""
    size: int = PAGE_SIZE
    next_cursor: str | None = None

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


@dataclass
class LearningView:
    """The learning page's numbers."""

    arms: list[dict[str, Any]] = field(default_factory=list)
    arms_note: str | None = None
    hours: list[dict[str, Any]] = field(default_factory=list)
    scorer: dict[str, Any] | None = None
    policy: dict[str, Any] | None = None
    lift: float | None = None
    learned: dict[str, Any] | None = None


def config_value(conn: Connection, environment: str, key: str) -> Any:
    """One bot_config value (None when missing)."""
    return conn.execute(
        select(bot_config.c.value).where(
            bot_config.c.environment == environment, bot_config.c.key == key
        )
    ).scalar()


def local(moment: datetime | None, tz: ZoneInfo) -> str | None:
    """``YYYY-MM-DD HH:MM`` in the account's time zone."""
    return None if moment is None else moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def queue_page(engine: Any, environment: str, account: Any, page: int) -> Page:
    """Queued root posts by slot, with their parts, arm and why they were chosen."""
    tz = ZoneInfo(account.timezone)
    roots_filter = (
        t.c.environment == environment,
        t.c.account_id == account.id,
        t.c.status == "queued",
        t.c.thread_position == 0,
    )
    with read_connection(engine) as conn:
        total = int(conn.execute(select(func.count()).where(*roots_filter)).scalar_one())
        page = max(1, min(page, max(1, -(-total // QUEUE_PAGE_SIZE))))
        roots = conn.execute(
            select(t)
            .where(*roots_filter)
            .order_by(t.c.scheduled_at, t.c.id)
            .limit(QUEUE_PAGE_SIZE)
            .offset((page - 1) * QUEUE_PAGE_SIZE)
        ).all()
        ids = [int(r.id) for r in roots]
        parts: dict[int, list[str]] = {}
        if any(r.thread_size > 1 for r in roots):
            for part in conn.execute(
                select(t.c.thread_root_id, t.c.text)
                .where(
                    t.c.environment == environment,
                    t.c.thread_root_id.in_(ids),
                    t.c.thread_position > 0,
                )
                .order_by(t.c.thread_root_id, t.c.thread_position)
            ):
                parts.setdefault(int(part.thread_root_id), []).append(str(part.text))
        batches = {
            str((r.metadata or {}).get("candidate_batch"))
            for r in roots
            if (r.metadata or {}).get("candidate_batch")
        }
        by_batch: dict[str, list[Any]] = {}
        if batches:
            for cand in conn.execute(
                select(
                    candidates.c.batch_id,
                    candidates.c.tweet_id,
                    candidates.c.score,
                    candidates.c.guard_passed,
                    candidates.c.guard_reasons,
                    candidates.c.chosen,
                    candidates.c.why,
                ).where(candidates.c.environment == environment, candidates.c.batch_id.in_(batches))
            ):
                by_batch.setdefault(str(cand.batch_id), []).append(cand)
        learned = config_value(conn, environment, LEARNED_KEY)
    p_best = (learned or {}).get("arm_probabilities", {}) if isinstance(learned, dict) else {}
    rows = []
    for r in roots:
        meta = dict(r.metadata or {})
        scores = dict(r.scores or {})
        batch = by_batch.get(str(meta.get("candidate_batch")), [])
        chosen = next((c for c in batch if c.tweet_id == r.id or c.chosen), None)
        scored = sorted(
            (c.score for c in batch if c.guard_passed and c.score is not None), reverse=True
        )
        rank = None
        if chosen is not None and chosen.score is not None and scored:
            rank = 1 + sum(1 for s in scored if s > chosen.score)
        sampled = (meta.get("sampled_values") or {}).get(r.arm) if r.arm else None
        rows.append(
            {
                "id": int(r.id),
                "slot_local": local(r.scheduled_at, tz),
                "slot_utc": r.scheduled_at.isoformat(timespec="minutes"),
                "slot_input": r.scheduled_at.astimezone(tz).strftime("%Y-%m-%dT%H:%M"),
                "text": r.text,
                "parts": [r.text, *parts.get(int(r.id), [])],
                "arm": r.arm,
                "approval": r.approval,
                "approved_by": r.approved_by,
                "posterior_sample": sampled if sampled is not None else scores.get("sampled_value"),
                "p_best": p_best.get(r.arm) if r.arm else None,
                "scorer_score": r.score,
                "rank": rank,
                "n_candidates": len(batch) or meta.get("candidates"),
                "n_scored": len(scored),
                "guard": (
                    None
                    if chosen is None
                    else ("passed" if chosen.guard_passed else ", ".join(chosen.guard_reasons))
                ),
                "propensity": meta.get("propensity"),
                "policy": meta.get("policy"),
                "edited": bool(meta.get("edits")),
                "why": chosen.why if chosen is not None else None,
            }
        )
    return Page(rows, page, total, size=QUEUE_PAGE_SIZE)


def recent_page(
    engine: Any,
    environment: str,
    account: Any,
    page: int,
    *,
    web_base_url: str,
    before: tuple[datetime, int] | None = None,
) -> Page:
    """Posted root posts, newest first, with metrics per horizon, reward and expectation.

    Paged by keyset (``before``: the last row's ``(posted_at, id)`` of the previous page), so
    page 2,000 costs what page 1 does; the total is not counted (a full count reads every
    posted row), the pager only says whether older posts exist.
    """
    tz = ZoneInfo(account.timezone)
    posted = [
        t.c.environment == environment,
        t.c.account_id == account.id,
        t.c.status == "posted",
        t.c.thread_position == 0,
        t.c.posted_at.is_not(None),
    ]
    if before is not None:
        at, last_id = before
        # the plain bound lets the index range start at the cursor; the OR breaks ties
        posted.append(t.c.posted_at <= at)
        posted.append((t.c.posted_at < at) | (t.c.id < last_id))
    with read_connection(engine) as conn:
        roots = conn.execute(
            select(
                t.c.id,
                t.c.text,
                t.c.x_id,
                t.c.arm,
                t.c.score,
                t.c.scores,
                t.c.posted_at,
                t.c.thread_size,
                t.c.metadata,
            )
            .where(*posted)
            .order_by(t.c.posted_at.desc(), t.c.id.desc())
            .limit(PAGE_SIZE + 1)
        ).all()
        more = len(roots) > PAGE_SIZE
        roots = roots[:PAGE_SIZE]
        ids = [int(r.id) for r in roots]
        metrics: dict[int, dict[str, dict[str, int]]] = {}
        if ids:
            # environment first: the (environment, tweet_id, horizon) unique index serves it
            # (without it SQLite scanned every snapshot: 400,000 of them in the benchmark)
            tm = tweet_metrics
            for m in conn.execute(
                select(tm.c.tweet_id, tm.c.horizon, *(tm.c[name] for name in METRIC_NAMES)).where(
                    tm.c.environment == environment, tm.c.tweet_id.in_(ids)
                )
            ):
                metrics.setdefault(int(m.tweet_id), {})[str(m.horizon)] = {
                    name: int(m._mapping[name]) for name in METRIC_NAMES
                }
    rows = []
    base = web_base_url.rstrip("/")
    for r in roots:
        snaps = metrics.get(int(r.id), {})
        latest = next((h for h in reversed(HORIZONS) if h in snaps), None)
        scores = dict(r.scores or {})
        rows.append(
            {
                "id": int(r.id),
                "text": r.text,
                "parts": int(r.thread_size),
                "arm": r.arm,
                "posted_local": local(r.posted_at, tz),
                "link": f"{base}/{account.handle}/status/{r.x_id}" if r.x_id else None,
                "metrics": {h: snaps.get(h) for h in HORIZONS},
                "latest_horizon": latest,
                "reward": engagement_reward(snaps[latest]) if latest else None,
                "expected_score": r.score,
                "expected_sample": scores.get("sampled_value"),
                "edited": bool((r.metadata or {}).get("edits")),
            }
        )
    found = Page(rows, page, -1)
    if more and roots:
        found.next_cursor = f"{roots[-1].posted_at.isoformat()}~{int(roots[-1].id)}"
    return found


def parse_cursor(value: str | None) -> tuple[datetime, int] | None:
    """The ``before`` keyset of :func:`recent_page` from its ``cursor`` query value."""
    if not value or "~" not in value:
        return None
    at, _, last = value.rpartition("~")
    try:
        moment = datetime.fromisoformat(at)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), int(last)
    except ValueError:
        return None


def read_posteriors(
    models_dir: Path, objective: str = "engagement"
) -> tuple[Any, list[str]] | None:
    """The sampler ``arm_posteriors`` saved (the same file the policy loads), or None."""
    import numpy as np

    from xbot_assets.learning.bandits import ThompsonSampler

    path = models_dir / f"arm_posteriors_{objective}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    sampler = ThompsonSampler(len(data["arms"]), prior=tuple(data["prior"]), seed=0)
    sampler.successes = np.array(data["successes"], dtype=float)
    sampler.failures = np.array(data["failures"], dtype=float)
    return sampler, list(data["arms"])


def hour_evidence(conn: Connection, environment: str, account_id: int, limit: int = 1000) -> Any:
    """The account's newest posted roots with their latest snapshot and local hour, in two
    queries (what the planner's ``posted_outcomes`` reads one post at a time)."""
    import pandas as pd

    roots = conn.execute(
        select(t.c.id, t.c.posted_at)
        .where(
            t.c.environment == environment,
            t.c.account_id == account_id,
            t.c.status == "posted",
            t.c.thread_position == 0,
        )
        .order_by(t.c.posted_at.desc())
        .limit(limit)
    ).all()
    when = {int(r.id): r.posted_at for r in roots}
    latest: dict[int, dict[str, Any]] = {}
    order = {h: i for i, h in enumerate(HORIZONS)}
    ids = list(when)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for m in conn.execute(
            select(tweet_metrics).where(
                tweet_metrics.c.environment == environment, tweet_metrics.c.tweet_id.in_(chunk)
            )
        ):
            key = int(m.tweet_id)
            if key not in latest or order[str(m.horizon)] > order[latest[key]["horizon"]]:
                latest[key] = {name: getattr(m, name) for name in (*METRIC_NAMES, "horizon")}
    return pd.DataFrame(
        [{**row, "post_id": pid, "posted_at": when[pid]} for pid, row in latest.items()]
    )


_LEARNING_CACHE: dict[tuple[Any, ...], LearningView] = {}
_LEARNING_LOCK = threading.Lock()


def learning_view(
    engine: Any, environment: str, account: Any, settings: Any, models_dir: Path
) -> LearningView:
    """:func:`compute_learning_view`, cached until its inputs change: the posteriors file, the
    newest metric snapshot and the newest bot_config write (three index lookups per view)."""
    path = models_dir / "arm_posteriors_engagement.json"
    mtime = path.stat().st_mtime_ns if path.exists() else None
    with read_connection(engine) as conn:
        newest_metric = conn.execute(select(func.max(tweet_metrics.c.id))).scalar()
        newest_config = conn.execute(select(func.max(bot_config.c.updated_at))).scalar()
    key = (str(engine.url), environment, account.id, account.timezone, mtime, newest_metric,
           str(newest_config))  # fmt: skip
    with _LEARNING_LOCK:
        found = _LEARNING_CACHE.get(key)
    if found is not None:
        return found
    view = compute_learning_view(engine, environment, account, settings, models_dir)
    with _LEARNING_LOCK:
        if len(_LEARNING_CACHE) > 32:
            _LEARNING_CACHE.clear()
        _LEARNING_CACHE[key] = view
    return view


def compute_learning_view(
    engine: Any, environment: str, account: Any, settings: Any, models_dir: Path
) -> LearningView:
    """Posteriors per arm and per hour (90 % intervals), scorer state and policy estimates."""
    from xbot_assets.learning.scheduler import ScheduleConfig, SlotScheduler

    view = LearningView()
    found = read_posteriors(models_dir)
    if found is None:
        view.arms_note = "arm_posteriors not materialised yet (cold start: uniform prior)"
    else:
        sampler, arms = found
        frame = sampler.to_frame(arms).sort_values("mean", ascending=False)
        view.arms = frame.to_dict("records")
    tz = ZoneInfo(account.timezone)
    with read_connection(engine) as conn:
        evidence = hour_evidence(conn, environment, account.id)
        schedule = config_value(conn, environment, "schedule") or {}
        view.scorer = config_value(conn, environment, SCORER_KEY)
        view.policy = config_value(conn, environment, POLICY_KEY)
        learned = config_value(conn, environment, LEARNED_KEY)
    view.learned = learned if isinstance(learned, dict) else None
    values = dict(schedule) if isinstance(schedule, dict) else {}
    values["timezone"] = account.timezone
    scheduler = SlotScheduler(ScheduleConfig.from_mapping(values), seed=0)
    if not evidence.empty:
        evidence["hour_local"] = [p.astimezone(tz).hour for p in evidence["posted_at"]]
        scheduler.learn_from_posts(evidence)
    view.hours = scheduler.to_frame().to_dict("records")
    policy_values = (view.policy or {}).get("values") if isinstance(view.policy, dict) else None
    if policy_values and policy_values.get("random") and "thompson_current" in policy_values:
        view.lift = float(policy_values["thompson_current"]) - float(policy_values["random"])
    return view
