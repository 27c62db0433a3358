"""Dagster wiring only: assets, checks, jobs, sensors, schedules and resources.

Modules here are thin and have no side effects at import: they call into the layers
(`sandbox`, `store`, `content`, `posting`, `learning`) that hold the logic.
"""
