"""Composing the reply of one turn from retrieved chunks and the customer's history.

Guarded streaming: the model's text is cut into sentences as it streams; a sentence is shown only
when it is supported by a source (`assistant.turn.grounding`) and relevant to the question, so a small
model's invention never reaches the customer while supported text still streams with one
sentence of delay. When nothing generated survives but retrieval is strong, the reply quotes the
best passage (mode `extractive`); when the knowledge does not support an answer, the assistant says
so (mode `declined`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator

import numpy as np

from assistant.errors import ModelSlowError
from assistant.llm import ChatGateway
from assistant.models import AnswerEvidence, AnswerResult, Citation, CustomerContext, Message, SearchHit
from assistant.prompts import ANSWER
from assistant.safety.guard import TRANSCRIPT_SPEAKERS, OutputGuard, neutralize
from assistant.settings import AnswerSettings
from assistant.turn.grounding import (
    Passages,
    SentenceSupport,
    SentenceVectors,
    citation_for,
    clean_sentence,
    is_abstention,
)
from assistant.turn.history import render_event
from knowledge.embeddings import MiniLMEmbedder
from knowledge.textvectors import TextVectorStore

logger = logging.getLogger(__name__)

DECLINE_TEXT = (
    "I'm sorry, I couldn't find an answer to that in our help center. "
    "Would you like me to connect you with a member of our team?"
)
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")


_PIECE = re.compile(r"(?<=[.!?:])(?= )|(?=\n)")


def pieces(text: str) -> list[str]:
    """A quote as the pieces it is streamed in (sentence by sentence, a list line by line); they join back to it."""
    return [p for p in _PIECE.split(text) if p]


def format_sources(hits: list[SearchHit], texts: list[str] | None = None) -> str:
    lines = []
    for n, h in enumerate(hits, 1):
        where = " > ".join([h.chunk.title, *h.chunk.headings])
        body = texts[n - 1] if texts is not None else h.chunk.text
        lines.append(f"[{n}] ({where}) " + " ".join(body.split()))
    return "\n".join(lines) or "(none)"


def trim_lines(text: str, max_tokens: int | None) -> str:
    """Whole lines from the top (the profile line first) within `max_tokens` (chars / 4)."""
    if max_tokens is None:
        return text
    out, used = [], 0
    for line in text.splitlines():
        cost = (len(line) + 3) // 4 + 1
        if used + cost > max_tokens:
            break
        out.append(line)
        used += cost
    return "\n".join(out)


def format_transcript(messages: list[Message], limit: int) -> str:
    if limit <= 0 or not messages:
        return ""
    names = {"customer": "Customer", "assistant": "Assistant", "agent": "Agent", "system": "Note"}
    rows = [f"{names[m.role]}: {' '.join(m.text.split())}" for m in messages[-limit:]]
    return "Conversation so far:\n" + "\n".join(rows) + "\n\n"


class Answerer:
    def __init__(
        self,
        chat: ChatGateway,
        embedder: MiniLMEmbedder,
        settings: AnswerSettings,
        company: str = "our company",
        transcript_turns: int = 6,
        words_per_chunk: int | None = None,
        history_tokens: int | None = None,
        guard: OutputGuard | None = None,
        first_token_s: float | None = None,
        text_store: TextVectorStore | None = None,
    ) -> None:
        """`text_store`: the help center's sentence vectors on disk (`knowledge.textvectors`), read before
        embedding a retrieved chunk's sentences."""
        self.first_token_s = first_token_s
        self.guard = guard or OutputGuard()
        self.chat = chat
        self.embedder = embedder
        self.vectors = SentenceVectors(embedder, store=text_store)
        self.settings = settings
        self.company = company
        self.transcript_turns = transcript_turns
        self.words_per_chunk = words_per_chunk
        self.history_tokens = history_tokens

    def stream(
        self,
        question: str,
        hits: list[SearchHit],
        context: CustomerContext,
        transcript: list[Message],
        *,
        turn_id: str | None = None,
        conversation_id: str | None = None,
        search_query: str | None = None,
    ) -> Generator[str, None, AnswerResult]:
        """Yield the text to show as it is approved; return the full result. `search_query` is what was
        searched (the standalone question): relevance is judged against it, so that a follow-up like "and for
        cards?" is judged with its context. Model failures propagate as `ModelUnavailableError` (the engine
        turns them into a handoff)."""
        cfg = self.settings
        top = hits[0].score if hits else 0.0
        strong = top >= cfg.min_retrieval_score
        has_history = context.profile is not None
        if not strong:
            hits = []  # weak matches are noise to a small model, and must not be cited
        extractive_only = cfg.mode == "extractive"
        if not hits and (not has_history or extractive_only):
            # declines are not streamed: the engine decides what the customer sees
            return AnswerResult(
                text=DECLINE_TEXT,
                citations=[],
                evidence=AnswerEvidence(mode="declined", retrieval_top=top),
                streamed=False,
            )

        # What this turn was given: links, emails and identifiers in it may be repeated, nothing else of the kind.
        allowed = "\n".join([*(h.chunk.text for h in hits), *(h.chunk.url or "" for h in hits), context.text])
        guard = self.guard
        passages = Passages(
            hits=hits,
            history=context.text if has_history else "",
            embedder=self.vectors,
            question=search_query or question,
            message=question,
            facts=[render_event(e) for e in context.events],
            # A source sentence the guard would refuse (an instruction to the model, a claimed action) is
            # neither support for a generated sentence nor quotable.
            exclude=lambda s: guard.check(s, allowed) is not None,
        )
        earlier = [m.text for m in transcript[-6:] if m.role == "assistant"]
        if extractive_only:
            return self._extractive(passages, top, [], said=earlier)

        shown: list[SentenceSupport] = []
        shown_vecs: list[np.ndarray] = []
        earlier_vecs = list(self.vectors.embed(earlier)) if earlier else []
        dropped: list[str] = []
        guarded: list[str] = []
        generated: list[str] = []
        buffer = ""

        def judge(sentence: str) -> str | None:
            s = clean_sentence(sentence)
            if len(s.split()) < 3 or len(shown) >= 3:
                return None
            refused = guard.check(s, allowed)
            if refused is not None:  # before any support check: a quoted injection can be "supported"
                dropped.append(s)
                guarded.append(refused)
                return None
            _ = passages.vectors  # the sources' sentences embedded first: a quoted one is then read from the cache
            vec = self.vectors.embed_one(s)
            if any(float(np.dot(vec, v)) > 0.92 for v in shown_vecs) or any(
                float(np.dot(vec, v)) > 0.9 for v in earlier_vecs
            ):
                return None  # a repeat, in this answer or of an earlier one (small models loop)
            sup = passages.support(s, vec)
            if sup.support >= cfg.min_sentence_support and sup.relevance >= cfg.min_sentence_relevance:
                shown.append(sup)
                shown_vecs.append(vec)
                return s
            dropped.append(s)
            return None

        # Everything below but the company name is untrusted data: neutralised before it enters the prompt.
        values = {
            "company": self.company,
            "sources": neutralize(
                format_sources(
                    hits[: cfg.prompt_chunks],
                    passages.focused(self.words_per_chunk, cfg.prompt_chunks) if self.words_per_chunk else None,
                )
            ),
            "customer": neutralize(trim_lines(context.text, self.history_tokens)) or "(none)",
            "transcript": neutralize(format_transcript(transcript, self.transcript_turns), TRANSCRIPT_SPEAKERS),
            "question": neutralize(" ".join(question.split())),
        }
        slow = False
        try:
            for piece in self.chat.stream(
                ANSWER, values, turn_id=turn_id, conversation_id=conversation_id, first_token_s=self.first_token_s
            ):
                generated.append(piece)
                buffer += piece
                while True:
                    m = _BOUNDARY.search(buffer)
                    if not m:
                        break
                    sentence, buffer = buffer[: m.start()], buffer[m.end() :]
                    ok = judge(sentence)
                    if ok:
                        yield ("" if len(shown) == 1 else " ") + ok
        except ModelSlowError as exc:  # the customer is not kept waiting: the best passage now, or "I couldn't find"
            logger.info("answer model too slow (%s): quoting the best passage", exc)
            slow = True
        if slow:
            buffer = ""
        if re.search(r"[.!?][\"')\]]*$", clean_sentence(buffer)):  # an unfinished last sentence is dropped
            ok = judge(buffer)
            if ok:
                yield ("" if len(shown) == 1 else " ") + ok
        full = "".join(generated)
        abstained = is_abstention(full)

        if not shown:
            if hits:
                quoted = self._extractive(passages, top, dropped, abstained, full, said=earlier, guarded=guarded)
                if slow:
                    quoted.evidence.fallback = "model_slow"
                return quoted
            return AnswerResult(
                text=DECLINE_TEXT,
                citations=[],
                evidence=AnswerEvidence(
                    mode="declined",
                    retrieval_top=top,
                    dropped=dropped,
                    guarded=guarded,
                    abstained=abstained,
                    generated_text=full,
                ),
                streamed=False,
            )

        citations: list[Citation] = []
        seen: set[str] = set()
        for sup in shown:
            if sup.source is not None and hits[sup.source].chunk.chunk_id not in seen:
                seen.add(hits[sup.source].chunk.chunk_id)
                citations.append(citation_for(hits[sup.source], sup.source_sentence))
        return AnswerResult(
            text=" ".join(s.sentence for s in shown),
            citations=citations,
            evidence=AnswerEvidence(
                mode="generated",
                retrieval_top=top,
                cited_scores=[c.score for c in citations],
                sentence_support=[round(s.support, 4) for s in shown],
                dropped=dropped,
                guarded=guarded,
                abstained=abstained,
                used_history=any(s.from_history for s in shown),
                generated_text=full,
                answer_relevance=round(sum(s.relevance for s in shown) / len(shown), 4),
            ),
        )

    def quote(self, question: str, hits: list[SearchHit], said: list[str] | None = None) -> AnswerResult | None:
        """The best passage of `hits` for `question`, quoted with its citation (the help-center half of an answer
        that also uses the customer's record), or None when retrieval is too weak to quote (`min_passage_score`:
        no answerability model judges this half). `said`: earlier replies, whose sentences are not quoted again."""
        if not hits or hits[0].score < self.settings.min_passage_score:
            return None
        guard = self.guard
        allowed = "\n".join([*(h.chunk.text for h in hits), *(h.chunk.url or "" for h in hits)])
        passages = Passages(
            hits=hits,
            history="",
            embedder=self.vectors,
            question=question,
            exclude=lambda s: guard.check(s, allowed) is not None,
        )
        text, owners = passages.extractive_each(self.settings.extractive_sentences, said)
        if not text:
            return None
        citations = [citation_for(hits[i], text) for i in owners]
        evidence = AnswerEvidence(
            mode="extractive",
            retrieval_top=hits[0].score,
            cited_scores=[c.score for c in citations],
            sentence_support=[1.0],
            answer_relevance=round(passages.extractive_relevance, 4),
        )
        return AnswerResult(text=text, citations=citations, evidence=evidence)

    def _extractive(
        self,
        passages: Passages,
        top: float,
        dropped: list[str],
        abstained: bool = False,
        generated: str = "",
        said: list[str] | None = None,
        guarded: list[str] | None = None,
    ) -> AnswerResult:
        """The quote (not streamed: the engine shows it once the turn is judged), or a decline."""
        text, owners = passages.extractive_each(self.settings.extractive_sentences, said)
        if not text:
            return AnswerResult(
                text=DECLINE_TEXT,
                citations=[],
                evidence=AnswerEvidence(mode="declined", retrieval_top=top),
                streamed=False,
            )
        relevance = passages.extractive_relevance
        citations = [citation_for(passages.hits[i], text) for i in owners]
        return AnswerResult(
            text=text,
            citations=citations,
            evidence=AnswerEvidence(
                mode="extractive",
                retrieval_top=top,
                cited_scores=[c.score for c in citations],
                sentence_support=[1.0],
                answer_relevance=round(relevance, 4),
                dropped=dropped,
                guarded=guarded or [],
                abstained=abstained,
                generated_text=generated,
            ),
            streamed=False,
        )
