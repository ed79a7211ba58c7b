"""Approved answers as the agents and the CX team keep them: create, edit, retire, list.

What is refused (an error the caller sees) and what is only flagged (the answer is stored and served, and the flag
asks a person to look):

- refused with 422 `invalid_approved_answer`: a blank question or answer, too many variants, a credential of
  this server in the text (blank and oversized texts are refused by the route's schema first);
- refused with 409 `duplicate_question`, naming the other answer: the question (or a variant) is one an active
  approved answer already has, in other words than case and punctuation;
- flagged `similar_question`: a question the matcher would serve another approved answer for;
- flagged `contradicts_help_center`: an answer that states other figures, or the opposite, of the help center's
  passage for its question;
- flagged `source_conversation_missing`: a source conversation that does not exist (deleted since);
- flagged `markup`: HTML or script in the text (stored and shown as text, never rendered).

Stale (computed when read, not stored): past its review date, or a help article it rests on changed or was
removed since it was approved. An edit approves it again: the articles' current versions are recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from assistant.approved.checks import contradictions, has_markup
from assistant.approved.matcher import ApprovedMatcher
from assistant.errors import (
    ConflictError,
    ConversationNotFoundError,
    DuplicateQuestionError,
    InvalidApprovedAnswerError,
)
from assistant.models import (
    ApprovedAnswer,
    ApprovedAnswerDraft,
    ApprovedAnswerEdit,
    ApprovedFlag,
    ApprovedSource,
    SearchHit,
    utcnow,
)
from assistant.settings import ApprovedSettings
from assistant.store.approved import question_key
from assistant.store.db import new_id
from assistant.store.repo import Store
from assistant.turn.grounding import SentenceVectors
from knowledge.errors import KnowledgeError

logger = logging.getLogger(__name__)

Search = Callable[[str, int], list[SearchHit]]
Documents = Callable[[list[str]], dict[str, tuple[str, str]]]  # source_id -> (hash, title)
SOURCES_KEPT = 2  # help articles recorded per answer (the best passages' documents)
_CHECKED = ("contradicts_help_center", "similar_question", "markup")  # flags recomputed when the text changes


def _clean_line(text: str) -> str:
    return " ".join(text.split())


def _clean_answer(text: str) -> str:
    """Outer white space off and runs of blank lines collapsed; the answer's own line breaks are kept."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


class ApprovedAnswerService:
    def __init__(
        self,
        store: Store,
        matcher: ApprovedMatcher,
        search: Search,
        documents: Documents,
        vectors: SentenceVectors,
        settings: ApprovedSettings,
        min_retrieval_score: float,
        has_secret: Callable[[str], bool] = lambda _text: False,
    ) -> None:
        self.store = store
        self.matcher = matcher
        self.search = search
        self.documents = documents
        self.vectors = vectors
        self.settings = settings
        self.min_retrieval_score = min_retrieval_score
        self.has_secret = has_secret  # a credential of this server in the text (assistant.safety.guard's)

    # -- reading ------------------------------------------------------------------------------------

    def get(self, answer_id: str) -> ApprovedAnswer:
        """Raises `ApprovedAnswerNotFoundError` for an unknown id."""
        return self._with_staleness([self.store.approved.get(answer_id)])[0]

    def _with_staleness(self, answers: list[ApprovedAnswer]) -> list[ApprovedAnswer]:
        now = utcnow()
        ids = sorted({s.source_id for a in answers for s in a.sources})
        try:
            current = self.documents(ids) if ids else {}
        except KnowledgeError as exc:  # the index is down: staleness by review date only
            logger.warning("approved answers: article versions not checked (%s)", exc)
            current = None
        out = []
        for a in answers:
            reasons = []
            if a.review_at is not None and a.review_at <= now:
                reasons.append(f"past its review date ({a.review_at:%Y-%m-%d})")
            if current is not None:
                for s in a.sources:
                    name = s.title or s.source_id
                    if s.source_id not in current:
                        reasons.append(f'the article "{name}" it rests on was removed')
                    elif s.doc_hash and current[s.source_id][0] != s.doc_hash:
                        reasons.append(f'the article "{name}" changed since it was approved')
            out.append(a.model_copy(update={"stale": bool(reasons), "stale_reasons": reasons}))
        return out

    # -- writing ------------------------------------------------------------------------------------

    def create(self, draft: ApprovedAnswerDraft) -> ApprovedAnswer:
        question, answer, variants = self._texts(draft.question, draft.answer, draft.variants)
        self._refuse_duplicates([question, *variants], None)
        now = utcnow()
        flags = self._text_flags(question, answer, variants, None)
        if draft.source_conversation_id and not self._conversation_exists(draft.source_conversation_id):
            flags.append(
                ApprovedFlag(
                    kind="source_conversation_missing",
                    detail="the conversation it came from no longer exists",
                    ref=draft.source_conversation_id,
                )
            )
        stored = self.store.approved.add(
            ApprovedAnswer(
                id=new_id("aa"),
                question=question,
                answer=answer,
                variants=variants,
                approved_by=draft.approved_by,
                created_at=now,
                updated_at=now,
                review_at=draft.review_at,
                source_conversation_id=draft.source_conversation_id,
                sources=self._sources(question, draft.sources),
                flags=flags,
            )
        )
        self.matcher.invalidate()
        logger.info("approved answer %s created by %s", stored.id, draft.approved_by or "?")
        return self._with_staleness([stored])[0]

    def update(self, answer_id: str, edit: ApprovedAnswerEdit) -> ApprovedAnswer:
        """Change the fields given; an edit re-approves the answer (its articles' current versions are recorded).
        A retired answer can be read but not edited (409)."""
        current = self.store.approved.get(answer_id)
        if current.status == "retired":
            raise ConflictError(f"the approved answer {answer_id} is retired: create a new one instead")
        question, answer, variants = self._texts(
            edit.question if edit.question is not None else current.question,
            edit.answer if edit.answer is not None else current.answer,
            edit.variants if edit.variants is not None else current.variants,
        )
        self._refuse_duplicates([question, *variants], answer_id)
        kept = [] if edit.clear_flags else list(current.flags)
        changed = (question, answer, variants) != (current.question, current.answer, current.variants)
        if changed:
            kept = [f for f in kept if f.kind not in _CHECKED] + self._text_flags(question, answer, variants, answer_id)
        wanted = edit.sources if edit.sources is not None else [s.source_id for s in current.sources]
        sources = self._sources(question, wanted if (edit.sources is not None or not changed) else None)
        review_at = None if edit.clear_review_at else (edit.review_at or current.review_at)
        updated = current.model_copy(
            update={
                "question": question,
                "answer": answer,
                "variants": variants,
                "flags": kept,
                "sources": sources,
                "review_at": review_at,
                "approved_by": edit.approved_by or current.approved_by,
                "updated_at": utcnow(),
            }
        )
        stored = self.store.approved.replace(updated)
        self.matcher.invalidate()
        return self._with_staleness([stored])[0]

    def retire(self, answer_id: str) -> ApprovedAnswer:
        """Never served again; kept with its hits (listed with `status=retired`)."""
        retired = self.store.approved.retire(answer_id)
        self.matcher.invalidate()
        return retired

    # -- validation and flags -----------------------------------------------------------------------

    def _texts(self, question: str, answer: str, variants: list[str]) -> tuple[str, str, list[str]]:
        q, a = _clean_line(question), _clean_answer(answer)
        if not q:
            raise InvalidApprovedAnswerError("the question is empty")
        if not a:
            raise InvalidApprovedAnswerError("the answer is empty")
        if len(a) > self.settings.max_answer_chars:
            raise InvalidApprovedAnswerError(f"the answer is longer than {self.settings.max_answer_chars} characters")
        if self.has_secret(a) or self.has_secret(q):
            raise InvalidApprovedAnswerError("the text contains a credential of this server: remove it")
        seen = {question_key(q)}
        kept = []
        for v in variants:
            v = _clean_line(v)
            key = question_key(v)
            if key and key not in seen:
                seen.add(key)
                kept.append(v)
        if len(kept) > self.settings.max_variants:
            raise InvalidApprovedAnswerError(f"at most {self.settings.max_variants} variants (got {len(kept)})")
        if not question_key(q):
            raise InvalidApprovedAnswerError("the question has no words")
        return q, a, kept

    def _refuse_duplicates(self, texts: list[str], own_id: str | None) -> None:
        keys = {question_key(t): t for t in texts}
        for other in self.store.approved.find("active"):
            if other.id == own_id:
                continue
            theirs = {question_key(t) for t in other.texts}
            clash = next((keys[k] for k in keys if k in theirs), None)
            if clash is not None:
                raise DuplicateQuestionError(clash, other.id)

    def _text_flags(self, question: str, answer: str, variants: list[str], own_id: str | None) -> list[ApprovedFlag]:
        flags: list[ApprovedFlag] = []
        for text in [question, *variants]:
            similar = self.matcher.match(text, exclude={own_id} if own_id else ())
            if similar is not None:
                flags.append(
                    ApprovedFlag(
                        kind="similar_question",
                        detail=f'"{text}" is also matched by "{similar.answer.question}" ({similar.score:.2f}): '
                        "customers asking it may get either answer",
                        ref=similar.answer.id,
                    )
                )
                break
        if has_markup(question) or has_markup(answer) or any(has_markup(v) for v in variants):
            flags.append(ApprovedFlag(kind="markup", detail="HTML in the text is shown to customers as text"))
        try:
            hits = [h for h in self.search(question, 3) if h.score >= self.min_retrieval_score]
        except KnowledgeError as exc:
            logger.warning("approved answer not checked against the help center: %s", exc)
            hits = []
        flags += contradictions(answer, hits, self.vectors)
        return flags

    def _sources(self, question: str, wanted: list[str] | None) -> list[ApprovedSource]:
        """The help articles named (each must exist), or the documents of the question's best passages."""
        try:
            if wanted is None:
                hits = [h for h in self.search(question, 3) if h.score >= self.min_retrieval_score]
                wanted = list(dict.fromkeys(h.chunk.source_id for h in hits))[:SOURCES_KEPT]
            found = self.documents(wanted) if wanted else {}
        except KnowledgeError as exc:
            logger.warning("approved answer sources not recorded: %s", exc)
            return []
        missing = [s for s in wanted if s not in found]
        if missing:
            raise InvalidApprovedAnswerError(f"no help article with source_id {', '.join(map(repr, missing))}")
        return [ApprovedSource(source_id=s, title=found[s][1], doc_hash=found[s][0]) for s in wanted]

    def _conversation_exists(self, conversation_id: str) -> bool:
        try:
            self.store.get_conversation(conversation_id)
        except ConversationNotFoundError:
            return False
        return True

    # -- listing: last in the class, since below a method named `list` mypy reads `list[...]` in annotations as it

    def list(self, status: str | None = "active") -> list[ApprovedAnswer]:
        return self._with_staleness(self.store.approved.find(status))
