"""Work queues on Redis Streams with consumer groups: at-least-once, with effects of exactly once.

Each queue (``pending_posts``, ``analytics_processing``, ``sync_to_supabase``) is three streams,
one per :class:`Priority`; a reader drains the higher priority first. Only queues the running loop
consumes are declared (the seed's ``candidate_generation`` and ``scoring`` had no consumer: the
refill job generates and scores in one step). Around them:

- a *delayed* sorted set holds failed entries until their backoff is over (score = due time on
  the injectable clock); :meth:`StreamQueue.promote_due` moves due entries back atomically (Lua);
- :meth:`StreamQueue.reclaim_stuck` takes entries idle with a consumer longer than the policy's
  limit (``XAUTOCLAIM``, a crashed or hung worker) and counts that as a failed attempt;
- after ``max_attempts`` an entry goes to the queue's *dead-letter* stream, with the last error;
- :meth:`StreamQueue.trim` removes only acknowledged history: the cut is below the oldest entry
  still pending and above nothing undelivered, so it never drops work;
- :meth:`StreamQueue.process` skips an entry whose idempotency key is already marked done, marks it
  done and acknowledges it in one transaction after the handler succeeds. A handler that crashes
  after its effect but before the mark is re-run, so handlers write idempotently to the durable
  store (upsert by natural key, state transitions guarded by the current state); together the
  effect of processing an entry twice is the effect of once.

Redis is never the truth: a flush loses queue entries, and the owners re-enqueue from the durable
store (see :class:`xbot_assets.store.hot.dual.DualStoreManager`).

Why one module of about 600 lines: it is one class, :class:`StreamQueue`, whose methods share the
same three streams, delayed set and dead-letter stream and the Lua scripts that move entries
between them atomically; split across files, the invariants each script relies on (what is
pending, what may be trimmed) would no longer be readable in one place.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any, Literal

import redis

from xbot_assets.store.hot.keys import KeySpace
from xbot_assets.store.timebase import Clock, to_epoch_us, utc_now

QUEUE_NAMES: tuple[str, ...] = (
    "pending_posts",
    "analytics_processing",
    "sync_to_supabase",
)
"""Every queue the bot runs; :class:`StreamQueue` refuses other names so typos fail loudly."""

DEFAULT_GROUP = "workers"


class Priority(IntEnum):
    """Lower value is read first."""

    HIGH = 0
    NORMAL = 1
    LOW = 2


@dataclass(frozen=True)
class QueuePolicy:
    """How a queue treats failures.

    Attributes:
        max_attempts: deliveries before an entry is dead-lettered (a stuck reclaim counts as one).
        idle_ms: an entry held by a consumer this long without an ack is reclaimed (server time).
        backoff_base_s: first retry delay on the queue's clock; doubles per attempt.
        backoff_max_s: the delay never grows beyond this.
        done_ttl_s: how long the "already processed" mark of an idempotency key lives.
    """

    max_attempts: int = 5
    idle_ms: int = 60_000
    backoff_base_s: float = 2.0
    backoff_max_s: float = 600.0
    done_ttl_s: int = 7 * 86_400

    def backoff_s(self, attempts: int) -> float:
        """Delay before the retry that follows ``attempts`` failed deliveries (>= 1)."""
        exponent = max(0, attempts - 1)
        return float(min(self.backoff_max_s, self.backoff_base_s * (2.0**exponent)))


@dataclass(frozen=True, slots=True)
class Message:
    """One delivered entry.

    Attributes:
        entry_id: the stream id of this delivery (a retry gets a new one).
        stream_key: the (prefixed) stream it was read from.
        idempotency_key: names the work; the same key is processed once.
        payload: the JSON payload given at enqueue.
        attempts: failed deliveries before this one.
        priority: the stream it came from.
    """

    entry_id: str
    stream_key: str
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int
    priority: Priority


@dataclass
class ProcessReport:
    """What one :meth:`StreamQueue.process` call did."""

    done: list[str] = field(default_factory=list)
    skipped_duplicates: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)


# Moves due entries from the delayed set back to their priority stream, atomically.
# KEYS[1] = delayed zset, KEYS[2..] = streams by priority; ARGV = now score, limit.
_PROMOTE_LUA = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  local m = cjson.decode(member)
  redis.call('XADD', KEYS[2 + tonumber(m.pr)], '*', 'm', m.m)
  redis.call('ZREM', KEYS[1], member)
end
return #due
"""


# Appends many entries to one stream in one command (fewer round trips and less client-side
# packing than one XADD each). KEYS[1] = stream; ARGV = entry bodies. Returns the new ids.
_BULK_ADD_LUA = """
local ids = {}
for i = 1, #ARGV do
  ids[i] = redis.call('XADD', KEYS[1], '*', 'm', ARGV[i])
end
return ids
"""
_BULK_CHUNK = 500


def _safe_part(text: str) -> str:
    """A key part for an idempotency key: kept if plain, else hashed (no glob chars in keys)."""
    if text and len(text) <= 120 and all(ch.isalnum() or ch in "-_.:/=" for ch in text):
        return text
    return "h_" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _next_id(entry_id: str) -> str:
    """The smallest stream id greater than ``entry_id``."""
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class StreamQueue:
    """A priority work queue on Redis Streams with one consumer group.

    Args:
        client: a redis client with ``decode_responses=True`` (see ``keys.connect_redis``).
        keys: the key space (environment prefix).
        name: one of :data:`QUEUE_NAMES`.
        group: the consumer group; every worker of the queue uses the same one.
        policy: retries, idle limit, dead-lettering.
        clock: the injectable clock used for retry backoff.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: KeySpace,
        name: str,
        *,
        group: str = DEFAULT_GROUP,
        policy: QueuePolicy | None = None,
        clock: Clock = utc_now,
    ) -> None:
        if name not in QUEUE_NAMES:
            raise ValueError(f"unknown queue {name!r}: use one of {', '.join(QUEUE_NAMES)}")
        self.client = client
        self.keys = keys
        self.name = name
        self.group = group
        self.policy = policy or QueuePolicy()
        self.clock = clock
        self.stream_keys: dict[Priority, str] = {
            p: keys.key("q", name, f"p{p.value}") for p in Priority
        }
        self._priority_of = {v: k for k, v in self.stream_keys.items()}
        self.delayed_key = keys.key("q", name, "delayed")
        self.dead_key = keys.key("q", name, "dead")
        self._promote = client.register_script(_PROMOTE_LUA)
        self._bulk_add = client.register_script(_BULK_ADD_LUA)
        self._groups_ready = False

    # --- setup ---------------------------------------------------------------------------------
    def done_key(self, idempotency_key: str) -> str:
        """The "already processed" mark of one idempotency key."""
        return self.keys.key("q", self.name, "done", _safe_part(idempotency_key))

    def ensure_groups(self) -> None:
        """Create the streams and the consumer group if missing (idempotent; after a flush too)."""
        for stream in self.stream_keys.values():
            try:
                self.client.xgroup_create(stream, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready = True

    def _with_groups(self, action: Callable[[], Any]) -> Any:
        """Run ``action``; if Redis lost the group (flush, restart) recreate it and run again."""
        if not self._groups_ready:
            self.ensure_groups()
        try:
            return action()
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_groups()
            return action()

    # --- producing -------------------------------------------------------------------------------
    @staticmethod
    def _body(key: str, payload: Mapping[str, Any], attempts: int) -> str:
        """One field per entry (``m``): key, attempts and payload in one JSON object, so a batch
        of entries is cheap to pack and to parse."""
        return json.dumps({"k": key, "a": attempts, "p": payload}, separators=(",", ":"))

    def enqueue(
        self,
        payload: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> str:
        """Add one entry; returns its stream id. The key defaults to a fresh UUID."""
        return self.enqueue_many([(idempotency_key, payload)], priority=priority)[0]

    def enqueue_many(
        self,
        items: Iterable[tuple[str | None, Mapping[str, Any]]],
        *,
        priority: Priority = Priority.NORMAL,
    ) -> list[str]:
        """Add many ``(idempotency_key, payload)`` entries in one pipelined round trip."""
        stream = self.stream_keys[Priority(priority)]
        bodies = [self._body(key or uuid.uuid4().hex, payload, 0) for key, payload in items]
        if not bodies:
            return []
        if len(bodies) == 1:
            return [str(self.client.xadd(stream, {"m": bodies[0]}))]
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(bodies), _BULK_CHUNK):
            chunk = bodies[start : start + _BULK_CHUNK]
            self._bulk_add(keys=[stream], args=chunk, client=pipe)
        return [str(entry_id) for ids in pipe.execute() for entry_id in ids]

    def enqueue_at(
        self,
        payload: Mapping[str, Any],
        due: datetime,
        *,
        idempotency_key: str | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> None:
        """Add one entry that becomes readable at ``due`` (the queue's clock): it waits in the
        delayed set and :meth:`read` promotes it then (a post queued for its slot)."""
        key = idempotency_key or uuid.uuid4().hex
        member = json.dumps(
            {"m": self._body(key, payload, 0), "pr": int(priority), "src": f"at:{key}"},
            separators=(",", ":"),
        )
        self.client.zadd(self.delayed_key, {member: to_epoch_us(due)})

    # --- consuming -------------------------------------------------------------------------------
    def _to_message(self, stream: str, priority: Priority, entry_id: str, fields: Any) -> Message:
        body = json.loads(fields.get("m", "{}"))
        return Message(
            entry_id=entry_id,
            stream_key=stream,
            idempotency_key=str(body.get("k", entry_id)),
            payload=body.get("p") or {},
            attempts=int(body.get("a", 0)),
            priority=priority,
        )

    def read(
        self,
        consumer: str,
        count: int = 10,
        block_ms: int | None = None,
        *,
        now: datetime | None = None,
    ) -> list[Message]:
        """Deliver new entries to ``consumer`` (up to ``count`` per priority), higher priority
        first in the list.

        Entries of the delayed set due at ``now`` (default: the queue's clock; a caller with a
        clock of its own, the posting service, passes it) are promoted in the same round trip.
        With ``block_ms`` the call waits that long for an entry when all streams are empty.
        """
        due_us = to_epoch_us(now or self.clock())
        streams: dict[Any, Any] = dict.fromkeys(self.stream_keys.values(), ">")

        def _read() -> list[Message]:
            # Promote due retries and read every priority in one round trip; the entries come
            # back higher priority first (at most ``count`` per priority).
            pipe = self.client.pipeline(transaction=False)
            self._promote(
                keys=[self.delayed_key, *self.stream_keys.values()],
                args=[due_us, 1000],
                client=pipe,
            )
            pipe.xreadgroup(self.group, consumer, streams, count=count)
            resp = pipe.execute()[-1]
            out = sorted(self._decode(resp), key=lambda m: m.priority)
            if not out and block_ms:
                resp = self.client.xreadgroup(
                    self.group, consumer, streams, count=count, block=block_ms
                )
                out = sorted(self._decode(resp), key=lambda m: m.priority)
            return out

        return list(self._with_groups(_read))

    def _decode(self, resp: Any) -> list[Message]:
        out: list[Message] = []
        loads = json.loads
        for stream, entries in resp or []:
            priority = self._priority_of[stream]
            for entry_id, fields in entries:
                if fields is None:  # entry deleted while pending: nothing to deliver
                    continue
                body = loads(fields.get("m", "{}"))
                out.append(
                    Message(
                        entry_id,
                        stream,
                        str(body.get("k", entry_id)),
                        body.get("p") or {},
                        int(body.get("a", 0)),
                        priority,
                    )
                )
        return out

    def ack(self, messages: Sequence[Message]) -> int:
        """Acknowledge delivered entries (one XACK per stream, pipelined)."""
        by_stream: dict[str, list[str]] = {}
        for message in messages:
            by_stream.setdefault(message.stream_key, []).append(message.entry_id)
        if not by_stream:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.group, *ids)
        return sum(int(n) for n in pipe.execute())

    def is_done(self, idempotency_key: str) -> bool:
        """Whether the work named by ``idempotency_key`` was already processed."""
        return bool(self.client.exists(self.done_key(idempotency_key)))

    def complete(self, messages: Sequence[Message]) -> None:
        """Mark entries' keys done and acknowledge them, in one MULTI/EXEC transaction."""
        if not messages:
            return
        pipe = self.client.pipeline(transaction=True)
        for message in messages:
            pipe.set(self.done_key(message.idempotency_key), "1", ex=self.policy.done_ttl_s)
            pipe.xack(message.stream_key, self.group, message.entry_id)
        pipe.execute()

    def fail(self, message: Message, error: str) -> Literal["retry", "dead"]:
        """Record a failed delivery: schedule a retry with backoff, or dead-letter it.

        The new copy and the acknowledgement of the old one commit together (MULTI/EXEC), so a
        crash in between neither loses nor doubles the entry.
        """
        attempts = message.attempts + 1
        pipe = self.client.pipeline(transaction=True)
        if attempts >= self.policy.max_attempts:
            pipe.xadd(
                self.dead_key,
                {
                    "k": message.idempotency_key,
                    "a": attempts,
                    "p": json.dumps(message.payload, separators=(",", ":")),
                    "error": error[:2000],
                    "source": message.entry_id,
                    "priority": int(message.priority),
                    "failed_at": self.clock().isoformat(),
                },
            )
            outcome: Literal["retry", "dead"] = "dead"
        else:
            due_us = to_epoch_us(self.clock()) + int(self.policy.backoff_s(attempts) * 1e6)
            member = self._delayed_member(message, attempts)
            pipe.zadd(self.delayed_key, {member: due_us})
            outcome = "retry"
        pipe.xack(message.stream_key, self.group, message.entry_id)
        pipe.execute()
        return outcome

    def _delayed_member(self, message: Message, attempts: int) -> str:
        """A delayed-set member: the entry body to re-add, its priority, and the source id
        (which keeps two copies of the same work distinct members)."""
        body = self._body(message.idempotency_key, message.payload, attempts)
        return json.dumps(
            {"m": body, "pr": int(message.priority), "src": message.entry_id},
            separators=(",", ":"),
        )

    def defer(self, message: Message, until: datetime) -> None:
        """Put an entry back until ``until`` (the queue's clock) without counting an attempt:
        for work that is fine but not allowed yet (a rate cap, the brake)."""
        member = self._delayed_member(message, message.attempts)
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(self.delayed_key, {member: to_epoch_us(until)})
        pipe.xack(message.stream_key, self.group, message.entry_id)
        pipe.execute()

    def promote_due(self, limit: int = 1000) -> int:
        """Move retries whose backoff is over back into their stream; returns how many."""
        now_us = to_epoch_us(self.clock())
        keys = [self.delayed_key, *self.stream_keys.values()]
        return int(self._promote(keys=keys, args=[now_us, limit]))

    def read_own_pending(self, consumer: str, count: int = 100) -> list[Message]:
        """Entries delivered to ``consumer`` and not yet acknowledged (its own backlog).

        A worker that left entries pending on purpose (e.g. the durable store was down) takes
        them again with this before reading new ones; no attempt is counted.
        """

        def _read() -> list[Message]:
            out: list[Message] = []
            for stream in self.stream_keys.values():
                if len(out) >= count:
                    break
                resp = self.client.xreadgroup(
                    self.group, consumer, {stream: "0"}, count=count - len(out)
                )
                out.extend(self._decode(resp))
            return out

        return list(self._with_groups(_read))

    def claim_idle(
        self, consumer: str, *, idle_ms: int | None = None, count: int = 100
    ) -> list[Message]:
        """Move entries idle with any consumer for ``idle_ms`` (default: the policy's) to
        ``consumer`` with ``XAUTOCLAIM`` and return them, without counting an attempt."""
        min_idle = self.policy.idle_ms if idle_ms is None else idle_ms

        def _claim() -> list[Message]:
            out: list[Message] = []
            for priority, stream in self.stream_keys.items():
                start = "0-0"
                while len(out) < count:
                    resp = self.client.xautoclaim(
                        stream,
                        self.group,
                        consumer,
                        min_idle,
                        start_id=start,
                        count=count - len(out),
                    )
                    start, entries = str(resp[0]), resp[1]
                    out.extend(
                        self._to_message(stream, priority, entry_id, fields)
                        for entry_id, fields in entries
                        if fields is not None
                    )
                    if start == "0-0":
                        break
            return out

        return list(self._with_groups(_claim))

    def reclaim_stuck(
        self, consumer: str, *, idle_ms: int | None = None, batch: int = 1000
    ) -> ProcessReport:
        """Take entries idle with any consumer for ``idle_ms`` (default: the policy's) and count
        each as a failed attempt: retried with backoff, or dead-lettered after ``max_attempts``.

        This is for queues whose entries may be poison (a worker that hangs on them). A worker
        that knows why it could not finish (the durable store is down) leaves its entries pending
        and takes them back with :meth:`read_own_pending` or :meth:`claim_idle` instead.
        """
        report = ProcessReport()
        min_idle = self.policy.idle_ms if idle_ms is None else idle_ms
        for message in self.claim_idle(consumer, idle_ms=min_idle, count=batch):
            if self.fail(message, f"stuck: idle for more than {min_idle} ms") == "dead":
                report.dead.append(message.idempotency_key)
            else:
                report.retried.append(message.idempotency_key)
        return report

    def process(
        self,
        consumer: str,
        handler: Callable[[Message], None],
        *,
        count: int = 10,
        block_ms: int | None = None,
    ) -> ProcessReport:
        """Read up to ``count`` entries and run ``handler`` once per entry not yet done.

        An entry whose idempotency key is marked done is acknowledged without running the
        handler. A handler that raises sends the entry to :meth:`fail` (retry or dead letter).
        """
        report = ProcessReport()
        messages = self.read(consumer, count=count, block_ms=block_ms)
        if not messages:
            return report
        pipe = self.client.pipeline(transaction=False)
        for message in messages:
            pipe.exists(self.done_key(message.idempotency_key))
        already = [bool(flag) for flag in pipe.execute()]
        duplicates = [m for m, seen in zip(messages, already, strict=True) if seen]
        if duplicates:
            self.ack(duplicates)
            report.skipped_duplicates.extend(m.idempotency_key for m in duplicates)
        done_in_batch: set[str] = set()
        for message, seen in zip(messages, already, strict=True):
            if seen:
                continue
            if message.idempotency_key in done_in_batch:  # the same work twice in one batch
                self.ack([message])
                report.skipped_duplicates.append(message.idempotency_key)
                continue
            try:
                handler(message)
            except Exception as exc:  # the handler's failure is the entry's, not the worker's
                outcome = self.fail(message, f"{type(exc).__name__}: {exc}")
                (report.dead if outcome == "dead" else report.retried).append(
                    message.idempotency_key
                )
                continue
            self.complete([message])
            done_in_batch.add(message.idempotency_key)
            report.done.append(message.idempotency_key)
        return report

    # --- housekeeping -------------------------------------------------------------------------
    def trim(self) -> int:
        """Remove acknowledged history; never an entry that is pending or not yet delivered.

        The cut (``XTRIM MINID``) is the lower of the oldest pending id and the id just after the
        group's last delivered one, read before trimming. Entries delivered later have higher ids
        and entries pending at the read stay at or above the cut, so a race only trims less.
        """

        def _trim() -> int:
            removed = 0
            for priority, stream in self.stream_keys.items():
                cut = self.settled_below(priority)
                if cut is not None:
                    removed += int(self.client.xtrim(stream, minid=cut, approximate=False))
            return removed

        return int(self._with_groups(_trim))

    def settled_below(self, priority: Priority = Priority.NORMAL) -> str | None:
        """The id below which every entry of a priority stream is acknowledged (None: no group).

        It is the lower of the oldest pending id and the id just after the group's last delivered
        one: entries under it were delivered and acknowledged; entries at or above it may not be.
        """
        stream = self.stream_keys[priority]
        try:
            groups = self.client.xinfo_groups(stream)
        except redis.ResponseError as exc:
            if "no such key" in str(exc).lower():
                return None  # the stream does not exist (yet, or after a flush)
            raise
        ours = next((g for g in groups if g["name"] == self.group), None)
        if ours is None:
            return None
        cut = _next_id(str(ours["last-delivered-id"]))
        if int(ours["pending"]) > 0:
            summary = self.client.xpending(stream, self.group)
            oldest = summary.get("min")
            if oldest and _id_tuple(str(oldest)) < _id_tuple(cut):
                cut = str(oldest)
        return cut

    @staticmethod
    def id_below(entry_id: str, cut: str) -> bool:
        """Whether stream id ``entry_id`` sorts before ``cut``."""
        return _id_tuple(entry_id) < _id_tuple(cut)

    def dead_letters(self, count: int = 100) -> list[dict[str, Any]]:
        """The oldest dead-lettered entries with their error (for an operator or a test)."""
        out = []
        entries: Any = self.client.xrange(self.dead_key, count=count)
        for entry_id, fields in entries or []:
            item: dict[str, Any] = dict(fields or {})
            item["dead_id"] = entry_id
            item["p"] = json.loads(item.get("p", "{}"))
            out.append(item)
        return out

    def stats(self) -> dict[str, int]:
        """Depths for health and dashboards: entries in streams, pending, delayed, dead."""
        pipe = self.client.pipeline(transaction=False)
        for stream in self.stream_keys.values():
            pipe.xlen(stream)
        pipe.zcard(self.delayed_key)
        pipe.xlen(self.dead_key)
        results = [int(x) for x in pipe.execute()]
        pending = 0
        for stream in self.stream_keys.values():
            try:
                pending += int(self.client.xpending(stream, self.group).get("pending", 0))
            except redis.ResponseError:
                continue
        return {
            "stream_entries": sum(results[: len(self.stream_keys)]),
            "pending": pending,
            "delayed": results[-2],
            "dead": results[-1],
        }
