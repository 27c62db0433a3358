"""Accounts: the X accounts this deployment posts as (one row per handle and environment)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from xbot_assets.store.durable import schema as s
from xbot_assets.store.durable.base import Repository
from xbot_assets.store.durable.errors import AccountNotFoundError
from xbot_assets.store.durable.models import Account
from xbot_assets.store.durable.validate import (
    valid_handle,
    valid_id,
    valid_json_obj,
    valid_now,
    valid_opt_str,
    valid_str,
)


class AccountRepository(Repository):
    """Create, find and list the environment's accounts."""

    def ensure_account(
        self,
        handle: str,
        *,
        x_user_id: str | None = None,
        display_name: str | None = None,
        timezone: str = "UTC",
        metadata: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Account:
        """Return the account with ``handle``, creating it if missing.

        Given non-None fields update an existing account (e.g. an X user id learnt later);
        ``timezone`` is only used when creating it. Safe when several processes call it at once.
        """
        handle = valid_handle(handle)
        x_user_id = valid_opt_str("x_user_id", x_user_id, 32)
        display_name = valid_opt_str("display_name", display_name, 128)
        timezone = valid_str("timezone", timezone, 64)
        meta = valid_json_obj("metadata", metadata)
        now = valid_now(now)
        t = s.accounts
        with self._tx() as conn:
            # ON CONFLICT DO NOTHING: two processes ensuring the same account both succeed.
            insert = self._new_row(
                t,
                now,
                handle=handle,
                x_user_id=x_user_id,
                display_name=display_name,
                timezone=timezone,
                active=True,
                metadata=meta,
            )
            conn.execute(
                insert.on_conflict_do_nothing(index_elements=[t.c.environment, t.c.handle])
            )
            mine = select(t).where(t.c.environment == self.environment, t.c.handle == handle)
            row = conn.execute(mine).one()
            changes: dict[str, Any] = {}
            if x_user_id is not None and x_user_id != row.x_user_id:
                changes["x_user_id"] = x_user_id
            if display_name is not None and display_name != row.display_name:
                changes["display_name"] = display_name
            if metadata is not None and meta != row.metadata:
                changes["metadata"] = meta
            if changes:
                conn.execute(update(t).where(t.c.id == row.id).values(**changes, updated_at=now))
            found = conn.execute(mine).one()
        return Account(**found._mapping)

    def get_account(self, account_id: int) -> Account:
        """The account with this id. Raises :class:`AccountNotFoundError`."""
        account_id = valid_id("account_id", account_id)
        with self._tx(write=False) as conn:
            return Account(**account_row(conn, self.environment, account_id)._mapping)

    def get_account_by_handle(self, handle: str) -> Account:
        """The account with this handle. Raises :class:`AccountNotFoundError`."""
        handle = valid_handle(handle)
        row = self._first(s.accounts, s.accounts.c.handle == handle)
        if row is None:
            raise AccountNotFoundError(
                f"no account {handle!r} in {self.environment}: create it with ensure_account"
            )
        return Account(**row._mapping)

    def list_accounts(self, *, active_only: bool = True) -> list[Account]:
        """Every account of this environment, oldest first."""
        t = s.accounts
        q = select(t).where(t.c.environment == self.environment).order_by(t.c.id)
        if active_only:
            q = q.where(t.c.active.is_(True))
        with self._tx(write=False) as conn:
            return [Account(**r._mapping) for r in conn.execute(q)]


def account_row(conn: Connection, environment: str, account_id: int) -> Row[Any]:
    """The account row (in the caller's transaction). Raises :class:`AccountNotFoundError`."""
    t = s.accounts
    row = conn.execute(
        select(t).where(t.c.environment == environment, t.c.id == account_id)
    ).first()
    if row is None:
        raise AccountNotFoundError(
            f"no account with id {account_id} in {environment}: create it with "
            "ensure_account(handle) and use the id it returns"
        )
    return row


__all__ = ["AccountRepository", "account_row"]
