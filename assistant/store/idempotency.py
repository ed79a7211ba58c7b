"""Idempotency keys: a retried customer POST (a double submit, a flaky network) is answered with the first response
and stores nothing new.

A key is claimed by inserting its row: the primary key (scope, key) lets exactly one of two concurrent requests
in, on every database and across every worker and server. The winner runs the request and `complete`s the row
with its response; the other finds the row and either replays that response or, while the first is still running,
waits for it (`wait`). A request that failed `release`s its claim, so a retry runs again. A key lives
`ttl` (24 h); an older row is replaced by the next claim and removed by `purge` (the background sweep).

The request's `fingerprint` (a hash of what it asked for) is kept with the key: the same key with another request
is refused, so a key can never return someone else's response for a different question.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from assistant.models import utcnow
from assistant.store.convert import aware
from assistant.store.db import Repository
from assistant.store.tables import IdempotencyKeyRow

TTL = timedelta(hours=24)

ClaimState = Literal["new", "done", "busy", "mismatch"]


@dataclass(frozen=True)
class Claim:
    """What `claim` found: `new` (run the request, then `complete` or `release`), `done` (replay `status_code` and
    `body`), `busy` (the first request is still running), `mismatch` (the key was used for another request)."""

    state: ClaimState
    status_code: int | None = None
    body: dict[str, Any] | None = None


class IdempotencyKeys(Repository):
    ttl: timedelta = TTL

    def claim(self, scope: str, key: str, fingerprint: str) -> Claim:
        for _ in range(3):  # a row that expired or was released in between: try again
            now = utcnow()
            try:
                with self.db.session() as s:
                    s.add(IdempotencyKeyRow(scope=scope, key=key, fingerprint=fingerprint, created_at=now))
                return Claim("new")
            except IntegrityError:
                pass  # the key is taken: what did the first request become?
            with self.db.session() as s:
                row = s.get(IdempotencyKeyRow, (scope, key))
                if row is None:
                    continue
                if aware(row.created_at) < now - self.ttl:
                    s.delete(row)
                    continue
                if row.fingerprint != fingerprint:
                    return Claim("mismatch")
                if row.completed_at is None:
                    return Claim("busy")
                return Claim("done", row.status_code, row.body)
        return Claim("busy")

    def complete(self, scope: str, key: str, status_code: int, body: dict[str, Any]) -> None:
        with self.db.session() as s:
            row = s.get(IdempotencyKeyRow, (scope, key))
            if row is not None:
                row.status_code, row.body, row.completed_at = status_code, body, utcnow()

    def release(self, scope: str, key: str) -> None:
        """The claimed request failed: forget the key, so that a retry runs."""
        with self.db.session() as s:
            s.execute(
                delete(IdempotencyKeyRow).where(
                    IdempotencyKeyRow.scope == scope,
                    IdempotencyKeyRow.key == key,
                    IdempotencyKeyRow.completed_at.is_(None),
                )
            )

    def wait(self, scope: str, key: str, fingerprint: str, timeout_s: float, poll_s: float = 0.05) -> Claim:
        """`claim` again until the first request has finished (or was released: then this one runs), at most
        `timeout_s`: a concurrent double submit gets the first one's response."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.claim(scope, key, fingerprint)
            if found.state != "busy" or time.monotonic() >= deadline:
                return found
            time.sleep(poll_s)

    def purge(self, before: datetime | None = None) -> int:
        """Remove keys older than `before` (default: the key lifetime ago); returns how many."""
        cutoff = before or utcnow() - self.ttl
        with self.db.session() as s:
            gone = s.scalars(select(IdempotencyKeyRow.key).where(IdempotencyKeyRow.created_at < cutoff)).all()
            s.execute(delete(IdempotencyKeyRow).where(IdempotencyKeyRow.created_at < cutoff))
            return len(gone)
