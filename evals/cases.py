"""What a scorecard is computed from, and the regression-case format (JSONL, one case per line).

A `RegressionCase` is self-contained: the transcript (each turn with its reply mode, cited source ids and
confidence), what the reviewer expects of it, and what was observed when it happened (outcome, effort, signal
counts, handoff reasons, the text of the cited sources). So a scorecard can be computed again without the
database the conversation came from (`cxa eval calibrate`), and the benchmark suite can replay the customer's
turns and check `expected`. The README documents the format; readers may ignore `observed`.

`expected` comes from the latest review: a "good" conversation's behaviour is what must be kept (its handoff,
outcome and groundedness); for a "bad" one the reviewer's tags say what must change (`should_handoff` ->
`expected.handoff` true, `unnecessary_handoff` -> false, `ungrounded` -> `min_groundedness` 0.8). The
reviewer's per-dimension scores go to `expected.scores`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from assistant.errors import AssistantError
from assistant.handoff.summary import HANDOFF_TEXT
from assistant.models import Review, ReviewLabel, Role, Scorecard
from assistant.store.repo import Store
from assistant.turn.answer import DECLINE_TEXT
from assistant.turn.engine import CLOSING_TEXT
from knowledge.errors import KnowledgeError
from knowledge.index import KnowledgeIndex

logger = logging.getLogger(__name__)

CASES_DIR = Path(__file__).parent / "cases"  # the committed cases `cxa eval bench` replays

TAGS: dict[str, str] = {
    "should_handoff": "a person should have taken over (expected.handoff = true)",
    "unnecessary_handoff": "the assistant handed off when it could and should have answered (expected.handoff = false)",
    "late_handoff": "handed off only after the customer repeated or complained",
    "irrelevant_answer": "a reply did not address the question asked",
    "ungrounded": "a reply said something its sources do not (expected.min_groundedness = 0.8)",
    "tone": "cold, curt or blaming",
    "policy_violation": "promised what the help center does not, leaked data, or kept a policy topic from a person",
    "unresolved": "the customer left without a solution",
    "no_agent": "the customer asked for or was given a person who never came",
    "agent_unhelpful": "the agent's reply did not help",
}


class CaseTurn(BaseModel):
    role: Role
    text: str
    mode: str | None = Field(
        None, description="assistant reply mode: generated, extractive, account, approved, declined, closing, handoff"
    )
    citations: list[str] = Field(default_factory=list, description="source ids cited by the reply")
    confidence: float | None = None

    @model_validator(mode="after")
    def _assistant_turns_have_a_mode(self) -> CaseTurn:
        """Every assistant turn carries its reply mode (the turn record's). An assistant message without a turn
        record (the handoff notice, rows from before turn records existed) gets it here, once, from its text."""
        if self.role == "assistant" and self.mode is None:
            fixed = {HANDOFF_TEXT: "handoff", CLOSING_TEXT: "closing", DECLINE_TEXT: "declined"}
            self.mode = fixed.get(self.text, "generated" if self.citations else "unknown")
        return self


class Expected(BaseModel):
    handoff: bool
    outcome: str | None = None
    min_groundedness: float | None = None
    scores: dict[str, float] = Field(default_factory=dict)


class Observed(BaseModel):
    """What happened, as the telemetry derived it (not part of the replay contract)."""

    status: str | None = None
    outcome: str | None = None
    durable: bool | None = None
    effort: float | None = Field(None, description="predicted effort, CES 1..7")
    csat: int | None = None
    ces: int | None = None
    feedback_resolved: bool | None = None
    signals: dict[str, int] = Field(default_factory=dict)
    handoff_reasons: list[str] = Field(default_factory=list)
    sources: dict[str, str] = Field(default_factory=dict, description="source id -> text of the cited chunk(s)")


class Transcript(BaseModel):
    """One conversation as the evaluators see it."""

    conversation_id: str
    customer_id: str | None = None
    verified: bool = False
    turns: list[CaseTurn]
    observed: Observed = Field(default_factory=Observed)

    @property
    def handed_off(self) -> bool:
        return any(t.mode == "handoff" for t in self.turns)


class RegressionCase(BaseModel):
    case_id: str
    conversation_id: str
    label: ReviewLabel
    tags: list[str] = Field(default_factory=list)
    note: str | None = None
    customer_id: str | None = None
    verified: bool = False
    turns: list[CaseTurn]
    expected: Expected
    observed: Observed | None = None

    @property
    def customer_turns(self) -> list[str]:
        return [t.text for t in self.turns if t.role == "customer"]

    def transcript(self) -> Transcript:
        return Transcript(
            conversation_id=self.conversation_id,
            customer_id=self.customer_id,
            verified=self.verified,
            turns=self.turns,
            observed=self.observed or Observed(),
        )


def transcript_from_store(store: Store, conversation_id: str, index: KnowledgeIndex | None = None) -> Transcript:
    """The conversation from the database: messages with their turn records, the derived facts, signals and
    the text of each cited chunk (from the index when it has it, else the citation's snippet). Raises
    `ConversationNotFoundError`."""
    conv = store.get_conversation(conversation_id)
    by_reply = {t.reply_message_id: t for t in store.list_turns(conversation_id) if t.reply_message_id}
    # what the account tools returned, worded as the templates word it: the "source" of an account answer
    record_facts = {
        m: " ".join(dict.fromkeys(c.summary for c in t.tool_calls if c.summary)) for m, t in by_reply.items()
    }
    facts = store.get_facts(conversation_id)
    events = store.list_signals(conversation_id)
    sources: dict[str, str] = {}
    chunks: dict[str, dict[str, str]] = {}
    turns: list[CaseTurn] = []
    for m in store.list_messages(conversation_id):
        turn = by_reply.get(m.id)
        mode = turn.reply_mode if turn else None
        for c in m.citations:
            if c.source_id.startswith("account:"):
                facts_text = record_facts.get(m.id, "") or c.snippet
                if facts_text not in sources.get(c.source_id, ""):
                    sources[c.source_id] = (sources.get(c.source_id, "") + "\n" + facts_text).strip()
                continue
            if index is not None and c.source_id not in chunks:
                chunks[c.source_id] = _document_chunks(index, c.source_id)
            text = chunks.get(c.source_id, {}).get(c.chunk_id or "", c.snippet)
            if text not in sources.get(c.source_id, ""):
                sources[c.source_id] = (sources.get(c.source_id, "") + "\n" + text).strip()
        turns.append(
            CaseTurn(
                role=m.role,
                text=m.text,
                mode=mode if m.role == "assistant" else None,
                citations=list(dict.fromkeys(c.source_id for c in m.citations)),
                confidence=turn.confidence if turn else None,
            )
        )
    feedback = [e.data for e in events if e.kind == "feedback"]
    return Transcript(
        conversation_id=conv.id,
        customer_id=conv.customer_id,
        verified=conv.verified,
        turns=turns,
        observed=Observed(
            status=conv.status,
            outcome=facts.outcome if facts else conv.outcome,
            durable=facts.durable if facts else None,
            effort=facts.effort if facts else None,
            csat=facts.csat if facts else None,
            ces=facts.ces if facts else None,
            feedback_resolved=next((f["resolved"] for f in reversed(feedback) if f.get("resolved") is not None), None),
            signals=dict(facts.counts) if facts else {},
            handoff_reasons=[str(e.data.get("reason")) for e in events if e.kind == "handoff" and e.data.get("reason")],
            sources=sources,
        ),
    )


def _document_chunks(index: KnowledgeIndex, source_id: str) -> dict[str, str]:
    try:
        return {c.chunk_id: c.text for c in index.get_document_chunks(source_id)}
    except (KnowledgeError, AssistantError) as exc:  # the snippet stored with the citation will do
        logger.info("no chunks for %s: %s", source_id, exc)
        return {}


def case_id(conversation_id: str, review_id: int | None) -> str:
    return "case_" + hashlib.sha1(f"{conversation_id}:{review_id}".encode()).hexdigest()[:12]


def expected_of(review: Review, transcript: Transcript, card: Scorecard | None) -> Expected:
    """What a replay must show (module docstring)."""
    tags = set(review.tags)
    handoff = transcript.handed_off
    outcome: str | None = None
    min_grounded: float | None = None
    if review.label == "good":
        outcome = transcript.observed.outcome
        grounded = card.scores.get("groundedness") if card else None
        min_grounded = None if grounded is None else round(int(grounded * 10) / 10, 1)
    else:
        if "should_handoff" in tags or "late_handoff" in tags:
            handoff = True
        if "unnecessary_handoff" in tags:
            handoff = False
        if "ungrounded" in tags:
            min_grounded = 0.8
    scores = {k: float(v) for k, v in review.scores.items() if v is not None}
    return Expected(handoff=handoff, outcome=outcome, min_groundedness=min_grounded, scores=scores)


def case_of(review: Review, transcript: Transcript, card: Scorecard | None) -> RegressionCase:
    return RegressionCase(
        case_id=case_id(review.conversation_id, review.id),
        conversation_id=review.conversation_id,
        label=review.label,
        tags=review.tags,
        note=review.note,
        customer_id=transcript.customer_id,
        verified=transcript.verified,
        turns=transcript.turns,
        expected=expected_of(review, transcript, card),
        observed=transcript.observed,
    )


def export_cases(
    store: Store, label: Literal["good", "bad", "all"] = "all", index: KnowledgeIndex | None = None
) -> Iterator[RegressionCase]:
    """A regression case for each reviewed conversation (its latest review), oldest review first."""
    for review in store.latest_reviews(label=None if label == "all" else label):
        transcript = transcript_from_store(store, review.conversation_id, index)
        yield case_of(review, transcript, store.latest_scorecard(review.conversation_id))


class CaseFileError(ValueError):
    """A cases file that cannot be read: shown with the file and line to fix."""


def load_cases(paths: Iterable[Path]) -> list[RegressionCase]:
    """Cases from JSONL files (a folder means its *.jsonl, sorted; blank lines skipped); a repeated case_id
    keeps the last one. A malformed line raises `CaseFileError` naming the file and line."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(p.glob("*.jsonl")))
        elif p.is_file():
            files.append(p)
        else:
            raise CaseFileError(f"no cases file or folder at {p}")
    cases: dict[str, RegressionCase] = {}
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                case = RegressionCase.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise CaseFileError(f"{f}:{n}: not a regression case: {exc}") from exc
            cases[case.case_id] = case
    return list(cases.values())


def read_cases(path: Path) -> list[RegressionCase]:
    """Cases from one JSONL file (see `load_cases`)."""
    return load_cases([path])
