"""The emergency brake: one switch that stops every post from the next check on.

The truth is one ``bot_config`` row (key :data:`BRAKE_CONFIG_KEY` = ``"brake"``, the key the posting
ledger's claim gate reads), changed in the same transaction as its ``audit_log`` row
(``brake.engaged`` / ``brake.released``). Redis holds a mirror with a short TTL for fast checks
(generation sensors, dashboards); a missing or unreadable mirror is rebuilt from the durable row,
and every claim of a post checks the durable row itself, so a flushed or stale Redis can delay a
release by at most the TTL but can never let a post through an engaged brake.

Value shape (JSON): ``{"engaged": bool, "reason": str, "since": iso-8601, "by": actor}``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from xbot_assets.ops.audit import EVENT_BRAKE_ENGAGED, EVENT_BRAKE_RELEASED, record_audit
from xbot_assets.store.durable.schema import bot_config
from xbot_assets.store.hot.keys import KeySpace
from xbot_assets.store.timebase import Clock, utc_now

log = logging.getLogger(__name__)

BRAKE_CONFIG_KEY = "brake"
MIRROR_TTL_S = 30
"""How long the Redis mirror is trusted before it is re-read from the durable store."""


@dataclass(frozen=True)
class BrakeStatus:
    """The brake as last set.

    Attributes:
        engaged: True while no post may be claimed.
        reason: why it was last changed.
        since: when it was last changed (the bot's clock).
        by: who changed it (``operator:<user>``, ``posting``...).
        source: where this answer came from: ``durable`` or ``redis``.
    """

    engaged: bool
    reason: str | None = None
    since: datetime | None = None
    by: str | None = None
    source: str = "durable"

    def as_value(self) -> dict[str, Any]:
        return {
            "engaged": self.engaged,
            "reason": self.reason,
            "since": self.since.isoformat() if self.since else None,
            "by": self.by,
        }

    @classmethod
    def from_value(cls, value: Any, source: str) -> BrakeStatus:
        """Parse a stored value; ``True`` alone (older rows) also means engaged."""
        if value is True:
            return cls(True, "engaged", source=source)
        if not isinstance(value, dict):
            return cls(False, source=source)
        since = value.get("since")
        return cls(
            engaged=bool(value.get("engaged")),
            reason=value.get("reason"),
            since=datetime.fromisoformat(since) if isinstance(since, str) else None,
            by=value.get("by"),
            source=source,
        )


def read_durable_brake(conn: Connection, environment: str) -> BrakeStatus:
    """The brake from ``bot_config`` inside the caller's transaction (claims use this)."""
    row = conn.execute(
        select(bot_config.c.value).where(
            bot_config.c.environment == environment, bot_config.c.key == BRAKE_CONFIG_KEY
        )
    ).first()
    return BrakeStatus.from_value(None if row is None else row[0], "durable")


def upsert_bot_config(
    conn: Connection, environment: str, key: str, value: Any, actor: str, now: datetime
) -> None:
    """Insert or replace one ``bot_config`` value (``ON CONFLICT (key, environment)``)."""
    row = {"environment": environment, "key": key, "value": value, "updated_by": actor}
    row["updated_at"] = now
    dialect = conn.dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(bot_config).values(**row)
    stmt = stmt.on_conflict_do_update(
        index_elements=[bot_config.c.key, bot_config.c.environment],
        set_={"value": stmt.excluded.value, "updated_by": actor, "updated_at": now},
    )
    conn.execute(stmt)


class EmergencyBrake:
    """Engage, release and read the brake of one environment.

    Args:
        engine: the durable store.
        environment: ``local``/``staging``/``production``.
        client: the hot store (mirror), or ``None``.
        keys: the key space (environment prefix).
        clock: the bot's clock.
    """

    def __init__(
        self,
        engine: Engine,
        environment: str,
        client: redis.Redis | None,
        keys: KeySpace,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.environment = environment
        self.client = client
        self.keys = keys
        self.clock = clock

    @property
    def mirror_key(self) -> str:
        return self.keys.key("brake")

    def engage(self, reason: str, *, actor: str) -> BrakeStatus:
        """Stop every post from the next check on. Raises if the durable store is unreachable
        (then nothing can be claimed either); the mirror follows once the row is committed."""
        return self._set(True, reason, actor)

    def release(self, reason: str, *, actor: str) -> BrakeStatus:
        """Allow posting again (audited like :meth:`engage`)."""
        return self._set(False, reason, actor)

    def _set(self, engaged: bool, reason: str, actor: str) -> BrakeStatus:
        if not reason.strip():
            raise ValueError("say why the brake changes (a reason is required for the audit log)")
        now = self.clock()
        status = BrakeStatus(engaged, reason.strip(), now, actor, "durable")
        with self.engine.begin() as conn:
            upsert_bot_config(
                conn, self.environment, BRAKE_CONFIG_KEY, status.as_value(), actor, now
            )
            record_audit(
                conn,
                environment=self.environment,
                event_type=EVENT_BRAKE_ENGAGED if engaged else EVENT_BRAKE_RELEASED,
                actor=actor,
                component="brake",
                data={"reason": status.reason, "engaged": engaged},
                severity="critical" if engaged else "warning",
                clock=lambda: now,
            )
        self._mirror(status)
        return status

    def _mirror(self, status: BrakeStatus) -> None:
        if self.client is None:
            return
        try:
            self.client.set(self.mirror_key, json.dumps(status.as_value()), ex=MIRROR_TTL_S)
        except redis.RedisError as exc:
            log.warning("brake mirror not written, Redis unavailable: %s", type(exc).__name__)

    def durable_status(self) -> BrakeStatus:
        """The brake from the durable store (and refresh the mirror)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="DEFERRED")
            with conn.begin():
                status = read_durable_brake(conn, self.environment)
        self._mirror(status)
        return status

    def status(self) -> BrakeStatus:
        """Fast read: the Redis mirror if present, else the durable row (which re-mirrors)."""
        if self.client is not None:
            try:
                raw = self.client.get(self.mirror_key)
            except redis.RedisError:
                raw = None
            if isinstance(raw, str):
                return BrakeStatus.from_value(json.loads(raw), "redis")
        return self.durable_status()

    def is_engaged(self) -> bool:
        """Fast check for everything that is not a claim (claims read the durable row)."""
        return self.status().engaged
