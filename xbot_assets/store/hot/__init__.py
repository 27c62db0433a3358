"""The hot half of the store: Redis, the fast path that the durable store can always rebuild.

Key names (``keys.py``), the priority streams (``streams.py``), de-duplication (``dedup.py``),
rate limits (``ratelimit.py``), the emergency brake (``brake.py``) and the manager that keeps
Redis and the durable store in step (``dual.py``). Import what you need from those modules;
this package imports nothing itself so that importing one of them stays cheap.
"""
