"""The posting loop on the hot path: Redis in front, the durable claim as the truth.

One code path with one switch (``REDIS_URL``): :func:`open_hot_path` gives the loop a
:class:`~xbot_assets.store.hot.dual.DualStoreManager` whose Redis client is that of
``REDIS_URL``, or ``None``. Every step below runs in both cases; without Redis the manager's
calls fall through to the durable store (tickets come from polling the due rows, the counters
and the dedup cache answer "unknown"), so the loop is exactly the store-only loop.

With Redis, per post:

1. the refill job queues the row durably, then remembers its content hash
   (:class:`~xbot_assets.store.hot.dedup.DedupCache`, per account, with a TTL) and puts a ticket for
   it on ``pending_posts``, waiting in the delayed set until the post's slot
   (:func:`remember_queued`). The next refill checks a chosen text against the cache before the
   durable unique key (:func:`seen_before`);
2. the posting service reads the due tickets from the stream (the pending-entries list holds a
   ticket until it is settled), prechecks the brake mirror and the account's Redis rate counters
   (a denial there is a proof: the counters never over-count), then claims with the ledger's
   durable claim, which re-checks every gate and decides which row goes (:func:`claim_next`);
3. tickets are settled from the durable rows: acknowledged once their row left ``queued``, put
   back until their (maybe moved) slot otherwise (:func:`_settle`); the counters are bumped when
   a post is (or may be) on X (:func:`count_on_x`).

Why the durable claim still picks the row: it is the truth, and it keeps the Redis run's posts
identical to the store-only run's (``make run REDIS=1`` is checked against ``make run``). Why
nothing is lost when Redis loses its data: a post whose ticket is gone is still a ``queued`` row;
an empty stream falls back to polling the due rows (``DualStoreManager.next_posts``), and a stream
holding only other tickets still ends in the durable claim, which takes the oldest due row.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import select

from xbot_assets.store.durable.schema import tweets
from xbot_assets.store.hot.binding import store_keyspace
from xbot_assets.store.hot.cache import CONFIG_TTL_S, HotCache, HotConfig
from xbot_assets.store.hot.dedup import DedupCache, content_hash
from xbot_assets.store.hot.dual import ClaimResult, DualStoreManager, PostTicket
from xbot_assets.store.hot.keys import KeySpace, connect_redis
from xbot_assets.store.hot.ratelimit import PostKind, RateCaps

log = logging.getLogger(__name__)

_CLIENTS: dict[str, redis.Redis] = {}
_CLIENTS_LOCK = threading.Lock()
TICKETS_PER_READ = 10


def hot_client(settings: Any) -> redis.Redis | None:
    """This process's Redis client for ``REDIS_URL`` (one pool per URL), or None when unset."""
    url = getattr(settings, "redis_url", None)
    if not url:
        return None
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(url)
        if client is None:
            client = connect_redis(url)
            _CLIENTS[url] = client
        return client


def forget_hot_clients() -> None:
    """Close and drop the cached clients (tests that point REDIS_URL elsewhere)."""
    with _CLIENTS_LOCK:
        while _CLIENTS:
            _url, client = _CLIENTS.popitem()
            client.close()


def open_hot_path(settings: Any, engine: Any, *, clock: Any) -> DualStoreManager:
    """The loop's manager over the durable store's ``engine`` on ``clock`` (the run's clock: the
    delayed tickets and the rate buckets follow simulated time in the main job)."""
    from xbot_assets.posting.ledger import worker_name

    client = hot_client(settings)
    keys = (
        store_keyspace(settings, engine) if client is not None else KeySpace.from_settings(settings)
    )
    return DualStoreManager(
        engine,
        settings.app_env,
        client,
        keys,
        caps=RateCaps.from_settings(settings),
        clock=clock,
        consumer=worker_name(),  # one consumer per process, not one per run
    )


def _dedup(manager: DualStoreManager, account_id: int) -> DedupCache:
    """The account's content-hash cache (the durable unique key is per account too)."""
    keys = KeySpace(f"{manager.keys.prefix}acct{int(account_id)}:")
    return DedupCache(manager.client if manager.redis_available() else None, keys)


def text_hash(parts: Sequence[str]) -> str:
    """The hash the durable store gives a post or a thread (its parts joined by a space)."""
    return content_hash(" ".join(parts))


def seen_before(manager: DualStoreManager, account_id: int, parts: Sequence[str]) -> bool:
    """Whether Redis remembers this text for the account (only ever after a durable insert, so
    True is a proof; False means "ask the durable unique key")."""
    return _dedup(manager, account_id).seen(text_hash(parts))


def remember_queued(
    manager: DualStoreManager,
    account_id: int,
    posts: Sequence[Any],
    *,
    now: datetime | None = None,
) -> int:
    """After the durable enqueue committed: remember the root's hash and put one ticket per row
    on ``pending_posts``, readable from its slot (delayed when the slot is after ``now``, the
    caller's clock). Returns the tickets written (0 without Redis; harmless: the posting service
    then polls the due rows)."""
    if not posts or not manager.redis_available():
        return 0
    _dedup(manager, account_id).remember(str(posts[0].content_hash))
    written = 0
    for post in posts:
        written += manager.enqueue_post(
            int(post.id),
            account_id,
            thread_position=int(post.thread_position),
            due=post.scheduled_at,
            now=now,
        )
    return written


def _best_first(tickets: Sequence[PostTicket]) -> list[PostTicket]:
    """The durable claim's order: a started thread's parts first, then the oldest row."""
    return sorted(tickets, key=lambda t: (-t.thread_position, t.tweet_id))


def _rows(manager: DualStoreManager, ids: Sequence[int]) -> dict[int, tuple[str, datetime]]:
    if not ids:
        return {}
    with manager.engine.connect() as conn:
        found = conn.execute(
            select(tweets.c.id, tweets.c.status, tweets.c.scheduled_at).where(
                tweets.c.environment == manager.environment, tweets.c.id.in_(list(ids))
            )
        ).all()
    return {int(r.id): (str(r.status), r.scheduled_at) for r in found}


def _settle(
    manager: DualStoreManager,
    tickets: Sequence[PostTicket],
    now: datetime,
    *,
    not_before: datetime | None = None,
) -> None:
    """Acknowledge the tickets whose row left ``queued``; put the others back until their slot
    (or ``not_before``, when a cap said so): the row decides, the ticket only follows it."""
    streamed = [t for t in tickets if t.message is not None]
    if not streamed:
        return
    rows = _rows(manager, [t.tweet_id for t in streamed])
    for ticket in streamed:
        status, scheduled_at = rows.get(ticket.tweet_id, ("gone", now))
        if status != "queued":
            manager.settle(ticket, ClaimResult("gone", ticket.tweet_id), now=now)
            continue
        until = max(d for d in (scheduled_at, not_before, now) if d is not None)
        blocked = ClaimResult("blocked", ticket.tweet_id, retry_after=until - now)
        manager.settle(ticket, blocked, now=now)


def claim_next(
    ledger: Any,
    manager: DualStoreManager,
    account_id: int,
    caps: Any,
    *,
    now: datetime,
    worker: str | None = None,
) -> Any:
    """Claim the account's next due post through the hot path; the ledger's durable claim decides.

    Returns what :meth:`PostingLedger.claim_next_due` returns (a claim, a ``Blocked``, or None).
    """
    from xbot_assets.posting.ledger import Blocked

    tickets = manager.next_posts(TICKETS_PER_READ, now=now)
    if not tickets:  # the stream is empty and no row is due anywhere: no write transaction
        return None
    mine = _best_first([t for t in tickets if t.account_id == account_id])
    others = [t for t in tickets if t.account_id != account_id]
    for ticket in others:  # another account's worker takes it
        manager.settle(ticket, ClaimResult("blocked", ticket.tweet_id, retry_after=None), now=now)
    if mine and manager.redis_available():
        kind: PostKind = "reply" if mine[0].thread_position > 0 else "post"
        if manager.brake.status().engaged:
            _settle(manager, mine, now)
            return Blocked("emergency brake engaged")
        fast = manager.limiter(account_id).precheck_post(kind, now)
        if not fast:
            until = now + fast.retry_after if fast.retry_after is not None else None
            _settle(manager, mine, now, not_before=until)
            return Blocked(f"{fast.reason} (Redis precheck)", until)
    claim = ledger.claim_next_due(account_id, caps, now=now, worker=worker)
    until = claim.until if isinstance(claim, Blocked) else None
    _settle(manager, mine, now, not_before=until)
    return claim


def count_on_x(
    manager: DualStoreManager, account_id: int, thread_position: int, at: datetime
) -> None:
    """Bump the account's Redis rate counters for a post that is (or may be) on X, stamped with
    its claim time, so they never count more than the durable rows do."""
    if manager.redis_available():
        kind: PostKind = "reply" if thread_position > 0 else "post"
        manager.limiter(account_id).record_post(kind, at)


def posterior_cache(settings: Any, *, hot: DualStoreManager | None = None) -> HotCache:
    """The cache of the posteriors the policy acts on, in the store's key space (``hot``'s, or
    the one of the settings' store); without Redis every read goes to the model file."""
    if hot is None:
        client = hot_client(settings)
        if client is None:
            return HotCache(None, KeySpace.from_settings(settings))
        from xbot_assets.engine.sensing import cached_store

        return HotCache(client, store_keyspace(settings, cached_store(settings).engine))
    return HotCache(hot.client if hot.redis_available() else None, hot.keys)


def config_cache(store: Any, hot: DualStoreManager) -> HotConfig:
    """``store`` with its ``bot_config`` reads cached in ``hot``'s key space (TTL; writes through
    it invalidate); without Redis every read goes to the store."""
    client = hot.client if hot.redis_available() else None
    return HotConfig(store, HotCache(client, hot.keys, ttl_s=CONFIG_TTL_S))


def invalidate_config(settings: Any, engine: Any, key: str) -> None:
    """Drop the cached ``bot_config`` value of ``key`` (after a write that did not go through
    :func:`config_cache`); no-op without Redis."""
    client = hot_client(settings)
    if client is not None:
        HotConfig(None, HotCache(client, store_keyspace(settings, engine))).invalidate(key)


def cached_posterior(path: Path, cache: HotCache | None) -> Any:
    """The factored posterior saved at ``path``, read through ``cache`` (keyed by the file's
    size and modification time; ``factored_posteriors`` drops it when it writes a new one).
    None when there is no cache or no file (the caller's loader then reads or refuses)."""
    if cache is None or not path.exists():
        return None
    from xbot_assets.learning.posterior import FactoredPosterior

    stat = path.stat()
    data = cache.get_json(
        path.stem, f"{stat.st_mtime_ns}-{stat.st_size}", lambda: json.loads(path.read_text())
    )
    return FactoredPosterior.from_dict(data)
