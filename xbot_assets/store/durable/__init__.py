"""The durable half of the store: the truth, on SQLite (embedded) or Postgres (Supabase).

Schema (``schema.py``), migrations (``migrations/``, run by ``migrate.py``), the start-up guard
(``guard.py``), the engine (``engine.py``), typed rows (``models.py``) and errors
(``errors.py``), and :class:`DurableStore`, the facade over the per-aggregate repositories.

``from xbot_assets.store.durable import DurableStore`` is the public way in; callers that need
only the schema or the guard import those modules directly.
"""

from xbot_assets.store.durable.facade import MAX_TEXT_CHARS, DurableStore, thread_part_hash

__all__ = ["MAX_TEXT_CHARS", "DurableStore", "thread_part_hash"]
