"""Approved answers: stored, edited, retired, and counted when served (`assistant.approved` decides what they say).

`version()` is what a matcher's cache of embedded questions is keyed on: it changes with every add, edit and
retirement (never with a hit), in this process or another one on the same database.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from assistant.errors import ApprovedAnswerNotFoundError
from assistant.models import ApprovedAnswer, ApprovedFlag, ApprovedSource, utcnow
from assistant.store.convert import aware
from assistant.store.db import Repository, new_id
from assistant.store.tables import ApprovedAnswerRow

_NOT_WORD = re.compile(r"[^\w]+")


def question_key(text: str) -> str:
    """The question as compared for duplicates: lower case, words only ("How do I return it?" = "how do i return
    it"), cut to the column's width."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())[:500]


def _model(r: ApprovedAnswerRow) -> ApprovedAnswer:
    return ApprovedAnswer(
        id=r.id,
        question=r.question,
        answer=r.answer,
        variants=list(r.variants or []),
        status=r.status,  # type: ignore[arg-type]  # a str column; pydantic checks the literal (see convert.py)
        approved_by=r.approved_by,
        created_at=aware(r.created_at),
        updated_at=aware(r.updated_at),
        review_at=aware(r.review_at),
        source_conversation_id=r.source_conversation_id,
        sources=[ApprovedSource.model_validate(s) for s in r.sources or []],
        flags=[ApprovedFlag.model_validate(f) for f in r.flags or []],
        hits=r.hits or 0,
        last_used_at=aware(r.last_used_at),
        retired_at=aware(r.retired_at),
    )


class ApprovedAnswers(Repository):
    def add(self, answer: ApprovedAnswer) -> ApprovedAnswer:
        """Store a new approved answer (its id is made here when it has none)."""
        row = ApprovedAnswerRow(
            id=answer.id or new_id("aa"),
            question=answer.question,
            question_key=question_key(answer.question),
            variants=answer.variants,
            answer=answer.answer,
            status=answer.status,
            approved_by=answer.approved_by,
            created_at=answer.created_at,
            updated_at=answer.updated_at,
            review_at=answer.review_at,
            source_conversation_id=answer.source_conversation_id,
            sources=[s.model_dump(mode="json") for s in answer.sources],
            flags=[f.model_dump(mode="json") for f in answer.flags],
            hits=answer.hits,
            last_used_at=answer.last_used_at,
            retired_at=answer.retired_at,
        )
        with self.db.session() as s:
            s.add(row)
            s.flush()
            return _model(row)

    def get(self, answer_id: str) -> ApprovedAnswer:
        with self.db.session() as s:
            row = s.get(ApprovedAnswerRow, answer_id)
            if row is None:
                raise ApprovedAnswerNotFoundError(answer_id)
            return _model(row)

    def find(self, status: str | None = "active", limit: int = 10_000) -> list[ApprovedAnswer]:
        """Approved answers (all, or those in `status`), most recently changed first."""
        with self.db.session() as s:
            q = select(ApprovedAnswerRow)
            if status is not None:
                q = q.where(ApprovedAnswerRow.status == status)
            rows = s.scalars(q.order_by(ApprovedAnswerRow.updated_at.desc(), ApprovedAnswerRow.id).limit(limit))
            return [_model(r) for r in rows]

    def with_key(self, key: str) -> ApprovedAnswer | None:
        """The active approved answer whose question is `key` (see `question_key`), if any."""
        with self.db.session() as s:
            row = s.scalars(
                select(ApprovedAnswerRow)
                .where(ApprovedAnswerRow.question_key == key, ApprovedAnswerRow.status == "active")
                .limit(1)
            ).first()
            return _model(row) if row is not None else None

    def replace(self, answer: ApprovedAnswer) -> ApprovedAnswer:
        """Write an edited answer's fields (never its hits or last use: those only `record_hit` changes)."""
        values: dict[str, Any] = {
            "question": answer.question,
            "question_key": question_key(answer.question),
            "variants": answer.variants,
            "answer": answer.answer,
            "approved_by": answer.approved_by,
            "review_at": answer.review_at,
            "sources": [s.model_dump(mode="json") for s in answer.sources],
            "flags": [f.model_dump(mode="json") for f in answer.flags],
            "updated_at": answer.updated_at,
        }
        with self.db.session() as s:
            row = s.scalars(
                update(ApprovedAnswerRow)
                .where(ApprovedAnswerRow.id == answer.id)
                .values(**values)
                .returning(ApprovedAnswerRow)
            ).first()
            if row is None:
                raise ApprovedAnswerNotFoundError(answer.id)
            return _model(row)

    def retire(self, answer_id: str) -> ApprovedAnswer:
        """Never served again (kept, with its hits). Retiring a retired answer changes nothing."""
        now = utcnow()
        with self.db.session() as s:
            row = s.get(ApprovedAnswerRow, answer_id)
            if row is None:
                raise ApprovedAnswerNotFoundError(answer_id)
            if row.status != "retired":
                row.status, row.retired_at, row.updated_at = "retired", now, now
            s.flush()
            return _model(row)

    def record_hit(self, answer_id: str, at: datetime | None = None) -> None:
        """One more customer served it: hits + 1 and its last use, in one UPDATE (two workers serving it at once both
        count)."""
        with self.db.session() as s:
            s.execute(
                update(ApprovedAnswerRow)
                .where(ApprovedAnswerRow.id == answer_id)
                .values(hits=ApprovedAnswerRow.hits + 1, last_used_at=at or utcnow())
            )

    def version(self) -> tuple[int, str]:
        """(rows, latest change): different after any add, edit or retirement."""
        with self.db.session() as s:
            n, latest = s.execute(
                select(func.count(ApprovedAnswerRow.id), func.max(ApprovedAnswerRow.updated_at))
            ).one()
            return int(n or 0), str(latest or "")
