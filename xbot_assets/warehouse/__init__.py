"""The warehouse layer: DuckDB loading, the dbt project handle, the performance views.

Pure logic and I/O helpers only; the Dagster wiring lives in ``xbot_assets/defs/warehouse.py``
and ``xbot_assets/defs/dbt.py``.
"""
