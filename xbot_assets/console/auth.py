"""Console tokens, sessions and CSRF.

- A token is 32 random bytes (``secrets.token_urlsafe``) printed once by ``xbot console token``.
  The store keeps only its SHA-256 (a slow hash adds nothing to 256 bits of entropy), in
  ``console_tokens`` with the environment it was issued for: a staging token is never found
  by a production console (and on Postgres row-level security hides the row as well).
- Logging in exchanges the token for a random session id in an HttpOnly, SameSite=Strict
  cookie (Secure unless the console listens on loopback). Sessions live in the server's memory:
  a restart logs everyone out, which is the safe direction.
- Every session carries its own CSRF token; every POST form repeats it and the server compares
  it in constant time. The login form, which has no session yet, uses a double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from xbot_assets.ops.audit import record_audit
from xbot_assets.ops.dbread import read_connection
from xbot_assets.store.durable.schema import console_tokens

SESSION_COOKIE = "xbot_console"
LOGIN_COOKIE = "xbot_console_login"
SESSION_TTL_S = 12 * 3600.0
TOKEN_PREFIX = "xbc_"  # noqa: S105 - a marker that makes leaked tokens easy to grep, not a secret


def token_hash(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    engine: Engine, environment: str, *, label: str, created_by: str, now: datetime
) -> str:
    """Create a token for ``environment``; returns it (the only time it exists in clear)."""
    label = label.strip()[:128] or "operator"
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        token_id: Any = conn.execute(
            insert(console_tokens)
            .values(
                environment=environment,
                token_hash=token_hash(token),
                label=label,
                created_by=created_by,
                created_at=now,
            )
            .returning(console_tokens.c.id)
        ).scalar_one()
        record_audit(
            conn,
            environment=environment,
            event_type="console.token_issued",
            actor=created_by,
            component="console",
            data={"token_id": int(token_id), "label": label},
            clock=lambda: now,
        )
    return token


def revoke_tokens(engine: Engine, environment: str, *, actor: str, now: datetime) -> int:
    """Revoke every live token of ``environment``; returns how many."""
    with engine.begin() as conn:
        count = conn.execute(
            update(console_tokens)
            .where(
                console_tokens.c.environment == environment,
                console_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        ).rowcount
        record_audit(
            conn,
            environment=environment,
            event_type="console.tokens_revoked",
            actor=actor,
            component="console",
            data={"count": int(count)},
            clock=lambda: now,
        )
    return int(count)


@dataclass(frozen=True)
class TokenIdentity:
    """Who a valid token says the user is."""

    token_id: int
    label: str
    environment: str

    @property
    def actor(self) -> str:
        return f"console:{self.label}#{self.token_id}"


def verify_token(engine: Engine, environment: str, token: str) -> TokenIdentity | None:
    """The identity of a live token of this environment, or None (unknown, revoked, or
    issued for another environment)."""
    if not token or len(token) > 200:
        return None
    digest = token_hash(token.strip())
    with read_connection(engine) as conn:
        row = conn.execute(
            select(console_tokens.c.id, console_tokens.c.label, console_tokens.c.environment).where(
                console_tokens.c.token_hash == digest,
                console_tokens.c.environment == environment,
                console_tokens.c.revoked_at.is_(None),
            )
        ).first()
    if row is None or row.environment != environment:
        return None
    return TokenIdentity(int(row.id), str(row.label), str(row.environment))


@dataclass
class Session:
    """One logged-in browser."""

    identity: TokenIdentity
    csrf: str
    expires: float


class SessionStore:
    """Sessions by id, in memory (thread-safe; expired ones are dropped on access)."""

    def __init__(self, ttl_s: float = SESSION_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, identity: TokenIdentity) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = Session(identity, secrets.token_urlsafe(32), time.monotonic() + self.ttl_s)
        with self._lock:
            self._sessions[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            if session.expires < time.monotonic():
                del self._sessions[sid]
                return None
            return session

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; False when either side is missing."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
