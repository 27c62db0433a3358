"""The hot cache of posteriors and config: read-through with a TTL, invalidated by the writer,
keyed by version so a lost invalidation never serves an old value for a new file."""

from __future__ import annotations

from typing import Any

import redis

from xbot_assets.store.hot.cache import HotCache, HotConfig
from xbot_assets.store.hot.keys import KeySpace


class CountingStore:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {"schedule": {"posts_per_day": 4}}
        self.reads = 0

    def get_config(self, key: str, default: Any = None) -> Any:
        self.reads += 1
        return self.values.get(key, default)

    def set_config(self, key: str, value: Any, **_kw: Any) -> None:
        self.values[key] = value

    def list_accounts(self) -> list[str]:
        return ["a"]


def test_read_through_then_invalidated(redis_client: redis.Redis, keys: KeySpace) -> None:
    cache = HotCache(redis_client, keys, ttl_s=60)
    loads: list[int] = []

    def load() -> dict[str, int]:
        loads.append(1)
        return {"n": len(loads)}

    assert cache.get_json("posterior_x", "v1", load) == {"n": 1}
    assert cache.get_json("posterior_x", "v1", load) == {"n": 1}  # from Redis
    assert len(loads) == 1
    assert cache.get_json("posterior_x", "v2", load) == {"n": 2}  # a new version: a new key
    assert redis_client.ttl(keys.key("cache", "posterior_x", "v2")) > 0
    assert cache.invalidate("posterior_x") == 2
    assert cache.get_json("posterior_x", "v2", load) == {"n": 3}


def test_without_redis_every_read_loads(keys: KeySpace) -> None:
    cache = HotCache(None, keys)
    assert cache.get_json("p", "v", lambda: 1) == 1
    assert cache.misses == 1 and cache.hits == 0


def test_redis_down_falls_back_to_the_loader(keys: KeySpace) -> None:
    dead = redis.Redis(port=1, socket_connect_timeout=0.2)
    assert HotCache(dead, keys).get_json("p", "v", lambda: {"ok": True}) == {"ok": True}


def test_config_cached_and_invalidated_by_writes(redis_client: redis.Redis, keys: KeySpace) -> None:
    store = CountingStore()
    config = HotConfig(store, HotCache(redis_client, keys, ttl_s=60))
    assert config.get_config("schedule") == {"posts_per_day": 4}
    assert config.get_config("schedule") == {"posts_per_day": 4}
    assert store.reads == 1
    assert config.get_config("missing", {"d": 1}) == {"d": 1}
    config.set_config("schedule", {"posts_per_day": 6}, actor="test")
    assert config.get_config("schedule") == {"posts_per_day": 6}  # the change is seen at once
    assert config.list_accounts() == ["a"]  # everything else is the store's
