"""Compare two durable stores row by row, apart from timestamps and random ids.

Why: ``make run REDIS=1`` must leave the same store as ``make run`` of the same seed (Redis makes
the loop fast, the durable store decides). :func:`store_contents` reads every table of the loop
into plain rows with the columns that are allowed to differ taken out: timestamps (``*_at``), the
random ids a run draws (attempt, event and batch ids, UUIDs inside JSON) and the worker name
(host:pid), and the ``hot_path.*`` config (the store's Redis binding). ``system_health`` is left
out: it says whether Redis was up, which is the difference
the comparison is about. :func:`diff_contents` names the first rows that differ per table
(floats within a tolerance: :data:`REL_TOL`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, select

from xbot_assets.store.durable import schema

TABLES = (
    "accounts",
    "tweets",
    "post_attempts",
    "candidates",
    "tweet_metrics",
    "bot_config",
    "daily_summaries",
    "audit_log",
)
"""The tables the loop writes whose contents must match (not ``system_health``)."""

RANDOM_COLUMNS = frozenset(
    {"last_attempt_id", "attempt_id", "event_id", "batch_id", "worker", "chosen_candidate_id"}
)
_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _scrub(value: Any) -> Any:
    """JSON values with random ids and timestamps replaced by placeholders."""
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in sorted(value.items()) if not str(k).endswith("_at")}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        if _UUID.match(value):
            return "<id>"
        if _ISO_TIME.match(value):
            return "<time>"
    if isinstance(value, float):
        return round(value, 9)
    return value


def store_contents(engine: Engine, environment: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of :data:`TABLES` in ``environment``, in id order, without the columns that
    may differ between two runs of the same seed."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name in TABLES:
            table = schema.metadata.tables[name]
            kept = [
                c
                for c in table.columns
                if not c.name.endswith("_at")
                and c.name not in RANDOM_COLUMNS
                and not (name == "bot_config" and c.name == "id")  # compared by key
            ]
            query = select(*kept).where(table.c.environment == environment)
            if name == "bot_config":  # the Redis binding exists only where Redis is set
                query = query.where(table.c.key.not_like("hot\\_path.%", escape="\\"))
            order = [table.c["key"]] if name == "bot_config" else [table.c["id"]]
            rows = conn.execute(query.order_by(*order)).all()
            out[name] = [tuple(_scrub(v) for v in row) for row in rows]
    return out


_NUMBER = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?")
REL_TOL = 1e-4
ABS_TOL = 2e-6
"""Floats (and decimals written inside texts) equal within these tolerances count as equal (2e-6:
scores are stored rounded to 6 decimals): the
posterior fit's linear algebra is not bit-for-bit reproducible across processes (BLAS), so two
runs of the same seed can differ in a score's sixth decimal while every choice is the same."""


def same(a: Any, b: Any) -> bool:
    """Whether two scrubbed values are equal, floats within :data:`REL_TOL`/:data:`ABS_TOL`."""
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, int | float) and isinstance(b, int | float):
            return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
        return False
    if isinstance(a, str) and isinstance(b, str):
        if a == b:
            return True
        if _NUMBER.sub("#", a) != _NUMBER.sub("#", b):
            return False
        return all(
            math.isclose(float(x), float(y), rel_tol=REL_TOL, abs_tol=ABS_TOL)
            for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b), strict=True)
        )
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def diff_contents(
    left: Mapping[str, list[tuple[Any, ...]]],
    right: Mapping[str, list[tuple[Any, ...]]],
    *,
    limit: int = 3,
) -> list[str]:
    """One line per difference (row counts, then the first differing rows); empty: equal."""
    lines: list[str] = []
    for name in TABLES:
        a, b = list(left.get(name, [])), list(right.get(name, []))
        if len(a) != len(b):
            lines.append(f"{name}: {len(a)} rows vs {len(b)}")
        shown = 0
        for index, (row_a, row_b) in enumerate(zip(a, b, strict=False)):
            if shown < limit and not same(row_a, row_b):
                lines.append(f"{name} row {index}: {row_a!r} != {row_b!r}")
                shown += 1
    return lines
