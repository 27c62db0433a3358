"""Content-hash dedup: one normalising hash, a Redis pre-check with TTL."""

from __future__ import annotations

import unicodedata

from xbot_assets.store.hot.dedup import DedupCache, content_hash, normalize_text
from xbot_assets.store.hot.keys import KeySpace, connect_redis


def test_trivial_variants_share_one_hash():
    base = "Café tips for Python: use pytest"
    decomposed = unicodedata.normalize("NFD", base)
    assert decomposed != base
    variants = [
        decomposed,
        "  café   TIPS for python:\n use PYTEST  ",
        "Café\u00a0tips for Python:\tuse pytest",
        "Café tips\u200b for Python: use pytest",
    ]
    assert {content_hash(v) for v in variants} == {content_hash(base)}
    assert len(content_hash(base)) == 64


def test_url_paths_keep_their_case_but_hosts_do_not():
    a = content_hash("Read this https://Example.COM/Guide?id=AbC")
    assert a == content_hash("read THIS https://example.com/Guide?id=AbC")
    assert a != content_hash("Read this https://example.com/guide?id=abc")
    assert normalize_text("See HTTPS://X.com/Path") == "see https://x.com/Path"


def test_different_texts_differ():
    assert content_hash("How to test asyncio code") != content_hash("How to test asyncio code?")
    # the emoji joiner changes which emoji is shown: kept
    assert content_hash("👩\u200d💻 ships") != content_hash("👩💻 ships")


def test_cache_remembers_with_ttl_and_scopes_by_prefix(redis_client, keys):
    cache = DedupCache(redis_client, keys, ttl_s=60)
    digest = content_hash("Hot take: notebooks are fine")
    assert not cache.seen(digest)
    assert cache.remember(digest)
    assert cache.seen(digest) and cache.is_duplicate_text("hot take:  NOTEBOOKS are fine")
    assert 0 < redis_client.ttl(cache.key(digest)) <= 60
    other_env = DedupCache(redis_client, KeySpace(keys.prefix[:-1] + "x:"), ttl_s=60)
    assert not other_env.seen(digest)  # staging never blocks production's texts
    assert cache.seen_many([digest, content_hash("new")]) == [True, False]
    cache.forget(digest)
    assert not cache.seen(digest)


def test_cache_says_not_seen_when_redis_is_down():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = connect_redis(f"redis://127.0.0.1:{port}/0", connect_timeout_s=0.2)
    cache = DedupCache(dead, KeySpace("test:dead:"))
    assert cache.seen(content_hash("x")) is False  # the durable unique index decides
    assert cache.remember(content_hash("x")) is False
    assert DedupCache(None, KeySpace("test:none:")).seen("ab") is False
