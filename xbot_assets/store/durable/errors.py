"""Errors of the durable store. Every message says what to do; none carries a secret."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the durable store raises on purpose."""


class StoreConfigError(StoreError):
    """The store cannot be opened as configured (bad URL, role, environment)."""


class InvalidInputError(StoreError, ValueError):
    """A repository call got input it refuses (wrong type, oversized text, unknown status...).

    Raised before anything is written: the store is unchanged.
    """


class NotFoundError(StoreError, LookupError):
    """A row the call refers to does not exist in this environment."""


class AccountNotFoundError(NotFoundError):
    """The account id or handle is unknown in this environment."""


class PostNotFoundError(NotFoundError):
    """The post id is unknown in this environment."""


class CandidateNotFoundError(NotFoundError):
    """The candidate id is unknown in this environment."""


class StoreUnavailableError(StoreError):
    """The database did not answer (down, unreachable, locked too long). Nothing was written.

    The DualStoreManager treats this as "durable store down" and buffers in Redis.
    """


class DuplicatePostError(StoreError):
    """A post with the same content hash already exists for this account and environment."""

    def __init__(self, message: str, existing_id: int | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class InvalidTransitionError(StoreError):
    """A status change that the posting protocol forbids (e.g. ``posted`` back to ``queued``)."""


class SchemaError(StoreError):
    """The store's schema does not match this xbot (behind, ahead, or not migrated).

    The message names the fix (``xbot migrate``, or upgrading xbot). Entry points turn it into
    exit code 2 before anything else starts.
    """


class SchemaBehindError(SchemaError):
    """The store is missing migrations (or was never migrated): run ``xbot migrate``."""


class SchemaAheadError(SchemaError):
    """The store was migrated by a newer xbot: upgrade xbot."""
