"""The health server: liveness, readiness and Prometheus metrics read from durable state.

The server is its own process; posts, generation and learning run in Dagster runs (other
processes). So nothing here keeps in-process counters: every figure is read from the durable
store and Redis when it is asked for (see :mod:`xbot_assets.health.metrics`).
"""
