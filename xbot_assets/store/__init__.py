"""The stores: the durable store (the truth) and the Redis hot path.

This package imports nothing heavy on purpose: import what you need from its modules, e.g.
``from xbot_assets.store.durable import DurableStore`` or
``from xbot_assets.store.guard import require_current_schema``.
"""
