"""One home per side for the names of formats, topics, metrics and horizons.

xbot reads them from ``xbot_assets/vocabulary.py``; the sandbox (which imports nothing from xbot)
from ``xbot_assets/sandbox/vocabulary.py``. The two must agree name for name and order for order
(arm indices, metric vectors and horizon ordering depend on it), and no other module may keep its
own copy of one of these lists: a copy is how a new metric ends up stored but never collected.
"""

from __future__ import annotations

import ast
from pathlib import Path

from xbot_assets import vocabulary as bot
from xbot_assets.sandbox import vocabulary as sandbox

PACKAGE = Path(bot.__file__).parent
HOMES = {PACKAGE / "vocabulary.py", PACKAGE / "sandbox" / "vocabulary.py"}
LISTS = {
    "FORMATS": bot.FORMATS,
    "DEFAULT_TOPICS": bot.DEFAULT_TOPICS,
    "ALL_TOPICS": bot.ALL_TOPICS,
    "METRIC_NAMES": bot.METRIC_NAMES,
    "ENGAGEMENT_METRICS": bot.ENGAGEMENT_METRICS,
    "ENGAGEMENT_ACTIONS": bot.ENGAGEMENT_ACTIONS,
    "HORIZONS": bot.HORIZONS,
}


def test_the_bot_and_the_sandbox_agree_on_every_name_and_order() -> None:
    assert bot.FORMATS == sandbox.FORMATS
    assert bot.ALL_TOPICS == sandbox.TOPICS
    assert set(bot.DEFAULT_TOPICS) <= set(sandbox.TOPICS)
    assert bot.METRIC_NAMES == sandbox.METRICS
    assert bot.ENGAGEMENT_METRICS == sandbox.ENGAGEMENT_METRICS
    assert bot.ENGAGEMENT_ACTIONS == sandbox.ENGAGEMENT_ACTIONS
    assert bot.HORIZON_HOURS == sandbox.HORIZONS
    assert tuple(sandbox.HORIZONS) == bot.HORIZONS
    assert list(bot.HORIZON_HOURS.values()) == sorted(bot.HORIZON_HOURS.values())


def _string_lists(source: str) -> list[tuple[int, frozenset[str]]]:
    """Every tuple, list or set literal made only of strings, with its line."""
    found: list[tuple[int, frozenset[str]]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts:
            strings = [
                e.value
                for e in node.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            ]
            if len(strings) == len(node.elts):
                found.append((node.lineno, frozenset(strings)))
    return found


def test_no_module_outside_the_two_homes_repeats_a_vocabulary_list() -> None:
    wanted = {frozenset(names): label for label, names in LISTS.items()}
    copies = [
        f"{path.relative_to(PACKAGE.parent)}:{line} repeats {wanted[values]}"
        for folder in (PACKAGE, PACKAGE.parent / "benchmarks", PACKAGE.parent / "scripts")
        for path in sorted(folder.rglob("*.py"))
        if path not in HOMES
        for line, values in _string_lists(path.read_text(encoding="utf-8"))
        if values in wanted
    ]
    assert not copies, "import these from xbot_assets/vocabulary.py instead:\n" + "\n".join(copies)


def test_the_scan_finds_a_copy() -> None:
    """The guard above is not vacuous: a literal copy of the horizons is caught."""
    source = 'HORIZONS = ("72h", "24h", "6h", "1h")\n'
    values = {v for _, v in _string_lists(source)}
    assert frozenset(bot.HORIZONS) in values


def test_the_store_and_the_warehouse_take_their_columns_from_the_vocabulary() -> None:
    from xbot_assets.store.durable import schema
    from xbot_assets.warehouse.raw_schema import column_names

    metric_columns = [c.name for c in schema.tweet_metrics.columns if c.name in bot.METRIC_NAMES]
    assert metric_columns == list(bot.METRIC_NAMES)
    raw = column_names("tweet_metrics")
    assert [c for c in raw if c in bot.METRIC_NAMES] == list(bot.METRIC_NAMES)
    assert schema.HORIZONS is bot.HORIZONS and schema.METRIC_NAMES is bot.METRIC_NAMES
