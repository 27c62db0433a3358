"""The durable store: the truth of the system, on SQLite (embedded) or Postgres (Supabase).

Open it with :meth:`DurableStore.from_settings` (or :meth:`DurableStore.from_url`); both check
the schema version first (see :mod:`xbot_assets.store.durable.guard`) and raise
:class:`~xbot_assets.store.durable.errors.SchemaError` when the store needs ``xbot migrate``.

One store object serves one environment: every row it writes carries that environment and
every query filters on it. On Postgres the connection additionally runs under the
environment's non-owner role (``xbot_<environment>``), so forced row-level security keeps
staging and production apart even if a query forgot the filter. Never give the bot a
Supabase ``service_role`` (or any superuser/BYPASSRLS) connection: such roles ignore row-level
security entirely.

Every write that stamps a time takes a keyword-only ``now`` (the wall clock when omitted): the
caller's clock, so a run on a simulated clock (the main job) writes simulated times only and the
warehouse's ``updated_at``/``created_at`` watermarks stay monotonic. Writes that already receive
the event's own time keep it in its own column (``posted_at``, ``occurred_at``, ``recorded_at``);
``now`` is when the row was written.

Why mixins: :class:`DurableStore` is only the sum of the per-aggregate repositories (accounts,
posts, the post ledger, metrics, candidates, config, audit, health), each a class of its own
module on the shared :class:`~xbot_assets.store.durable.base.Repository` (one engine, one
transaction helper). Inheriting them keeps every caller's ``store.<method>(...)`` with its exact
signature and types and no forwarding stubs (which would repeat every signature a second time);
no repository calls another through ``self`` (they share module functions such as
``account_row``), so the order of the bases does not matter. Code that needs one aggregate can
use its repository alone, e.g. ``MetricsRepository(engine, "local")``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from xbot_assets.config import DEFAULT_DB_POOL_MAX_OVERFLOW, DEFAULT_DB_POOL_SIZE
from xbot_assets.store.durable import schema as s
from xbot_assets.store.durable.accounts import AccountRepository
from xbot_assets.store.durable.audit import AuditRepository
from xbot_assets.store.durable.base import MAX_TEXT_CHARS, utcnow
from xbot_assets.store.durable.candidates import CandidateRepository
from xbot_assets.store.durable.config import ConfigRepository
from xbot_assets.store.durable.engine import make_engine, normalise_url
from xbot_assets.store.durable.errors import StoreConfigError
from xbot_assets.store.durable.health import HealthRepository
from xbot_assets.store.durable.metrics import HORIZON_DELTAS, MetricsRepository
from xbot_assets.store.durable.post_ledger import PostLedgerRepository
from xbot_assets.store.durable.posts import COUNTED_STATUSES, PostRepository, thread_part_hash

if TYPE_CHECKING:
    from xbot_assets.config import Settings

DbRole = str | Literal["auto"] | None


class DurableStore(
    AccountRepository,
    PostRepository,
    PostLedgerRepository,
    MetricsRepository,
    CandidateRepository,
    ConfigRepository,
    AuditRepository,
    HealthRepository,
):
    """Every repository of the durable store, for one environment (see the module docstring).

    Args:
        engine: an engine made by :func:`xbot_assets.store.durable.engine.make_engine`.
        environment: ``local``, ``staging`` or ``production``: stamped on and filtered by
            every row.
        max_text_chars: the longest post or candidate text accepted.
    """

    @classmethod
    def from_settings(
        cls, settings: Settings, *, check_schema: bool = True, db_role: DbRole = "auto"
    ) -> DurableStore:
        """Open the store the settings name (``settings.resolved_database_url``).

        The default SQLite file lives under ``settings.xbot_home`` (its folder is created).
        """
        return cls.from_url(
            settings.resolved_database_url,
            environment=settings.app_env,
            check_schema=check_schema,
            db_role=db_role,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_max_overflow,
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        environment: str = "local",
        check_schema: bool = True,
        db_role: DbRole = "auto",
        pool_size: int = DEFAULT_DB_POOL_SIZE,
        max_overflow: int = DEFAULT_DB_POOL_MAX_OVERFLOW,
    ) -> DurableStore:
        """Open the store at ``url`` for ``environment``.

        Args:
            url: ``sqlite:///path`` or ``postgresql://user:password@host:port/db``.
            environment: the environment whose rows this store reads and writes.
            check_schema: raise :class:`SchemaError` unless the store is at this xbot's head
                migration (default; only ``xbot migrate`` and tests turn it off).
            db_role: Postgres only. ``"auto"`` (default): ``SET ROLE xbot_<environment>`` on
                every connection, so row-level security applies; a role name: that role;
                ``None``: act as the login user (migrations, administration).
            pool_size, max_overflow: Postgres only: the engine's connection pool (settings
                ``DB_POOL_SIZE``/``DB_POOL_MAX_OVERFLOW``).
        """
        if environment not in s.ENVIRONMENTS:
            raise StoreConfigError(
                f"unknown environment {environment!r}: use one of {', '.join(s.ENVIRONMENTS)}"
            )
        parsed = normalise_url(url)
        if check_schema:
            from xbot_assets.store.durable.guard import require_current_schema_at

            require_current_schema_at(url)
        role: str | None = None
        if parsed.get_backend_name() == "postgresql":
            role = f"xbot_{environment}" if db_role == "auto" else db_role
        engine = make_engine(
            parsed, db_role=role, pooled=True, pool_size=pool_size, max_overflow=max_overflow
        )
        store = cls(engine, environment)
        if parsed.get_backend_name() == "postgresql":
            store._check_role(role)
        return store

    def _check_role(self, role: str | None) -> None:
        """Connect once: the role must be usable, and outside ``local`` it must not bypass RLS."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    text(
                        "SELECT current_user, rolsuper OR rolbypassrls FROM pg_roles "
                        "WHERE rolname = current_user"
                    )
                ).one()
                user, bypasses = str(row[0]), bool(row[1])
        except sa_exc.DBAPIError as exc:
            self.engine.dispose()
            detail = str(getattr(exc, "orig", exc)).splitlines()[0]
            raise StoreConfigError(
                f"cannot act as the database role {role!r} ({detail}): run `xbot migrate` as "
                f"the database owner to create it, then `GRANT {role} TO <login user>` "
                "(see xbot_assets/store/README.md)"
            ) from None
        if bypasses and self.environment != "local":
            self.engine.dispose()
            raise StoreConfigError(
                f"the durable store connection acts as {user!r}, a superuser or BYPASSRLS role "
                f"that ignores row-level security: for {self.environment} the bot must act as "
                f"xbot_{self.environment} (leave db_role='auto'; never use Supabase service_role)"
            )

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def __enter__(self) -> DurableStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "COUNTED_STATUSES",
    "HORIZON_DELTAS",
    "MAX_TEXT_CHARS",
    "DurableStore",
    "thread_part_hash",
    "utcnow",
]
