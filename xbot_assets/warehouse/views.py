"""The performance views in ``sql/views/``: one ``.sql`` file each, created in DuckDB's ``views``.

A view file is a plain ``select`` over the dbt marts (``marts.<model>``); the marts it reads are
found in its text, so the Dagster factory can draw the lineage without a second list to keep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

VIEWS_DIR = Path(__file__).resolve().parent.parent.parent / "sql" / "views"
VIEWS_SCHEMA = "views"
_MART_REF = re.compile(r"\bmarts\.([a-z_][a-z0-9_]*)\b")
_NAME = re.compile(r"^vw_[a-z0-9_]+$")


@dataclass(frozen=True)
class ViewDefinition:
    """One view file: its name (the file stem), its SQL and the dbt models it reads."""

    name: str
    sql: str
    path: Path

    @property
    def description(self) -> str:
        """The leading ``--`` comment of the file: what the view means for the business."""
        lines = []
        for line in self.sql.splitlines():
            if not line.startswith("--"):
                break
            lines.append(line.removeprefix("--").strip())
        return " ".join(lines) or f"Performance view {self.name}."

    @property
    def upstream_models(self) -> list[str]:
        """The dbt models (``marts.<name>``) the view selects from."""
        return sorted(set(_MART_REF.findall(self.sql)))


def discover_views(folder: Path = VIEWS_DIR) -> list[ViewDefinition]:
    """Every ``vw_*.sql`` file of the folder, sorted by name.

    Raises:
        ValueError: a file whose name is not ``vw_<lowercase>.sql`` or that reads no mart.
    """
    found = []
    for path in sorted(folder.glob("*.sql")):
        if not _NAME.match(path.stem):
            raise ValueError(f"{path}: view files are named vw_<lowercase_name>.sql; rename it")
        view = ViewDefinition(name=path.stem, sql=path.read_text().strip().rstrip(";"), path=path)
        if not view.upstream_models:
            raise ValueError(f"{path}: a view reads the dbt marts (marts.<model>); none found")
        found.append(view)
    return found


def create_view(con: duckdb.DuckDBPyConnection, view: ViewDefinition) -> None:
    """(Re)create the view in the ``views`` schema."""
    con.execute(f"create schema if not exists {VIEWS_SCHEMA}")
    con.execute(f"create or replace view {VIEWS_SCHEMA}.{view.name} as {view.sql}")


def markdown_table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    """A small markdown table (for Dagster metadata previews)."""

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def view_summary(
    con: duckdb.DuckDBPyConnection, name: str, preview_rows: int = 10
) -> tuple[int, str]:
    """The view's row count and a markdown preview of its first rows, from one execution of the
    view (counting and previewing separately ran an aggregate over every post twice)."""
    cur = con.execute(f"select * from {VIEWS_SCHEMA}.{name}")  # noqa: S608
    columns = [d[0] for d in cur.description or []]
    preview = cur.fetchmany(preview_rows)
    count = len(preview)
    while batch := cur.fetchmany(10_000):  # the views are aggregates: few rows
        count += len(batch)
    return count, markdown_table(columns, preview)
