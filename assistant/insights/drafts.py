"""Drafts from a knowledge gap, for a person to edit and approve: an approved answer (question, variants, answer)
or a help-article outline, made from what agents replied to the customers who asked.

Extractive by default (the embedded model is weak at writing): the agents' replies lose their pleasantries
("Thanks for waiting", "Is there anything else?"), and the reply that best answers the gap's questions and agrees
most with the other agents' replies (MiniLM similarity) is the answer; the outline lists the customers' questions
and the agents' distinct statements. With `CXA_INSIGHTS__DRAFT=model` (`auto`: with the openai provider) the chat
model writes them (`gap_answer`, `gap_outline` prompts); a written answer whose figures are not all in the agents'
replies, or that the output guard refuses, falls back to the extractive one.
"""

from __future__ import annotations

import logging
import re

import numpy as np

from assistant.errors import ModelUnavailableError
from assistant.insights.gaps import Grouped
from assistant.insights.replies import content
from assistant.llm import ChatGateway
from assistant.models import DraftAuthor, GapDraft, KnowledgeGap
from assistant.prompts import GAP_ANSWER, GAP_OUTLINE
from assistant.safety.guard import OutputGuard, neutralize
from assistant.settings import InsightsSettings
from assistant.store.approved import question_key
from assistant.turn.grounding import SentenceVectors
from knowledge.chunking import split_sentences

logger = logging.getLogger(__name__)

VARIANTS = 10  # an approved answer's variants from the gap's questions: each one more phrasing served
# A variant is served word for word at CXA_APPROVED__MIN_SCORE, so a gap's question joins the draft only when an
# agent answered it as the draft answers (AGREED), or when it is this similar to the gap's central question itself,
# not only to the gap on average (which a loosely related question can be: "How do I use a gift card?" in a
# gift-wrapping gap, at 0.46).
VARIANT_FLOOR = 0.5
AGREED = 0.7
OUTLINE_POINTS = 8
_FIGURE = re.compile(r"\d+(?:[.,:]\d+)*")


class GapDrafter:
    def __init__(
        self,
        vectors: SentenceVectors,
        settings: InsightsSettings,
        chat: ChatGateway | None = None,
        provider: str = "embedded",
        guard: OutputGuard | None = None,
        company: str = "our company",
    ) -> None:
        self.vectors = vectors
        self.settings = settings
        self.chat = chat
        self.provider = provider
        self.guard = guard or OutputGuard()
        self.company = company

    @property
    def uses_model(self) -> bool:
        mode = self.settings.draft
        if mode == "auto":
            mode = "model" if self.provider == "openai" else "extractive"
        return mode == "model" and self.chat is not None

    def draft(self, gap: KnowledgeGap, grouped: Grouped, kind: str) -> GapDraft:
        question = grouped.central().text
        replies = self._replies(grouped)
        best = self._ranked(grouped, replies)[0] if replies else None
        variants = self._variants(question, grouped, replies[best][1] if best is not None else None)
        if kind == "article_outline":
            outline, by = self._outline(gap, question, grouped, replies)
            return GapDraft(
                gap_id=gap.id,
                kind="article_outline",
                question=question,
                variants=variants,
                outline=outline,
                written_by=by,
            )
        answer, source, by = self._answer(question, grouped, replies)
        return GapDraft(
            gap_id=gap.id,
            kind="approved_answer",
            question=question,
            variants=variants,
            answer=answer,
            written_by=by,
            source_conversation_id=source,
        )

    # -- pieces -----------------------------------------------------------------------------------

    def _variants(self, question: str, grouped: Grouped, answer: str | None) -> list[str]:
        seen = {question_key(question)}
        out = []
        central = grouped.vectors[grouped.questions.index(grouped.central())]
        answer_vec = self.vectors.embed_one(answer) if answer else None
        order = np.argsort(-(grouped.vectors @ grouped.centroid))
        for i in order.tolist():
            q = grouped.questions[i]
            key = question_key(q.text)
            said = content(" ".join(q.agent_answers))
            agreed = (
                answer_vec is not None and bool(said) and float(self.vectors.embed_one(said) @ answer_vec) >= AGREED
            )
            if key and key not in seen and (agreed or float(grouped.vectors[i] @ central) >= VARIANT_FLOOR):
                seen.add(key)
                out.append(q.text)
            if len(out) == VARIANTS:
                break
        return out

    def _replies(self, grouped: Grouped) -> list[tuple[str, str]]:
        """(conversation id, the reply's content) of every agent reply in the gap's conversations, once each."""
        out: dict[str, str] = {}
        for q in grouped.questions:
            for a in q.agent_answers:
                text = content(a)
                if text and text not in out:
                    out[text] = q.conversation_id
        return [(cid, text) for text, cid in out.items()]

    def _ranked(self, grouped: Grouped, replies: list[tuple[str, str]]) -> list[int]:
        """Replies best first: relevance to the gap's questions, and agreement with the other agents' replies."""
        vecs = self.vectors.embed([t for _, t in replies])
        relevance = vecs @ grouped.centroid
        sims = vecs @ vecs.T
        n = len(replies)
        agreement = (sims.sum(axis=1) - 1.0) / (n - 1) if n > 1 else np.zeros(n)
        ranked: list[int] = np.argsort(-(0.6 * relevance + 0.4 * agreement)).tolist()
        return ranked

    def _answer(
        self, question: str, grouped: Grouped, replies: list[tuple[str, str]]
    ) -> tuple[str, str | None, DraftAuthor]:
        if not replies:
            return "", None, "extractive"
        best = self._ranked(grouped, replies)[0]
        source, text = replies[best]
        if self.uses_model:
            written = self._write_answer(grouped, replies)
            if written is not None:
                return written, source, "model"
        return text, source, "extractive"

    def _write_answer(self, grouped: Grouped, replies: list[tuple[str, str]]) -> str | None:
        assert self.chat is not None
        allowed = "\n".join(t for _, t in replies)
        try:
            text = self.chat.complete(
                GAP_ANSWER,
                {
                    "company": self.company,
                    "questions": neutralize("\n".join(q.text for q in grouped.questions[:10])),
                    "replies": neutralize(allowed),
                },
            ).strip()
        except ModelUnavailableError as exc:
            logger.info("gap answer not written by the model: %s", exc)
            return None
        figures_ok = set(_FIGURE.findall(text)) <= set(_FIGURE.findall(allowed))
        if not (20 <= len(text) <= 1200) or not figures_ok or self.guard.check(text, allowed) is not None:
            logger.info("the model's gap answer was refused (length, figures or guard): extractive instead")
            return None
        return text

    def _outline(
        self, gap: KnowledgeGap, question: str, grouped: Grouped, replies: list[tuple[str, str]]
    ) -> tuple[str, DraftAuthor]:
        if self.uses_model and replies and self.chat is not None:
            allowed = "\n".join(t for _, t in replies)
            try:
                text = self.chat.complete(
                    GAP_OUTLINE,
                    {
                        "company": self.company,
                        "questions": neutralize("\n".join(gap.examples)),
                        "replies": neutralize(allowed),
                    },
                ).strip()
                if (
                    text.startswith("#")
                    and "\n## " in text
                    and set(_FIGURE.findall(text)) <= set(_FIGURE.findall(allowed + " ".join(gap.examples)))
                ):
                    return text, "model"
            except ModelUnavailableError as exc:
                logger.info("gap outline not written by the model: %s", exc)
        points: list[str] = []
        if replies:
            sentences = list(dict.fromkeys(s for _, t in replies for s in split_sentences(t) if len(s.split()) >= 3))
            vecs = self.vectors.embed(sentences)
            kept: list[int] = []
            for i in np.argsort(-(vecs @ grouped.centroid)).tolist():
                if all(float(vecs[i] @ vecs[j]) < 0.9 for j in kept):
                    kept.append(i)
                if len(kept) == OUTLINE_POINTS:
                    break
            points = [sentences[i] for i in kept]
        lines = [f"# {question}", "", "## What customers ask", *(f"- {e}" for e in gap.examples), ""]
        lines += ["## What our agents answer", *(f"- {p}" for p in points or ["(no agent reply yet)"]), ""]
        lines += [
            "## Before publishing",
            "- Check every point against the current policy.",
            "- Add the steps, links and screenshots a customer needs to do it alone.",
        ]
        return "\n".join(lines), "extractive"
