"""Warehouse wiring: extraction of the durable store into DuckDB's `raw` schema.

Thin on purpose: the logic lives in ``xbot_assets/warehouse/``.
"""

import dagster as dg
import sqlalchemy as sa

from xbot_assets.defs.resources import XbotSettings
from xbot_assets.warehouse.duck import warehouse
from xbot_assets.warehouse.extract import replace_table, store_available, store_has_table
from xbot_assets.warehouse.raw_schema import create_raw_tables

WAREHOUSE_GROUP = "warehouse"


@dg.asset(group_name=WAREHOUSE_GROUP, kinds={"duckdb", "python"})
def raw_posts(
    context: dg.AssetExecutionContext, xbot_settings: XbotSettings
) -> dg.MaterializeResult:
    """Every post the bot has queued or published, copied from the durable store into ``raw.posts``.

    An empty or not yet migrated store gives an empty table, so the warehouse still builds.
    """
    settings = xbot_settings.get()
    url = settings.resolved_database_url
    source = "durable store"
    with warehouse(settings.resolved_warehouse_path) as con:
        create_raw_tables(con)
        rows = 0
        if store_available(url):
            engine = sa.create_engine(url)
            try:
                if store_has_table(engine, "tweets"):
                    rows = replace_table(con, "posts", [])
                else:
                    source = "durable store not migrated yet (no tweets table)"
            finally:
                engine.dispose()
        else:
            source = "no durable store yet"
    context.log.info("raw.posts: %s rows (%s)", rows, source)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "source": source,
            "warehouse": str(settings.resolved_warehouse_path),
        }
    )


defs = dg.Definitions(assets=[raw_posts])
