"""The agent's copilot: for an open handoff, a reply drafted from the same sources the assistant has (an approved
answer, the customer's record through the account tools, the help center's best passage), with its citations; and
what agents did with the drafts.

The draft answers the customer's latest questions before the handoff (messages that ask something: not "agent
please"), newest first, falling back to the packet's summary of the issue:
1. an approved answer at `CXA_APPROVED__COPILOT_MIN_SCORE` (lower than the customer-facing threshold: a person reads
   it before it is sent) is the reply;
2. otherwise, for a verified customer, what their record says (`assistant.account`), then
3. the help center's best passage for the question (quoted, as the assistant's extractive answer is), when
   retrieval is strong enough to quote.
Nothing found: an empty draft (still counted as shown: the agent saw there was nothing).

A suggestion is stored when shown (the same undecided draft is not stored twice); the agent's reply decides it:
sent with its id and the same text (white space aside) = `sent`, with its id and other text = `edited`, any reply
without it, or the console's "ignore" = `ignored`.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from datetime import datetime

from assistant.account.answer import AccountAnswerer
from assistant.approved.matcher import ApprovedMatcher
from assistant.errors import ModelUnavailableError
from assistant.insights.gaps import is_question
from assistant.models import (
    Citation,
    ClaimFigures,
    Conversation,
    CopilotFigures,
    Message,
    SearchHit,
    Suggestion,
    SuggestionOutcome,
    SuggestionSource,
    utcnow,
)
from assistant.settings import Settings
from assistant.store.db import new_id
from assistant.store.repo import Store
from assistant.turn.answer import Answerer
from knowledge.errors import KnowledgeError

logger = logging.getLogger(__name__)

Search = Callable[[str, int], list[SearchHit]]
QUESTIONS = 3  # the customer's latest questions tried, newest first


def outcome_of(suggested: str, sent: str) -> SuggestionOutcome:
    return "sent" if " ".join(suggested.split()) == " ".join(sent.split()) else "edited"


class Copilot:
    def __init__(
        self,
        store: Store,
        matcher: ApprovedMatcher,
        search: Search,
        answerer: Answerer,
        settings: Settings,
        account: AccountAnswerer | None = None,
    ) -> None:
        self.store = store
        self.matcher = matcher
        self.search = search
        self.answerer = answerer
        self.settings = settings
        self.account = account

    # -- drafting -----------------------------------------------------------------------------------

    def suggest(self, handoff_id: str) -> Suggestion:
        """The drafted reply for the handoff (`HandoffNotFoundError` for an unknown id), stored as shown."""
        handoff = self.store.get_handoff(handoff_id)
        conversation = self.store.get_conversation(handoff.conversation_id)
        transcript = self.store.list_messages(conversation.id)
        before = [m for m in transcript if m.created_at <= handoff.created_at] or transcript
        questions = [m for m in before if m.role == "customer" and is_question(m.text)][::-1][:QUESTIONS]
        texts = [m.text for m in questions] or ([handoff.summary.issue] if handoff.summary.issue else [])
        parts: list[str] = []
        citations: list[Citation] = []
        sources: list[SuggestionSource] = []

        approved = next(
            (m for t in texts if (m := self.matcher.match(t, min_score=self.settings.approved.copilot_min_score))),
            None,
        )
        if approved is not None:
            parts.append(approved.answer.answer)
            citations.append(approved.citation())
            sources.append("approved")
        else:
            record = self._from_record(conversation, questions, transcript)
            if record is not None:
                parts.append(record[0])
                citations += record[1]
                sources.append("account")
            quoted = self._from_help_center(texts)
            if quoted is not None:
                parts.append(quoted[0])
                citations += quoted[1]
                sources.append("help_center")
        text = "\n\n".join(parts)
        latest = self.store.suggestions.latest(handoff_id)
        if latest is not None and latest.outcome is None and latest.text == text:
            return latest  # the same draft, still undecided: shown once
        return self.store.suggestions.add(
            Suggestion(
                id=new_id("sug"),
                handoff_id=handoff_id,
                conversation_id=conversation.id,
                text=text,
                citations=citations,
                sources=sources,
                created_at=utcnow(),
            )
        )

    def _from_record(
        self, conversation: Conversation, questions: list[Message], transcript: list[Message]
    ) -> tuple[str, list[Citation]] | None:
        if self.account is None or not conversation.verified:
            return None
        for q in questions:
            previous = [m for m in transcript if m.seq < q.seq]
            try:
                answer = self.account.answer(q.text, conversation, previous)
            except Exception:  # a bad record must not cost the agent the rest of the draft
                logger.warning("copilot: the account answer failed", exc_info=True)
                return None
            if answer is not None:
                return answer.text, list(answer.citations)
        return None

    def _from_help_center(self, texts: list[str]) -> tuple[str, list[Citation]] | None:
        for text in texts:
            try:
                hits = self.search(text, self.settings.retrieval.top_k)
                quoted = self.answerer.quote(text, hits)
            except (KnowledgeError, ModelUnavailableError) as exc:
                logger.warning("copilot: no help-center passage (%s)", exc)
                return None
            if quoted is not None:
                return quoted.text, quoted.citations
        return None

    # -- what the agent did -------------------------------------------------------------------------

    def on_agent_reply(self, conversation_id: str, text: str, message_id: str, suggestion_id: str | None) -> None:
        """The agent replied: the suggestion it came from is `sent` or `edited`; any other undecided one of the
        conversation is `ignored`."""
        for s in self.store.suggestions.undecided(conversation_id):
            if s.id == suggestion_id:
                self.store.suggestions.decide(s.id, outcome_of(s.text, text), message_id)
            elif s.text:
                self.store.suggestions.decide(s.id, "ignored", message_id)

    def ignore(self, handoff_id: str) -> Suggestion | None:
        """The agent dismissed the handoff's undecided suggestion (None when there is none; `HandoffNotFoundError`
        for an unknown handoff)."""
        self.store.get_handoff(handoff_id)
        latest = self.store.suggestions.latest(handoff_id)
        if latest is None or latest.outcome is not None:
            return None
        self.store.suggestions.decide(latest.id, "ignored")
        return self.store.suggestions.get(latest.id)

    # -- figures ------------------------------------------------------------------------------------

    def figures(self, since: datetime | None, until: datetime | None) -> CopilotFigures:
        shown = self.store.suggestions.find(since, until)
        drafted = [s for s in shown if s.text]
        timings = self.store.insights.claims(since, until)

        def waits(with_suggestion: bool) -> ClaimFigures:
            values = [
                (t.first_reply_at - t.claimed_at).total_seconds()
                for t in timings
                if t.first_reply_at is not None and t.suggested == with_suggestion
            ]
            if not values:
                return ClaimFigures(handoffs=0)
            return ClaimFigures(
                handoffs=len(values),
                median_s=round(statistics.median(values), 2),
                mean_s=round(statistics.fmean(values), 2),
            )

        return CopilotFigures(
            since=since,
            until=until,
            shown=len(drafted),
            sent_as_is=sum(s.outcome == "sent" for s in drafted),
            edited=sum(s.outcome == "edited" for s in drafted),
            ignored=sum(s.outcome == "ignored" for s in drafted),
            undecided=sum(s.outcome is None for s in drafted),
            empty=len(shown) - len(drafted),
            claim_to_first_reply_with=waits(True),
            claim_to_first_reply_without=waits(False),
        )
