"""Config and budget: the environment's ``bot_config`` values (the AI budget counter among them),
every write audited in the same transaction.

The one path to ``bot_config``: the posting ledger (back-off, schedule) and the X API budget's
counters read and write through here too (:func:`config_value` inside a caller's transaction,
``update_config(audited=False)`` for counters that are not configuration changes).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from xbot_assets.store.durable import schema as s
from xbot_assets.store.durable.audit import write_audit
from xbot_assets.store.durable.base import Repository
from xbot_assets.store.durable.errors import InvalidInputError
from xbot_assets.store.durable.models import AuditEvent
from xbot_assets.store.durable.validate import (
    valid_config_key,
    valid_json,
    valid_now,
    valid_opt_str,
    valid_str,
)


def config_value(conn: Connection, environment: str, key: str, default: Any = None) -> Any:
    """The JSON value under ``key`` in the caller's transaction (a claim reads the back-off in
    its own), or ``default``."""
    b = s.bot_config
    row = conn.execute(
        select(b.c.value).where(b.c.environment == environment, b.c.key == key)
    ).first()
    return default if row is None else row.value


class ConfigRepository(Repository):
    """Read and (atomically) change the environment's JSON config values."""

    def get_config(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key`` for this environment, or ``default``."""
        key = valid_config_key(key)
        with self._tx(write=False) as conn:
            return config_value(conn, self.environment, key, default)

    def all_config(self) -> dict[str, Any]:
        """Every config key and value of this environment."""
        b = s.bot_config
        with self._tx(write=False) as conn:
            rows = conn.execute(
                select(b.c.key, b.c.value)
                .where(b.c.environment == self.environment)
                .order_by(b.c.key)
            ).all()
        return {r.key: r.value for r in rows}

    def set_config(
        self,
        key: str,
        value: Any,
        *,
        actor: str,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Store ``value`` (JSON) under ``key`` and write an audit_log entry saying who did it.

        The entry (``event_type='config_changed'``) holds the old and new values; both writes
        commit together or not at all.
        """
        key = valid_config_key(key)
        value = valid_json("value", value)
        actor = valid_str("actor", actor, 128)
        reason = valid_opt_str("reason", reason, 4000)
        now = valid_now(now)
        b = s.bot_config
        with self._tx() as conn:
            old = conn.execute(
                select(b.c.value).where(b.c.environment == self.environment, b.c.key == key)
            ).first()
            stmt = self._insert(b).values(
                environment=self.environment,
                key=key,
                value=value,
                updated_by=actor,
                updated_at=now,
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[b.c.key, b.c.environment],
                set_={"value": stmt.excluded.value, "updated_by": actor, "updated_at": now},
            )
            conn.execute(stmt)
            self._audit_config_change(conn, key, old, value, actor=actor, reason=reason, now=now)

    def update_config(
        self,
        key: str,
        change: Callable[[Any], Any],
        *,
        actor: str,
        reason: str | None = None,
        now: datetime | None = None,
        audited: bool = True,
    ) -> Any:
        """Replace the value under ``key`` with ``change(old)`` atomically; returns the new value.

        A read-modify-write (e.g. adding to a counter) that processes can run at once without
        losing an update: in one transaction the row is locked (``FOR UPDATE`` on Postgres; the
        ``BEGIN IMMEDIATE`` write lock on SQLite), ``change`` gets the current value (None when
        the key is unset) and the result is written with the same audit_log entry as
        :meth:`set_config`. ``change`` must be pure: it may be called again when a concurrent
        writer created the key first. ``audited=False`` skips the audit entry, for counters that
        are not configuration changes (the X API budget counts every call).
        """
        key = valid_config_key(key)
        actor = valid_str("actor", actor, 128)
        reason = valid_opt_str("reason", reason, 4000)
        if not callable(change):
            raise InvalidInputError("change must be a function from the old value to the new one")
        now = valid_now(now)
        b = s.bot_config
        locked = (
            select(b.c.value)
            .where(b.c.environment == self.environment, b.c.key == key)
            .with_for_update()
        )
        with self._tx() as conn:
            old = conn.execute(locked).first()
            if old is None:
                value = valid_json("value", change(None))
                created = conn.execute(
                    self._insert(b)
                    .values(
                        environment=self.environment,
                        key=key,
                        value=value,
                        updated_by=actor,
                        updated_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=[b.c.key, b.c.environment])
                    .returning(b.c.id)
                ).first()
                if created is None:
                    # Another writer created the key and committed while we looked: its row
                    # is visible (and lockable) to this statement.
                    old = conn.execute(locked).one()
            if old is not None:
                value = valid_json("value", change(old.value))
                conn.execute(
                    update(b)
                    .where(b.c.environment == self.environment, b.c.key == key)
                    .values(value=value, updated_by=actor, updated_at=now)
                )
            if audited:
                self._audit_config_change(
                    conn, key, old, value, actor=actor, reason=reason, now=now
                )
        return value

    def _audit_config_change(
        self,
        conn: Connection,
        key: str,
        old: Any,
        value: Any,
        *,
        actor: str,
        reason: str | None,
        now: datetime,
    ) -> None:
        """The audit_log entry of a bot_config write (old is the previous row, or None)."""
        write_audit(
            conn,
            self.environment,
            AuditEvent(
                event_type="config_changed",
                component="bot_config",
                actor=actor,
                occurred_at=now,
                data={
                    "key": key,
                    "old": None if old is None else old.value,
                    "new": value,
                    "created": old is None,
                    "reason": reason,
                },
            ),
        )


__all__ = ["ConfigRepository", "config_value"]
