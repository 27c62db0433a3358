"""Prometheus metrics read from durable state at scrape time.

Posts, generation and learning run in Dagster runs (other processes), so counters kept in the
health server's memory would never move. :class:`DurableStateCollector` is a custom
``prometheus_client`` collector: every scrape reads the durable store and Redis and turns what
they hold into metric families.

Scrape cost stays bounded:

- aggregates only (``GROUP BY`` over indexed or narrow columns); no post text is ever read;
- the guard-rejection counter reads candidates incrementally: only rows above the highest id seen
  by this process (a primary-key range), added to running totals (candidates are append-only);
- Redis figures are a handful of pipelined ``XLEN``/``XINFO``/``XPENDING`` calls per queue;
- label values come from closed sets (statuses, queues) or are cut and capped (guard reasons,
  audit event types), so the series count cannot explode.

A source that fails (Redis down, store unreachable) does not fail the scrape: its families are
left out and ``xbot_scrape_source_up{source=...}`` is 0.

Why one file of about 570 lines: it is one collector, and the bounds above (aggregates only,
incremental reads, capped labels) are a property of all its families together; keeping them in one
file lets a reviewer check every query a scrape runs in one read.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Table, and_, func, or_, select

from xbot_assets.health.checks import HealthContext
from xbot_assets.ops.component_status import latest_component_statuses
from xbot_assets.ops.dbread import read_connection
from xbot_assets.ops.queries import last_metrics_collection, oldest_queued_schedule
from xbot_assets.store.durable.schema import (
    HEALTH_STATUSES,
    POST_STATUSES,
    audit_log,
    bot_config,
    candidates,
    post_attempts,
    tweets,
)
from xbot_assets.store.hot.streams import QUEUE_NAMES, Priority

AI_SPEND_KEY_PREFIX = "ai_spend:"
"""bot_config keys ``ai_spend:<YYYY-MM-DD>`` hold each UTC day's spend (content.budget)."""
POSTGRES_SETTLE = timedelta(seconds=30)
"""Candidates younger than this are left for the next scrape on Postgres (late commits)."""
MAX_LABEL_VALUES = 50
"""At most this many distinct guard reasons / audit event types are exported (the rest: other)."""
MAX_LABEL_CHARS = 48
ATTEMPT_OUTCOME_LABELS = ("posted", "failed", "unknown", "released", "in_flight")
LEARNING_CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "auc": ("model_auc", "scorer_auc", "auc"),
    "regret": ("regret_estimate", "regret", "estimated_regret"),
}
"""Where the learning layer's latest figures may sit inside a ``bot_config`` value."""


def _label(value: Any) -> str:
    """A bounded label value: the reason code before any ':' detail, cut to 48 characters."""
    text = str(value).split(":", 1)[0].strip().lower().replace(" ", "_")
    return (text or "unspecified")[:MAX_LABEL_CHARS]


def _cap_labels(counts: dict[str, float]) -> dict[str, float]:
    """Keep the biggest label values; fold the rest into ``other`` (bounded series)."""
    if len(counts) <= MAX_LABEL_VALUES:
        return counts
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = dict(ranked[: MAX_LABEL_VALUES - 1])
    kept["other"] = sum(v for _, v in ranked[MAX_LABEL_VALUES - 1 :])
    return kept


class _AppendOnlyTally:
    """Running totals over an append-only table, fed by the rows added since the last scrape.

    Each call reads only rows above the highest id seen (a primary-key range; the environment is
    filtered here, not in SQL, so no index on the environment tempts the planner into scanning
    every row) and hands each row of the environment to ``count``.

    On Postgres, ids are handed out before commit, so a row with a lower id can become visible
    after a higher one: the watermark stops before rows stamped within :data:`POSTGRES_SETTLE`
    of now, so that such a late commit is still counted on a later scrape. Rows stamped by a
    simulated clock far from the wall clock are not held back.
    """

    def __init__(
        self,
        table: Table,
        time_column: str,
        columns: tuple[str, ...],
        count: Callable[[Any, dict[str, float]], None],
    ) -> None:
        self.lock = threading.Lock()
        self.last_id = 0
        self.totals: dict[str, float] = {}
        self.table = table
        self.time_column = time_column
        self.columns = columns
        self.count = count

    def update(
        self, conn: Connection, environment: str, now: datetime, batch: int = 5000
    ) -> dict[str, float]:
        """Add the new rows; returns a copy of the totals."""
        t = self.table
        settle = conn.dialect.name == "postgresql"
        cols = [t.c.id, t.c.environment, t.c[self.time_column], *(t.c[c] for c in self.columns)]
        with self.lock:
            while True:
                rows = conn.execute(
                    select(*cols).where(t.c.id > self.last_id).order_by(t.c.id).limit(batch)
                ).all()
                fetched = len(rows)
                if settle:
                    for index, row in enumerate(rows):
                        stamp = row._mapping[self.time_column]
                        if now - POSTGRES_SETTLE < stamp <= now + POSTGRES_SETTLE:
                            rows, fetched = rows[:index], 0
                            break
                for row in rows:
                    if row.environment == environment:
                        self.count(row, self.totals)
                if rows:
                    self.last_id = int(rows[-1].id)
                if fetched < batch:
                    return dict(self.totals)


def _count_candidate(row: Any, totals: dict[str, float]) -> None:
    """``verdict:passed``/``verdict:rejected`` and ``reason:<code>`` per rejection reason."""
    if row.guard_passed:
        totals["verdict:passed"] = totals.get("verdict:passed", 0) + 1
        return
    totals["verdict:rejected"] = totals.get("verdict:rejected", 0) + 1
    reasons = row.guard_reasons
    if isinstance(reasons, str):
        try:
            reasons = json.loads(reasons)
        except ValueError:
            reasons = [reasons]
    if isinstance(reasons, dict):
        reasons = list(reasons)
    for reason in reasons or ["unspecified"]:
        if isinstance(reason, dict):
            reason = reason.get("code") or reason.get("reason") or "unspecified"
        key = "reason:" + _label(reason)
        totals[key] = totals.get(key, 0) + 1


def _count_audit(row: Any, totals: dict[str, float]) -> None:
    key = str(row.event_type)[:MAX_LABEL_CHARS]
    totals[key] = totals.get(key, 0) + 1


def _number(value: Any, keys: tuple[str, ...]) -> float | None:
    """The first numeric field named in ``keys`` inside a JSON config value (or the value)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        for key in keys:
            found = value.get(key)
            if isinstance(found, int | float) and not isinstance(found, bool):
                return float(found)
        for nested in value.values():
            if isinstance(nested, dict):
                found_nested = _number(nested, keys)
                if found_nested is not None:
                    return found_nested
    return None


class DurableStateCollector(Collector):
    """Exports xbot's state as Prometheus metrics, read when scraped (see the module docstring).

    Args:
        ctx: the health context (settings, engine, Redis, clock) shared with the checks.
    """

    def __init__(self, ctx: HealthContext) -> None:
        self.ctx = ctx
        self._candidates = _AppendOnlyTally(
            candidates, "created_at", ("guard_passed", "guard_reasons"), _count_candidate
        )
        self._audit = _AppendOnlyTally(audit_log, "occurred_at", ("event_type",), _count_audit)

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: registering must not query the store."""
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "xbot_scrape_source_up", "1 if the source answered this scrape", labels=["source"]
        )
        took = GaugeMetricFamily(
            "xbot_scrape_source_duration_seconds",
            "time spent reading the source in this scrape",
            labels=["source"],
        )
        sources: tuple[tuple[str, Callable[[], list[Metric]]], ...] = (
            ("durable_store", self._durable_families),
            ("redis", self._redis_families),
            ("brake", self._brake_families),
        )
        for name, source in sources:
            started = time.perf_counter()
            try:
                families = source()
            except Exception:  # a dead source leaves its families out, never fails the scrape
                families = []
                up.add_metric([name], 0)
            else:
                up.add_metric([name], 1)
            took.add_metric([name], time.perf_counter() - started)
            yield from families
        yield up
        yield took

    # --- durable store ---------------------------------------------------------------------------
    def _durable_families(self) -> list[Metric]:
        env = self.ctx.environment
        out: list[Metric] = []
        with read_connection(self.ctx.engine) as conn:
            out.extend(self._post_families(conn, env))
            out.extend(self._guard_families(conn, env))
            out.extend(self._learning_and_spend_families(conn, env))
            out.extend(self._audit_families(conn, env))
            out.extend(self._component_families(conn, env))
            out.extend(self._stall_and_budget_families(conn, env))
        return out

    def _stall_and_budget_families(self, conn: Connection, env: str) -> list[Metric]:
        """Stalled components (no success within twice their own interval) and the month's
        X API budget: used, left, the cap and the share used (the 80 % alert reads it)."""
        from xbot_assets.ops.component_health import component_health
        from xbot_assets.store.budget import USAGE_KEY_PREFIX, XApiCaps, month_of, month_usage

        now = self.ctx.clock()
        stalled = GaugeMetricFamily(
            "xbot_component_stalled",
            "1 when the component had no success within twice its own interval",
            labels=["component"],
        )
        for name, item in component_health(conn, environment=env, now=now).items():
            if item.interval_s is not None:
                stalled.add_metric([name[:MAX_LABEL_CHARS]], 1.0 if item.stalled else 0.0)
        value = conn.execute(
            select(bot_config.c.value).where(
                and_(
                    bot_config.c.environment == env,
                    bot_config.c.key == USAGE_KEY_PREFIX + month_of(now),
                )
            )
        ).scalar()
        usage = month_usage(month_of(now), value, XApiCaps.from_settings(self.ctx.settings), now)
        used = GaugeMetricFamily(
            "xbot_x_api_calls_month", "X API calls this calendar month (UTC)", labels=["kind"]
        )
        left = GaugeMetricFamily(
            "xbot_x_api_calls_left_month", "X API calls left this month", labels=["kind"]
        )
        cap = GaugeMetricFamily(
            "xbot_x_api_budget_month", "the plan's monthly X API call budget", labels=["kind"]
        )
        ratio = GaugeMetricFamily(
            "xbot_x_api_budget_used_ratio",
            "share of the month's X API budget used (1 = spent)",
            labels=["kind"],
        )
        for kind, count, remaining in (
            ("read", usage.reads, usage.reads_left),
            ("write", usage.writes, usage.writes_left),
        ):
            used.add_metric([kind], float(count))
            left.add_metric([kind], float(remaining))
            cap.add_metric([kind], float(usage.caps.cap(kind)))  # type: ignore[arg-type]
            ratio.add_metric([kind], usage.used_ratio(kind))  # type: ignore[arg-type]
        spend = GaugeMetricFamily(
            "xbot_x_api_spend_usd_month", "X API spend this month at the configured prices, USD"
        )
        spend.add_metric([], usage.cost_usd)
        denied = GaugeMetricFamily(
            "xbot_x_api_calls_denied_month", "X API calls the budget or window refused this month"
        )
        denied.add_metric([], float(usage.denied))
        return [stalled, used, left, cap, ratio, spend, denied]

    def _post_families(self, conn: Connection, env: str) -> list[Metric]:
        attempts = CounterMetricFamily(
            "xbot_post_attempts",
            "posting attempts by outcome (in_flight: claimed, not finished)",
            labels=["outcome"],
        )
        by_outcome: dict[str | None, int] = dict(
            conn.execute(
                select(post_attempts.c.outcome, func.count())
                .where(post_attempts.c.environment == env)
                .group_by(post_attempts.c.outcome)
            ).all()
        )
        for outcome in ATTEMPT_OUTCOME_LABELS:
            key = None if outcome == "in_flight" else outcome
            attempts.add_metric([outcome], float(by_outcome.get(key, 0)))

        by_status: dict[str, int] = dict(
            conn.execute(
                select(tweets.c.status, func.count())
                .where(tweets.c.environment == env)
                .group_by(tweets.c.status)
            ).all()
        )
        posts = CounterMetricFamily(
            "xbot_posts",
            "posts (thread parts included) that reached a final outcome: posted, failed, unknown",
            labels=["outcome"],
        )
        for outcome in ("posted", "failed", "unknown"):
            posts.add_metric([outcome], float(by_status.get(outcome, 0)))
        state = GaugeMetricFamily(
            "xbot_posts_in_state", "posts currently in each protocol state", labels=["status"]
        )
        for status in POST_STATUSES:
            state.add_metric([status], float(by_status.get(status, 0)))

        last_post = conn.execute(
            select(func.max(tweets.c.posted_at)).where(
                and_(tweets.c.environment == env, tweets.c.status == "posted")
            )
        ).scalar()
        now = self.ctx.clock()
        next_due = oldest_queued_schedule(conn, env)
        last_metrics = last_metrics_collection(conn, env)
        stamps = GaugeMetricFamily(
            "xbot_last_event_timestamp_seconds",
            "unix time of the last successful post / metrics collection",
            labels=["event"],
        )
        ages = GaugeMetricFamily(
            "xbot_last_event_age_seconds",
            "seconds since the last successful post / metrics collection (absent: never)",
            labels=["event"],
        )
        for event, moment in (("post", last_post), ("metrics_collection", last_metrics)):
            if moment is not None:
                stamps.add_metric([event], moment.timestamp())
                ages.add_metric([event], max(0.0, (now - moment).total_seconds()))
        lag = GaugeMetricFamily(
            "xbot_posting_lag_seconds",
            "how late the oldest queued post is against its scheduled time (0 if none is due)",
        )
        lag.add_metric([], max(0.0, (now - next_due).total_seconds()) if next_due else 0.0)
        return [attempts, posts, state, stamps, ages, lag]

    def _guard_families(self, conn: Connection, env: str) -> list[Metric]:
        totals = self._candidates.update(conn, env, self.ctx.clock())
        reasons = _cap_labels(
            {k.removeprefix("reason:"): v for k, v in totals.items() if k.startswith("reason:")}
        )
        cands = CounterMetricFamily(
            "xbot_candidates", "generated candidates by guard verdict", labels=["verdict"]
        )
        for verdict in ("passed", "rejected"):
            cands.add_metric([verdict], totals.get(f"verdict:{verdict}", 0.0))
        rejections = CounterMetricFamily(
            "xbot_guard_rejections",
            "safety-guard rejections by reason (a candidate may have several)",
            labels=["reason"],
        )
        for reason, count in sorted(reasons.items()):
            rejections.add_metric([reason], count)
        return [cands, rejections]

    def _learning_and_spend_families(self, conn: Connection, env: str) -> list[Metric]:
        today_key = AI_SPEND_KEY_PREFIX + self.ctx.clock().date().isoformat()
        rows = conn.execute(
            select(bot_config.c.key, bot_config.c.value).where(
                and_(
                    bot_config.c.environment == env,
                    or_(
                        bot_config.c.key.not_like(AI_SPEND_KEY_PREFIX + "%"),
                        bot_config.c.key == today_key,
                    ),
                )
            )
        ).all()
        config = {row.key: row.value for row in rows}
        out: list[Metric] = []
        for metric, help_text, kind in (
            ("xbot_model_auc", "AUC of the promoted engagement scorer", "auc"),
            ("xbot_regret_estimate", "the learning engine's latest regret estimate", "regret"),
        ):
            value = self._learning_value(config, kind)
            if value is not None:
                family = GaugeMetricFamily(metric, help_text)
                family.add_metric([], value)
                out.append(family)
        learned = config.get("learned")
        if isinstance(learned, dict) and isinstance(learned.get("arm_probabilities"), dict):
            arms = GaugeMetricFamily(
                "xbot_learned_arm_probability",
                "probability that each arm is best, from the latest learned_config",
                labels=["arm"],
            )
            probabilities = _cap_labels(
                {
                    str(arm)[:MAX_LABEL_CHARS]: float(p)
                    for arm, p in learned["arm_probabilities"].items()
                    if isinstance(p, int | float)
                }
            )
            for arm, probability in sorted(probabilities.items()):
                arms.add_metric([arm], probability)
            out.append(arms)
        spend = config.get(today_key)
        spend = spend if isinstance(spend, dict) else {}
        usd = GaugeMetricFamily(
            "xbot_ai_spend_usd_today", "AI generation spend today (UTC day), in USD"
        )
        usd.add_metric([], float(spend.get("usd", 0.0) or 0.0))
        calls = GaugeMetricFamily("xbot_ai_calls_today", "AI generation calls today (UTC day)")
        calls.add_metric([], float(spend.get("calls", 0) or 0))
        budget = GaugeMetricFamily("xbot_ai_budget_usd_per_day", "the daily AI spend cap, USD")
        override = _number(config.get("ai_budget_usd_per_day"), ("usd", "value"))
        budget.add_metric(
            [], override if override is not None else self.ctx.settings.ai_budget_usd_per_day
        )
        out.extend([usd, calls, budget])
        return out

    @staticmethod
    def _learning_value(config: dict[str, Any], kind: str) -> float | None:
        names = LEARNING_CONFIG_KEYS[kind]
        for key in names:
            if key in config:
                found = _number(config[key], names)
                if found is not None:
                    return found
        for key, value in config.items():
            if key.startswith(("model.", "policy.")) or any(
                word in key for word in ("scorer", "learning", "learned")
            ):
                found = _number(value, names)
                if found is not None:
                    return found
        return None

    def _audit_families(self, conn: Connection, env: str) -> list[Metric]:
        counts = self._audit.update(conn, env, self.ctx.clock())
        events = CounterMetricFamily(
            "xbot_audit_events", "audit_log entries by event type", labels=["event_type"]
        )
        for event_type, count in sorted(_cap_labels(dict(counts)).items()):
            events.add_metric([event_type], count)
        rate_limited = CounterMetricFamily(
            "xbot_rate_limit_rejections",
            "posts or calls refused by a rate limit (X's 429s and cap refusals in audit_log)",
        )
        rate_limited.add_metric(
            [], float(sum(v for k, v in counts.items() if "rate_limit" in k or "ratelimit" in k))
        )
        return [events, rate_limited]

    def _component_families(self, conn: Connection, env: str) -> list[Metric]:
        family = GaugeMetricFamily(
            "xbot_component_status",
            "1 for each component's latest status in system_health",
            labels=["component", "status"],
        )
        age = GaugeMetricFamily(
            "xbot_component_status_age_seconds",
            "seconds since the component last wrote its status",
            labels=["component"],
        )
        now = self.ctx.clock()
        for name, row in sorted(latest_component_statuses(conn, environment=env).items()):
            component = name[:MAX_LABEL_CHARS]
            for status in HEALTH_STATUSES:
                family.add_metric([component, status], 1.0 if row.status == status else 0.0)
            age.add_metric([component], max(0.0, (now - row.recorded_at).total_seconds()))
        return [family, age]

    # --- Redis ----------------------------------------------------------------------------------
    def _redis_families(self) -> list[Metric]:
        client = self.ctx.redis
        if client is None:
            return []
        keys = self.ctx.keys
        entries = GaugeMetricFamily(
            "xbot_queue_entries", "entries in a queue's streams", labels=["queue", "priority"]
        )
        lag = GaugeMetricFamily(
            "xbot_queue_lag", "entries not yet delivered to the consumer group", labels=["queue"]
        )
        pending = GaugeMetricFamily(
            "xbot_queue_pending", "entries delivered and not acknowledged", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "xbot_queue_oldest_pending_age_seconds",
            "age of the oldest delivered, unacknowledged entry",
            labels=["queue"],
        )
        redelivered = GaugeMetricFamily(
            "xbot_queue_pending_redelivered",
            "pending entries delivered more than once (claimed again after a stall)",
            labels=["queue"],
        )
        delayed = GaugeMetricFamily(
            "xbot_queue_delayed", "failed entries waiting for their retry", labels=["queue"]
        )
        dead = GaugeMetricFamily(
            "xbot_queue_dead_letters", "entries dead-lettered after max attempts", labels=["queue"]
        )
        reclaimed = GaugeMetricFamily(
            "xbot_queue_dead_letters_stuck",
            "dead letters whose last failure was a reclaim of a stuck entry",
            labels=["queue"],
        )
        now_ms = time.time() * 1000
        for queue in QUEUE_NAMES:
            streams = {p: keys.key("q", queue, f"p{p.value}") for p in Priority}
            pipe = client.pipeline(transaction=False)
            for stream in streams.values():
                pipe.xlen(stream)
            pipe.zcard(keys.key("q", queue, "delayed"))
            pipe.xlen(keys.key("q", queue, "dead"))
            pipe.xrevrange(keys.key("q", queue, "dead"), count=200)
            results = pipe.execute()
            lengths = results[: len(streams)]
            for priority, length in zip(streams, lengths, strict=True):
                entries.add_metric([queue, priority.name.lower()], float(length))
            delayed.add_metric([queue], float(results[len(streams)]))
            dead.add_metric([queue], float(results[len(streams) + 1]))
            recent_dead = results[len(streams) + 2] or []
            reclaimed.add_metric(
                [queue],
                float(
                    sum(1 for _id, f in recent_dead if str(f.get("error", "")).startswith("stuck"))
                ),
            )
            queue_lag = queue_pending = queue_redelivered = 0.0
            oldest_ms: float | None = None
            for stream, length in zip(streams.values(), lengths, strict=True):
                if not length:
                    continue
                try:
                    groups = client.xinfo_groups(stream)
                except redis.ResponseError:
                    continue
                for group in groups:
                    group_lag = group.get("lag")
                    queue_lag += float(group_lag if group_lag is not None else 0)
                    if int(group.get("pending", 0)):
                        summary = client.xpending(stream, group["name"])
                        queue_pending += float(summary.get("pending", 0))
                        if summary.get("min"):
                            ms = float(str(summary["min"]).split("-", 1)[0])
                            oldest_ms = ms if oldest_ms is None else min(oldest_ms, ms)
                        detail = client.xpending_range(
                            stream, group["name"], min="-", max="+", count=100
                        )
                        queue_redelivered += sum(
                            1 for d in detail if int(d.get("times_delivered", 1)) > 1
                        )
            lag.add_metric([queue], queue_lag)
            pending.add_metric([queue], queue_pending)
            redelivered.add_metric([queue], queue_redelivered)
            oldest.add_metric([queue], max(0.0, (now_ms - oldest_ms) / 1000) if oldest_ms else 0.0)
        out: list[Metric] = [entries, lag, pending, oldest, redelivered, delayed, dead, reclaimed]
        out.extend(self._rate_limit_usage(client))
        return out

    def _rate_limit_usage(self, client: redis.Redis) -> list[Metric]:
        from xbot_assets.store.hot.ratelimit import RateCaps, RateLimiter

        limiter = RateLimiter(
            client, self.ctx.keys, RateCaps.from_settings(self.ctx.settings), clock=self.ctx.clock
        )
        usage = limiter.usage()
        family = GaugeMetricFamily(
            "xbot_rate_limit_usage",
            "current rate-limit counters in Redis (posts this hour/today, AI USD today, X calls)",
            labels=["counter"],
        )
        for name, value in sorted(usage.items()):
            family.add_metric([name], value)
        return [family]

    # --- brake ----------------------------------------------------------------------------------
    def _brake_families(self) -> list[Metric]:
        state = self.ctx.read_brake()
        family = GaugeMetricFamily("xbot_brake_engaged", "1 while the emergency brake is on")
        family.add_metric([], 1.0 if state.engaged else 0.0)
        return [family]


def build_registry(
    ctx: HealthContext, *, with_process: bool = True, warm_up: bool = False
) -> CollectorRegistry:
    """A registry holding the durable-state collector (and the server's process metrics).

    With ``warm_up`` a background thread runs one collection right away: the first collection
    reads every candidate and audit row once to seed the running totals (seconds on a large
    store), so it happens at start-up instead of inside the first scrape's timeout.
    """
    registry = CollectorRegistry(auto_describe=False)
    collector = DurableStateCollector(ctx)
    registry.register(collector)
    if warm_up:
        threading.Thread(
            target=lambda: list(collector.collect()), name="xbot-metrics-warm-up", daemon=True
        ).start()
    if with_process:
        from prometheus_client import ProcessCollector

        ProcessCollector(registry=registry)
    return registry
