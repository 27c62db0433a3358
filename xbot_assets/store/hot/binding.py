"""The Redis key space of one durable store: ``REDIS_PREFIX`` plus an id kept in the store.

Redis must never hold what the store does not: a fresh store (``make clean``, a test's new
database) on a Redis that still has the last store's hashes, rate counters, tickets and buffered
events would refuse texts and posts the new store never saw, or write the old store's events into
it. Every user of the hot path (the posting loop, the collectors, the sync job) takes its keys
from :func:`store_keyspace`, so such leftovers are unreachable (they expire with their TTLs).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from xbot_assets.store.hot.keys import KeySpace

KEYSPACE_CONFIG_KEY = "hot_path.keyspace"
"""bot_config key: this store's own part of the Redis prefix (see :func:`store_keyspace`)."""


def store_keyspace(settings: Any, engine: Any) -> KeySpace:
    """``REDIS_PREFIX`` plus an id drawn once per durable store and kept in its ``bot_config``
    (created on first use; a concurrent first use keeps whichever id was inserted first)."""
    from sqlalchemy.dialects import postgresql, sqlite

    from xbot_assets.store.durable.schema import bot_config
    from xbot_assets.store.timebase import utc_now

    base = KeySpace.from_settings(settings)
    env = settings.app_env
    query = select(bot_config.c.value).where(
        bot_config.c.environment == env, bot_config.c.key == KEYSPACE_CONFIG_KEY
    )
    with engine.begin() as conn:
        value = conn.execute(query).scalar_one_or_none()
        if value is None:
            dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
            conn.execute(
                dialect.insert(bot_config)
                .values(
                    environment=env,
                    key=KEYSPACE_CONFIG_KEY,
                    value={"id": uuid.uuid4().hex[:12]},
                    updated_by="hot path",
                    updated_at=utc_now(),
                )
                .on_conflict_do_nothing()
            )
            value = conn.execute(query).scalar_one()
    return KeySpace(f"{base.prefix}{value['id']}:")
