"""The start-up schema guard: every entry point calls it before anything else starts.

    from xbot_assets.store.durable.guard import require_current_schema
    require_current_schema(settings)   # raises SchemaError (message names the fix)

The CLI maps :class:`~xbot_assets.store.durable.errors.SchemaError` to exit code 2 (see
:func:`xbot_assets.cli.require_schema_or_exit`); Dagster resources and the posting job call
:func:`require_current_schema` (or open the store with :meth:`DurableStore.from_settings`,
which calls it) before touching a browser, a poster or X.

A store one migration behind (or never migrated: a brand-new empty SQLite file) asks for
``xbot migrate``; a store migrated by a newer xbot asks to upgrade xbot. The check only reads
(``alembic_version``), as the login user, so it works before the per-environment roles exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xbot_assets.config import mask_url
from xbot_assets.ops.redact import redact
from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.durable.errors import (
    SchemaAheadError,
    SchemaBehindError,
    StoreUnavailableError,
)
from xbot_assets.store.durable.migrate import SchemaStatus, schema_status

if TYPE_CHECKING:
    from xbot_assets.config import Settings


def require_current_schema(settings: Settings) -> SchemaStatus:
    """Raise unless the durable store of ``settings`` is exactly at this xbot's head migration.

    Raises:
        SchemaBehindError: run ``xbot migrate``.
        SchemaAheadError: upgrade xbot (the store was migrated by a newer release).
        StoreUnavailableError: the database did not answer.
    """
    return require_current_schema_at(settings.resolved_database_url)


def require_current_schema_at(url: str) -> SchemaStatus:
    """:func:`require_current_schema` for a database URL."""
    from sqlalchemy import exc as sa_exc

    engine = make_engine(url)
    where = mask_url(url)
    try:
        status = schema_status(engine)
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        detail = redact((str(getattr(exc, "orig", exc)).splitlines() or [""])[0])[:200]
        raise StoreUnavailableError(
            f"the durable store at {where} did not answer ({detail}): start the database or "
            "fix DATABASE_URL"
        ) from None
    finally:
        engine.dispose()
    if status.is_ahead:
        raise SchemaAheadError(
            f"the durable store at {where} is at migration {status.current}, newer than this "
            f"xbot knows (head {status.head}): upgrade xbot to the release that wrote it"
        )
    if status.current is None:
        raise SchemaBehindError(
            f"the durable store at {where} has no schema yet: run `xbot migrate` to create it"
        )
    if not status.is_current:
        raise SchemaBehindError(
            f"the durable store at {where} is {status.behind_by} migration(s) behind "
            f"(at {status.current}, this xbot needs {status.head}): run `xbot migrate`"
        )
    return status
