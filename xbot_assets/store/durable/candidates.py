"""Candidates: every generated text with the safety guard's verdict, its score and whether it
won."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from xbot_assets.store.durable import schema as s
from xbot_assets.store.durable.accounts import account_row
from xbot_assets.store.durable.base import MAX_BATCH_ROWS, Repository, chunks, first_row, ints
from xbot_assets.store.durable.errors import (
    CandidateNotFoundError,
    InvalidInputError,
    PostNotFoundError,
)
from xbot_assets.store.durable.models import Candidate, CandidateInput
from xbot_assets.store.durable.posts import post_row
from xbot_assets.store.durable.validate import (
    valid_arm,
    valid_bool,
    valid_id,
    valid_json_obj,
    valid_limit,
    valid_now,
    valid_opt_float,
    valid_opt_str,
    valid_str,
)
from xbot_assets.store.hot.dedup import content_hash


class CandidateRepository(Repository):
    """Record candidate batches and the choice made among them."""

    def record_candidates(
        self,
        account_id: int,
        candidates: Sequence[CandidateInput],
        *,
        batch_id: str | None = None,
        now: datetime | None = None,
    ) -> list[int]:
        """Store a batch of generated candidates with the guard's verdict, score and choice.

        Every row's ``created_at`` is ``now`` (the warehouse's candidates watermark). Returns the
        new ids in the order given.
        """
        account_id = valid_id("account_id", account_id)
        batch_id = valid_opt_str("batch_id", batch_id, 64)
        if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
            raise InvalidInputError("candidates must be a list of CandidateInput")
        now = valid_now(now)
        rows: list[dict[str, Any]] = []
        for i, c in enumerate(candidates):
            if not isinstance(c, CandidateInput):
                raise InvalidInputError(
                    f"candidates[{i}] is a {type(c).__name__}: pass CandidateInput objects"
                )
            arm, fmt, topic = valid_arm(c.arm, None, None)
            reasons = c.guard_reasons
            if not isinstance(reasons, list) or not all(isinstance(x, str) for x in reasons):
                raise InvalidInputError(f"candidates[{i}].guard_reasons must be a list of strings")
            rows.append(
                {
                    "environment": self.environment,
                    "account_id": account_id,
                    "batch_id": batch_id,
                    "text": self._text(f"candidates[{i}].text", c.text),
                    "content_hash": content_hash(c.text),
                    "arm": arm,
                    "format": fmt,
                    "topic": topic,
                    "generator": valid_opt_str(f"candidates[{i}].generator", c.generator, 32),
                    "score": valid_opt_float(f"candidates[{i}].score", c.score),
                    "guard_passed": valid_bool(f"candidates[{i}].guard_passed", c.guard_passed),
                    "guard_reasons": list(reasons),
                    "chosen": valid_bool(f"candidates[{i}].chosen", c.chosen),
                    "why": valid_opt_str(f"candidates[{i}].why", c.why, 4000),
                    "tweet_id": None
                    if c.tweet_id is None
                    else valid_id(f"candidates[{i}].tweet_id", c.tweet_id),
                    "metadata": valid_json_obj(f"candidates[{i}].metadata", c.metadata),
                    "created_at": now,
                }
            )
        if not rows:
            return []
        c_t = s.candidates
        ids: list[int] = []
        with self._tx() as conn:
            account_row(conn, self.environment, account_id)
            linked = sorted({r["tweet_id"] for r in rows if r["tweet_id"] is not None})
            if linked:
                t = s.tweets
                found: set[int] = set(
                    conn.execute(
                        select(t.c.id).where(
                            t.c.environment == self.environment,
                            t.c.account_id == account_id,
                            t.c.id.in_(linked),
                        )
                    ).scalars()
                )
                if set(linked) - found:
                    raise PostNotFoundError(
                        f"candidates link to unknown posts {sorted(set(linked) - found)}: "
                        "enqueue the post first, then record the candidate with its id"
                    )
            for chunk in chunks(rows, MAX_BATCH_ROWS):
                result = conn.execute(
                    c_t.insert().returning(c_t.c.id, sort_by_parameter_order=True), chunk
                )
                ids.extend(ints(result.scalars()))
        return ids

    def mark_candidate_chosen(self, candidate_id: int, *, tweet_id: int, why: str) -> Candidate:
        """Link a candidate to the post made from it and say why it won."""
        candidate_id = valid_id("candidate_id", candidate_id)
        tweet_id = valid_id("tweet_id", tweet_id)
        why = valid_str("why", why, 4000)
        c_t = s.candidates
        with self._tx() as conn:
            if first_row(conn, self.environment, c_t, c_t.c.id == candidate_id) is None:
                raise CandidateNotFoundError(
                    f"no candidate with id {candidate_id} in {self.environment}: use an id "
                    "record_candidates returned"
                )
            post_row(conn, self.environment, tweet_id)
            conn.execute(
                update(c_t)
                .where(c_t.c.id == candidate_id)
                .values(chosen=True, tweet_id=tweet_id, why=why)
            )
            return Candidate(
                **conn.execute(select(c_t).where(c_t.c.id == candidate_id)).one()._mapping
            )

    def list_candidates(
        self, account_id: int, *, batch_id: str | None = None, limit: int = 500
    ) -> list[Candidate]:
        """An account's candidates, newest first (optionally of one batch)."""
        account_id = valid_id("account_id", account_id)
        limit = valid_limit(limit)
        c_t = s.candidates
        q = select(c_t).where(c_t.c.environment == self.environment, c_t.c.account_id == account_id)
        if batch_id is not None:
            q = q.where(c_t.c.batch_id == valid_str("batch_id", batch_id, 64))
        q = q.order_by(c_t.c.created_at.desc(), c_t.c.id.desc()).limit(limit)
        with self._tx(write=False) as conn:
            return [Candidate(**r._mapping) for r in conn.execute(q)]


__all__ = ["CandidateRepository"]
