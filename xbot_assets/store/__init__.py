"""The stores: the durable store (``durable/``, the truth) and the Redis hot path (``hot/``).

This package imports nothing heavy on purpose: import what you need from its sub-packages, e.g.
``from xbot_assets.store.durable import DurableStore`` or
``from xbot_assets.store.durable.guard import require_current_schema``. ``timebase.py`` (the one
clock every process reads) is shared by both halves.
"""
