"""Conversation quality: scorecards (`evals.scorecard`; a new row per scoring, the latest is current) and the
reviews people add (good/bad labels that become regression cases)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from assistant.errors import ConversationNotFoundError
from assistant.models import Review, Scorecard
from assistant.store import convert
from assistant.store.db import Repository
from assistant.store.tables import ConversationFactsRow, ConversationRow, ReviewRow, ScorecardRow


def latest_scorecards() -> Any:
    """SELECT of each conversation's latest scorecard (id, conversation_id, score, scored_at)."""
    last = select(func.max(ScorecardRow.id).label("id")).group_by(ScorecardRow.conversation_id).subquery()
    return select(ScorecardRow.id, ScorecardRow.conversation_id, ScorecardRow.score, ScorecardRow.scored_at).join(
        last, last.c.id == ScorecardRow.id
    )


class Quality(Repository):
    def save_scorecard(self, card: Scorecard) -> Scorecard:
        with self.db.session() as s:
            if s.get(ConversationRow, card.conversation_id) is None:
                raise ConversationNotFoundError(card.conversation_id)
            s.add(
                ScorecardRow(
                    conversation_id=card.conversation_id,
                    scores=dict(card.scores),
                    reasons=dict(card.reasons),
                    evaluators=dict(card.evaluators),
                    evaluator=card.evaluator,
                    notes=list(card.notes),
                    score=card.score,
                    scored_at=card.scored_at,
                    duration_ms=card.duration_ms,
                )
            )
        return card

    def latest_scorecard(self, conversation_id: str) -> Scorecard | None:
        with self.db.session() as s:
            row = s.scalars(
                select(ScorecardRow)
                .where(ScorecardRow.conversation_id == conversation_id)
                .order_by(ScorecardRow.id.desc())
                .limit(1)
            ).first()
            return convert.scorecard(row) if row else None

    def latest_scores(self, conversation_ids: list[str]) -> dict[str, float | None]:
        """Each conversation's latest mean quality score (conversations never scored are absent)."""
        if not conversation_ids:
            return {}
        latest = latest_scorecards().subquery()
        with self.db.session() as s:
            rows = s.execute(
                select(latest.c.conversation_id, latest.c.score).where(latest.c.conversation_id.in_(conversation_ids))
            )
            return {cid: score for cid, score in rows}

    def conversations_to_score(
        self,
        limit: int,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        rescore: bool = False,
    ) -> list[str]:
        """Ended conversations (resolved or abandoned) with no scorecard, or one older than their last
        activity; with `rescore`, every ended one. Oldest first, at most `limit`."""
        f = ConversationFactsRow
        latest = latest_scorecards().subquery()
        q = (
            select(f.conversation_id)
            .outerjoin(latest, latest.c.conversation_id == f.conversation_id)
            .where(f.status.in_(("resolved", "abandoned")), f.outcome != "open")
        )
        if not rescore:
            q = q.where((latest.c.id.is_(None)) | (latest.c.scored_at < f.last_activity_at))
        if since is not None:
            q = q.where(f.started_at >= since)
        if until is not None:
            q = q.where(f.started_at < until)
        with self.db.session() as s:
            return list(s.scalars(q.order_by(f.last_activity_at.asc()).limit(limit)))

    def add_review(self, review: Review) -> Review:
        with self.db.session() as s:
            if s.get(ConversationRow, review.conversation_id) is None:
                raise ConversationNotFoundError(review.conversation_id)
            row = ReviewRow(
                conversation_id=review.conversation_id,
                label=review.label,
                tags=list(review.tags),
                note=review.note,
                reviewer=review.reviewer,
                scores=dict(review.scores),
                created_at=review.created_at,
            )
            s.add(row)
            s.flush()
            return convert.review(row)

    def latest_review(self, conversation_id: str) -> Review | None:
        with self.db.session() as s:
            row = s.scalars(
                select(ReviewRow)
                .where(ReviewRow.conversation_id == conversation_id)
                .order_by(ReviewRow.id.desc())
                .limit(1)
            ).first()
            return convert.review(row) if row else None

    def latest_reviews(self, conversation_ids: list[str] | None = None, label: str | None = None) -> list[Review]:
        """Each conversation's latest review (of `conversation_ids`, or all), optionally only with `label`;
        oldest conversation first."""
        last = select(func.max(ReviewRow.id).label("id")).group_by(ReviewRow.conversation_id).subquery()
        q = select(ReviewRow).join(last, last.c.id == ReviewRow.id)
        if conversation_ids is not None:
            if not conversation_ids:
                return []
            q = q.where(ReviewRow.conversation_id.in_(conversation_ids))
        if label is not None:
            q = q.where(ReviewRow.label == label)
        with self.db.session() as s:
            return [convert.review(r) for r in s.scalars(q.order_by(ReviewRow.id))]
