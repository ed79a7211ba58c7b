"""The conversation engine: one turn = persist -> history -> standalone question -> retrieve ->
answer (guarded, streamed) -> confidence -> record, with per-step timings on the turn record.

The customer's message is committed before anything else runs. Whatever fails afterwards (the
model, the index) ends the turn as a handoff with reason `error`, never as a lost message. While a
person has the conversation the bot stays silent: the message is stored for the agent and
`reply` is None.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator, Iterator
from contextlib import nullcontext
from typing import Any, Protocol, TypeVar

import numpy as np

from assistant.account.answer import AccountAnswer, AccountAnswerer
from assistant.account.records import RECORD_EVENTS, RECORD_PAST
from assistant.account.router import asks_how_things_work
from assistant.approved.matcher import ApprovedMatcher
from assistant.errors import ModelUnavailableError, StoreUnavailableError
from assistant.handoff.service import HandoffService
from assistant.llm import ChatGateway
from assistant.models import (
    Action,
    AnswerEvidence,
    AnswerResult,
    ApprovedMatch,
    Citation,
    CitationsEvent,
    Conversation,
    ConversationStatus,
    ConversationView,
    Decision,
    DoneEvent,
    Feedback,
    Handoff,
    HandoffEvent,
    HandoffReceipt,
    IntentEvidence,
    Message,
    Reply,
    SearchHit,
    TokenEvent,
    ToolCall,
    Turn,
    TurnEvent,
    TurnRecord,
    TurnState,
)
from assistant.prompts import CONDENSE_QUESTION
from assistant.prompts.replies import GREETING, SIGN_IN_TO_CHECK
from assistant.safety.guard import TRANSCRIPT_SPEAKERS, neutralize
from assistant.settings import Settings
from assistant.store.repo import Store
from assistant.telemetry.observability import TurnObserver
from assistant.telemetry.recorder import Telemetry
from assistant.telemetry.signals import is_confirmation
from assistant.turn.answer import Answerer, format_transcript, pieces
from assistant.turn.answerability import POOL, AnswerabilityModel, TurnEvidence, earlier_context
from assistant.turn.confidence import decide_after_answer, decide_before_answer, turn_confidence
from assistant.turn.context import StepTimer, TurnContext
from assistant.turn.history import HistoryBuilder
from assistant.turn.intent import PolicyRules, frustration, wants_human
from assistant.turn.quotes import with_stated_fact
from assistant.turn.rewrite import heuristic_standalone, search_context
from knowledge.chunking import split_sentences
from knowledge.errors import KnowledgeError
from knowledge.types import SearchContext

logger = logging.getLogger(__name__)
ResultT = TypeVar("ResultT")  # what a relayed generation returns: an AnswerResult, an AccountAnswer

CLOSING_TEXT = "You're welcome! Is there anything else I can help you with?"
# An anonymous visitor's question about "my" refund or parcel is answered from the help center first when its best
# passage is this similar to the question ("I paid with PayPal, how long until the money shows up?"); below it
# ("where is my order?") only their record would answer, and signing in comes first.
HELP_FIRST_RELEVANCE = 0.55


# Words that say a thank-you goes on to something more: a question, a reservation, a new request.
# Question words count where a clause starts ("thanks, how do I..."), not inside one ("just what I needed").
_MORE_TO_SAY = re.compile(
    r"\b(but|however|although|though|also|another|still|except"
    r"|can you|could you|would you|please help|i need|i want|i'd like)\b"
    r"|(?:^|[.,!;:]\s*)(?:and\s+|so\s+)?(?:how|what|why|when|where|which|who)\b",
    re.IGNORECASE,
)


_GREETING = re.compile(
    r"^\W*(hi|hiya|hey|hello|hallo|howdy|yo|good (morning|afternoon|evening)|morning|afternoon|evening|"
    r"bonjour|salut|hola|ciao|hej|guten tag|moin)( there| all| team| you| again| guys)?[\W\d]*$",
    re.IGNORECASE,
)


def is_greeting_only(text: str) -> bool:
    """ "hi", "hello there!", "good morning": a greeting and nothing else."""
    return bool(_GREETING.match(text.strip()))


def is_thanks_only(text: str) -> bool:
    """A thank-you or "that worked" with no new question or request in it (answered with a closing line)."""
    return is_confirmation(text) and "?" not in text and len(text.split()) <= 25 and not _MORE_TO_SAY.search(text)


class Search(Protocol):
    """The knowledge search a turn uses: `knowledge.retriever.Retriever.search`, or it with approved answers."""

    def __call__(self, query: str, k: int, *, context: SearchContext | None = None) -> list[SearchHit]: ...


PERSON_HAS_IT = ("waiting_for_agent", "with_agent")
_UNSET: Any = object()


def cited_sources(previous: list[Message], replies: int) -> list[str]:
    """The help-center pages cited by the latest `replies` replies that cited any (oldest first, newest last).
    Account records and approved answers are not pages."""
    out: list[str] = []
    seen = 0
    for m in reversed(previous):
        if seen >= replies:
            break
        if m.role not in ("assistant", "agent"):
            continue
        pages = [c.source_id for c in m.citations if not c.source_id.startswith(("account:", "approved:"))]
        if pages:
            seen += 1
            out = [p for p in dict.fromkeys(pages) if p not in out] + out
    return out


class ConversationEngine:
    def __init__(
        self,
        store: Store,
        search: Search,
        answerer: Answerer,
        history: HistoryBuilder,
        handoffs: HandoffService,
        chat: ChatGateway,
        settings: Settings,
        telemetry: Telemetry | None = None,
        observer: TurnObserver | None = None,
        account: AccountAnswerer | None = None,
        approved: ApprovedMatcher | None = None,
        answerability: AnswerabilityModel | None = None,
    ) -> None:
        self.answerability = answerability or AnswerabilityModel.load(settings.policy.answerability_model)
        self.account = account
        self.approved = approved
        self.store = store
        self.telemetry = telemetry
        self.observer = observer
        self.search = search
        self.answerer = answerer
        self.history = history
        self.handoffs = handoffs
        self.chat = chat
        self.settings = settings
        self.policy_rules = PolicyRules(settings.policy.rules)

    # -- conversations ----------------------------------------------------------------------------

    def start_conversation(
        self, customer_id: str | None, verified: bool, channel: str = "web", metadata: dict[str, Any] | None = None
    ) -> Conversation:
        """An unverified caller is anonymous: the id they claim is kept in metadata for the agent, never
        used to load history or to link the conversation to that customer."""
        meta = dict(metadata or {})
        if customer_id and not verified:
            meta["claimed_customer_id"] = customer_id
        conv = self.store.create_conversation(customer_id if verified else None, verified, channel, meta)
        if self.telemetry is not None:
            self.telemetry.refresh(conv.id)
        return conv

    def conversation(self, conversation_id: str) -> Conversation:
        """Raises `ConversationNotFoundError` for an unknown id."""
        return self.store.get_conversation(conversation_id)

    def transcript(self, conversation_id: str) -> tuple[Conversation, list[Message]]:
        conv = self.store.get_conversation(conversation_id)
        return conv, self.store.list_messages(conversation_id)

    def view(self, conversation_id: str) -> ConversationView:
        """The conversation as its customer's widget (or staff) reads it."""
        conv, messages = self.transcript(conversation_id)
        handoff = self.store.open_handoff(conversation_id)
        return ConversationView(
            conversation=conv,
            messages=messages,
            handoff=handoff,
            queue=self.handoffs.queue_info(handoff),
            facts=self.store.get_facts(conversation_id),
            signals=self.store.list_signals(conversation_id),
        )

    def messages_since(self, conversation_id: str, after_seq: int) -> tuple[list[Message], Conversation]:
        """New messages after `after_seq` and the conversation's state now (what a live stream sends)."""
        return self.store.list_messages(conversation_id, after_seq), self.store.get_conversation(conversation_id)

    def request_handoff(
        self, conversation_id: str, reason: str = "customer_request", note: str | None = None
    ) -> Handoff:
        """The customer asked for a person (or a rule decided so); `note` is what they wrote, if anything."""
        conv = self.store.get_conversation(conversation_id)
        ctx = self.history.build(conv)
        handoff, created = self.handoffs.hand_off(conversation_id, reason, None, ctx, note)
        if created and self.telemetry is not None:
            self.telemetry.on_handoff(conversation_id, reason)
        return handoff

    def ask_for_person(self, conversation_id: str, note: str | None = None) -> HandoffReceipt:
        """The widget's "talk to a person": the handoff (reason `customer_request`, with what the customer wrote
        as its note), where it left the conversation, and the queue."""
        handoff = self.request_handoff(conversation_id, "customer_request", note)
        status = self.store.get_conversation(conversation_id).status
        return HandoffReceipt(handoff=handoff, status=status, queue=self.handoffs.queue_info(handoff))

    def record_feedback(self, conversation_id: str, feedback: Feedback) -> None:
        self.store.add_feedback(conversation_id, feedback)
        if self.telemetry is not None:
            self.telemetry.on_feedback(conversation_id, feedback)

    # -- one turn ---------------------------------------------------------------------------------

    def run_turn(self, conversation_id: str, text: str) -> Turn:
        turn: Turn | None = None
        for ev in self.stream_turn(conversation_id, text):
            if isinstance(ev, DoneEvent):
                turn = ev.turn
        assert turn is not None
        return turn

    def stream_turn(self, conversation_id: str, text: str) -> Iterator[TurnEvent]:
        """One customer turn as events (tokens, citations, handoff, done); see the module docstring.

        The customer's message is committed before this returns (not on the first `next()`): an unknown
        conversation or an unavailable database raises here, while a streaming route can still answer
        with a 404/503 instead of a 200 stream carrying an `error` event."""
        timer = StepTimer()
        # One transaction: the conversation and its messages so far, then this message (an unknown id raises
        # before anything is written).
        conv, previous, msg, turn_id = self.store.open_turn(conversation_id, text)
        timer.lap("persist")
        record = TurnRecord(id=turn_id, conversation_id=conv.id, message_id=msg.id, created_at=msg.created_at)
        t = TurnContext(conversation=conv, previous=previous, message=msg, record=record, timer=timer)
        return self._observed(t, self._handle_message(t))

    def _handle_message(self, t: TurnContext) -> Generator[TurnEvent, None, None]:
        """history -> intent -> standalone question -> retrieve -> answer -> confidence -> reply or hand off.
        Whatever fails after the message was stored ends the turn in a handoff (reason `error`), never a loss."""
        if t.conversation.status in PERSON_HAS_IT:
            yield self._leave_to_person(t)
            return
        if t.conversation.status in ("resolved", "abandoned"):  # the customer came back: the bot picks up again
            t.conversation = self.store.set_status(t.conversation_id, "bot")
        result: AnswerResult | None = None
        decision: Decision | None = None
        try:
            self._load_customer(t)
            decision = self._decide_on_intent(t)
            if decision is None and self._is_closing(t):
                yield from self._close_politely(t)
                return
            if decision is None and is_greeting_only(t.text):
                yield from self._greet(t)
                return
            if decision is None:
                approved, account = self._find_sources(t)
                if approved is not None:
                    yield from self._deliver_approved(t, approved)
                    return
                if account is not None:
                    yield from self._deliver_account(t, account)
                    return
                result = yield from self._compose(t)
        except (ModelUnavailableError, KnowledgeError) as exc:
            t.record.error = str(exc)
            logger.warning("turn %s degraded to a handoff: %s", t.turn_id, exc)
        except StoreUnavailableError:
            raise
        except Exception as exc:  # an unexpected bug must still not lose the customer: hand off and record it
            t.record.error = f"{type(exc).__name__}: {exc}"
            logger.exception("turn %s failed; handing off", t.turn_id)
        if result is None:  # no answer: the model or index failed, or intent sent it straight to a person
            reason = "error" if t.record.error is not None or decision is None else str(decision.reason)
            yield from self._hand_off_unanswered(t, reason)
            return
        yield from self._deliver(t, result)

    # -- the steps, in the order they run -----------------------------------------------------------

    def _load_customer(self, t: TurnContext) -> None:
        """The customer's record and earlier conversations, for a verified customer (`assistant.turn.history`): read
        once, as much of it as the account step needs too."""
        needs = (RECORD_EVENTS, RECORD_PAST) if self.account is not None else (0, 0)
        t.account_record = self.history.read(t.conversation, *needs)
        t.customer = self.history.build(t.conversation, t.text, t.account_record)
        t.timer.lap("history")

    def _decide_on_intent(self, t: TurnContext) -> Decision | None:
        """A request for a person, a policy topic or frustration decides before any knowledge is consulted."""
        t.intent = t.record.intent = self.assess_intent(t.text, t.previous)
        decision = decide_before_answer(t.intent, self.settings.policy)
        t.timer.lap("intent")
        return decision

    def _is_closing(self, t: TurnContext) -> bool:
        return is_thanks_only(t.text) and any(m.role != "customer" for m in t.previous)

    def _find_sources(self, t: TurnContext) -> tuple[ApprovedMatch | None, AccountAnswer | None]:
        """What answers the message: an approved answer, else the customer's record, else the knowledge's chunks
        (left in `t.hits`). The approved answers are read once for all three (`ApprovedMatcher.one_version`: the
        search offers them as passages too)."""
        with self.approved.one_version() if self.approved is not None else nullcontext():
            approved = self._match_approved(t)
            if approved is not None:
                return approved, None
            account = self._consult_record(t)
            if account is not None:
                return None, account
            self._retrieve(t)
            return None, None

    def _match_approved(self, t: TurnContext) -> ApprovedMatch | None:
        """An approved answer whose question matches the message (`assistant.approved`): served verbatim. One
        already served in this conversation is not served again (the customer asking on means it did not help)."""
        if self.approved is None:
            return None
        served = {c.source_id.removeprefix("approved:") for m in t.previous for c in m.citations}
        best = self.approved.best(t.text, exclude=served)
        if best is not None:
            t.record.approved_id, t.record.approved_score = best.answer.id, best.score
        t.timer.lap("approved")
        return best if best is not None and best.score >= self.approved.settings.min_score else None

    def _consult_record(self, t: TurnContext) -> AccountAnswer | None:
        """A question about the customer's own orders, refunds or membership is answered from their record
        (`assistant.account`): None for any other question."""
        if self.account is None:
            return None
        last_call = self._last_account_call(t)
        answer = self.account.answer(t.text, t.conversation, t.previous, last_call, t.account_record)
        if answer is not None:
            t.record.tool_calls = answer.tool_calls
        t.timer.lap("account")
        return answer

    def _last_account_call(self, t: TurnContext) -> ToolCall | None:
        """The account tool the previous answer of this conversation called, if it was an account answer (read
        only then: most conversations never touch the record)."""
        last_reply = next((m for m in reversed(t.previous) if m.role == "assistant"), None)
        if last_reply is None or not any(c.source_id.startswith("account:") for c in last_reply.citations):
            return None
        for turn in reversed(self.store.list_turns(t.conversation_id)):
            if turn.tool_calls and turn.reply_message_id == last_reply.id:
                return turn.tool_calls[-1]
        return None

    def _retrieve(self, t: TurnContext) -> None:
        """The message as a standalone question, and the knowledge's best chunks for it."""
        query = t.record.query = self.standalone_question(t.text, t.previous, t.turn_id, t.conversation_id)
        t.timer.lap("rewrite")
        searched, context = self.search_request(t.text, query, t.previous)
        # one search, as wide as the answerability model reads (page agreement); the answer uses its top-k
        top_k = self.settings.retrieval.top_k
        t.pool = self.search(searched, max(top_k, POOL), context=context)
        t.hits = t.pool[:top_k]
        t.record.chunk_ids = [h.chunk.chunk_id for h in t.hits]
        t.record.chunk_scores = [round(h.score, 4) for h in t.hits]
        t.timer.lap("retrieve")

    def _compose(self, t: TurnContext) -> Generator[TurnEvent, None, AnswerResult]:
        """The answer, streamed as it is approved (`assistant.turn.answer`)."""
        gen = self.answerer.stream(
            t.text,
            with_stated_fact(t.hits, t.pool, t.record.query or t.text),
            t.customer,
            t.previous,
            turn_id=t.turn_id,
            conversation_id=t.conversation_id,
            search_query=t.record.query,
        )
        result = yield from self._relay(gen, t.timer)
        t.timer.lap("generate")
        return result

    def _deliver(self, t: TurnContext, result: AnswerResult) -> Iterator[TurnEvent]:
        """Judge the answer, then show it (and offer a person), or hand the conversation off."""
        confidence = self._confidence(t, result.evidence, result.citations)
        decision = decide_after_answer(confidence, result.evidence.mode, self.settings.policy)
        t.timer.lap("confidence")
        t.record.evidence, t.record.action = result.evidence, decision.action
        declined = result.evidence.mode == "declined"
        if not result.streamed and decision.action == "handoff":
            # nothing was shown yet (a decline, or a quote judged too weak to show): a person takes it from here
            yield from self._hand_off(t, "low_confidence", confidence)
            return
        t.record.cited_chunk_ids = [c.chunk_id for c in result.citations if c.chunk_id]
        if declined:  # the answerer does not stream a decline: it is shown only when no handoff replaces it
            yield TokenEvent(text=result.text)
        elif not result.streamed:  # a quote, judged: shown sentence by sentence
            yield from (TokenEvent(text=p) for p in pieces(result.text))
        if result.citations:
            yield CitationsEvent(citations=result.citations)
        reply = self._store_reply(t, Reply(text=result.text, citations=result.citations, mode=result.evidence.mode))
        if decision.action == "handoff":  # a weak answer was shown; a person follows up on it
            yield from self._hand_off(t, "low_confidence", confidence, reply)
            return
        self._signals(t, "dead_end" if declined else "answered", confidence)
        yield self._finish(t, reply, confidence, t.conversation.status)

    def _confidence(self, t: TurnContext, evidence: AnswerEvidence, citations: list[Citation] | None = None) -> float:
        """The calibrated answerability of the turn (`assistant.turn.answerability`), recorded on `evidence` with
        each feature's contribution. An answer that rests on the customer's own record, or only on answers agents
        approved, rather than on help pages is at least as sure as an offer of a person (the model was trained on
        help pages: it judges neither records nor a person's answer to a question like this one)."""
        query = t.record.query or t.text
        pool = t.pool or t.hits  # the wider search of `_retrieve` (the help passage of an account answer: its hits)
        turn = TurnEvidence(
            message=t.text,
            query=query,
            hits=t.hits,
            pool=pool,
            mode=evidence.mode,
            shown_relevance=evidence.answer_relevance,
            earlier_turns=sum(m.role == "customer" for m in t.previous),
            frustration=t.intent.frustration_score,
            context=earlier_context([m.text for m in t.previous if m.role == "customer"]),
        )
        policy = self.settings.policy
        p = turn_confidence(self.answerability, evidence, turn, self.answerer.vectors, policy.handoff_threshold)
        from_record = evidence.used_history and not evidence.cited_scores
        from_agents = bool(citations) and all(c.source_id.startswith("approved:") for c in citations or [])
        return max(p, policy.offer_below) if from_record or from_agents else p

    def _deliver_account(self, t: TurnContext, account: AccountAnswer) -> Iterator[TurnEvent]:
        """The record's answer, completed by the help center's best passage when the message also asks
        something general ("my sofa is late, can I still return it?"); handed to a person when the record itself
        needs one (a late delivery, an overdue refund)."""
        said = [m.text for m in t.previous if m.role == "assistant"]  # earlier replies: not said again
        quoted: AnswerResult | None = None
        searched = False  # the help passage was already looked up this turn (not searched twice)
        if self.account is not None and self.account.phraser is not None:
            gen = self.account.phrase(
                account,
                t.text,
                format_transcript(t.previous, self.settings.history.transcript_turns),
                turn_id=t.turn_id,
                conversation_id=t.conversation_id,
            )
            account = yield from self._relay(gen, t.timer)
            t.record.tool_calls = account.tool_calls
            t.timer.lap("generate")
        elif account.help_first and account.help_query and asks_how_things_work(t.text):
            # an anonymous visitor's question the help center answers: that answer first, signing in on offer
            quoted, searched = self._quote_help(t, account.help_query, said), True
            if quoted is not None and quoted.evidence.answer_relevance >= HELP_FIRST_RELEVANCE:
                account.text = f"{quoted.text}\n\n{SIGN_IN_TO_CHECK.fill()}"
                account.citations = [*quoted.citations, *account.citations]
                account.help_query = None
                yield from (TokenEvent(text=p) for p in pieces(account.text))
            else:  # "where is my order?": only their record answers it
                yield TokenEvent(text=account.text)
        else:
            if said and not account.handoff_reason and _already_said(account.text, said[-1]):
                account = self._say_what_is_new(t, account)
            yield TokenEvent(text=account.text)
        text, citations = account.text, list(account.citations)
        if account.help_query:
            if not searched:
                quoted = self._quote_help(t, account.help_query, said, account.help_in_context)
            if quoted is not None:  # after the record's answer (help-first: the passage too weak to lead)
                text = f"{text}\n\n{quoted.text}"
                citations += quoted.citations
                yield TokenEvent(text=f"\n\n{quoted.text}")
        action: Action = "handoff" if account.handoff_reason else "answer_and_offer" if account.offer else "answer"
        t.record.evidence = AnswerEvidence(
            mode="account",
            retrieval_top=t.hits[0].score if t.hits else 0.0,
            cited_scores=[c.score for c in citations],
            sentence_support=[1.0],
            used_history=True,
            answer_relevance=account.intent.score if account.intent else 0.0,
        )
        t.record.action = action
        t.record.cited_chunk_ids = [c.chunk_id for c in citations if c.chunk_id]
        if citations:
            yield CitationsEvent(citations=citations)
        reply = self._store_reply(t, Reply(text=text, citations=citations, mode="account"))
        if account.handoff_reason:
            yield from self._hand_off(t, account.handoff_reason, account.confidence, reply)
            return
        self._signals(t, "answered", account.confidence)
        yield self._finish(t, reply, account.confidence, t.conversation.status)

    def _say_what_is_new(self, t: TurnContext, account: AccountAnswer) -> AccountAnswer:
        """A follow-up on the record just described ("why did it fail?" after "your payment didn't go through..."):
        the record's answer would repeat the last reply word for word. Keep the one sentence of it that bears on
        the question, and answer the question itself from the help center, read with the conversation (the
        standalone question), quoting nothing already said."""
        sentences = split_sentences(account.text)
        if len(sentences) > 1:
            vectors = self.answerer.vectors
            sims = vectors.embed(sentences) @ vectors.embed_one(t.text)
            account.text = sentences[int(np.argmax(sims))]
        account.help_query = t.record.query or t.text
        account.help_in_context = True
        return account

    def _quote_help(
        self, t: TurnContext, query: str, said: list[str] | None = None, in_context: bool = False
    ) -> AnswerResult | None:
        """The help center's best passage for the general part of an account question (None when none is strong);
        `said`: the conversation's earlier replies, not quoted again. `in_context`: the query is a follow-up
        ("why did it fail?"), searched and read with the conversation as the knowledge path does (its earlier
        messages and the pages its replies cited), not alone."""
        t.record.query = query
        context = None
        if in_context and t.previous:
            query, context = self.search_request(t.text, query, t.previous)
            turns = [(m.role, m.text) for m in t.previous if m.role in ("customer", "assistant", "agent")]
            question = heuristic_standalone(query, turns)
        else:
            question = query
        top_k = self.settings.retrieval.top_k
        t.pool = self.search(query, max(top_k, POOL), context=context)
        t.hits = t.pool[:top_k]
        t.record.chunk_ids = [h.chunk.chunk_id for h in t.hits]
        t.record.chunk_scores = [round(h.score, 4) for h in t.hits]
        t.timer.lap("retrieve")
        return self.answerer.quote(question, with_stated_fact(t.hits, t.pool, question), said)

    def _deliver_approved(self, t: TurnContext, match: ApprovedMatch) -> Iterator[TurnEvent]:
        """A person's answer to this question, word for word, cited as `approved:<id>`; its hit is counted."""
        citation = match.citation()
        t.record.evidence = AnswerEvidence(
            mode="approved",
            retrieval_top=match.score,
            cited_scores=[citation.score],
            sentence_support=[1.0],
            answer_relevance=match.score,
        )
        t.record.action = "answer"
        yield TokenEvent(text=match.answer.answer)
        yield CitationsEvent(citations=[citation])
        reply = self._store_reply(t, Reply(text=match.answer.answer, citations=[citation], mode="approved"))
        assert self.approved is not None
        self.approved.repo.record_hit(match.answer.id)
        self._signals(t, "answered", citation.score)
        yield self._finish(t, reply, citation.score, t.conversation.status)

    # -- the ways a turn ends ---------------------------------------------------------------------

    def _leave_to_person(self, t: TurnContext) -> DoneEvent:
        """A person has the conversation: the bot stays silent, but repeats and anger while waiting still count."""
        try:
            t.intent = t.record.intent = self.assess_intent(t.text, t.previous)
        except Exception:
            logger.exception("intent signals failed for a message to a person")
        self._signals(t)
        handoff = self.store.open_handoff(t.conversation_id)
        return self._finish(t, None, 0.0, t.conversation.status, handoff, reply_mode=None)

    def _close_politely(self, t: TurnContext) -> Iterator[TurnEvent]:
        """ "Thanks, that worked": no search, no handoff; a short closing reply (the confirmation is a signal)."""
        yield TokenEvent(text=CLOSING_TEXT)
        t.record.action = "answer"
        reply = self._store_reply(t, Reply(text=CLOSING_TEXT, citations=[], mode="closing"))
        self._signals(t)
        yield self._finish(t, reply, 1.0, t.conversation.status)

    def _greet(self, t: TurnContext) -> Iterator[TurnEvent]:
        """ "Hi": greeted back by name when the customer is known; no search, no handoff."""
        profile = t.customer.profile
        first = (profile.name or "").split()[0] if profile is not None and profile.name else ""
        text = GREETING.fill(name=f" {first}" if first else "")
        yield TokenEvent(text=text)
        t.record.action = "answer"
        reply = self._store_reply(t, Reply(text=text, citations=[], mode="greeting"))
        self._signals(t)
        yield self._finish(t, reply, 1.0, t.conversation.status)

    def _hand_off_unanswered(self, t: TurnContext, reason: str) -> Iterator[TurnEvent]:
        """No answer was composed (intent decided, or the model or index failed)."""
        top = t.hits[0].score if t.hits else 0.0
        t.record.evidence = AnswerEvidence(mode="error", retrieval_top=top)
        yield from self._hand_off(t, reason, 0.0, state="error" if t.record.error is not None else "done")

    def _hand_off(
        self,
        t: TurnContext,
        reason: str,
        confidence: float,
        reply: Reply | None = None,
        state: TurnState = "done",
    ) -> Iterator[TurnEvent]:
        handoff, created = self.handoffs.hand_off(t.conversation_id, reason, confidence, t.customer)
        t.timer.lap("handoff")
        t.record.handoff_id, t.record.action = handoff.id, "handoff"
        could_not_answer = reason in ("error", "low_confidence")
        self._signals(t, "dead_end" if could_not_answer else None, confidence, reason if created else None)
        yield HandoffEvent(handoff=handoff)
        reply_mode = reply.mode if reply else "handoff"
        yield self._finish(t, reply, confidence, "waiting_for_agent", handoff, state=state, reply_mode=reply_mode)

    # -- shared by the steps ----------------------------------------------------------------------

    def _store_reply(self, t: TurnContext, reply: Reply) -> Reply:
        msg = self.store.add_message(t.conversation_id, "assistant", reply.text, reply.citations, turn_id=t.turn_id)
        t.record.reply_message_id = msg.id
        t.timer.lap("record")
        return reply

    def _signals(
        self, t: TurnContext, result: str | None = None, confidence: float | None = None, handoff: str | None = None
    ) -> None:
        """This message's effort and resolution signals (never raises; timed as its own step)."""
        if self.telemetry is not None:
            self.telemetry.on_customer_message(
                t.conversation, t.message, t.previous, t.intent.frustration, t.turn_id, result, confidence, handoff
            )
        t.timer.lap("signals")

    def _finish(
        self,
        t: TurnContext,
        reply: Reply | None,
        confidence: float,
        status: ConversationStatus,
        handoff: Handoff | None = None,
        *,
        state: TurnState = "done",
        reply_mode: Any = _UNSET,
    ) -> DoneEvent:
        """Write the turn record (`Store.finish_turn`) and return the turn's last event."""
        r = t.record
        r.state, r.confidence = state, confidence
        r.reply_mode = (reply.mode if reply else None) if reply_mode is _UNSET else reply_mode
        r.timings_ms = t.timer.total()
        r.prompt_tokens = self.chat.take_usage(t.turn_id)
        self.store.finish_turn(r)
        return t.done(reply, confidence, status, handoff)

    def _observed(self, t: TurnContext, events: Generator[TurnEvent, None, None]) -> Iterator[TurnEvent]:
        """The turn's events, each finished turn reported to the observer (metrics, traces)."""
        try:
            for ev in events:
                if isinstance(ev, DoneEvent) and self.observer is not None:
                    turn = ev.turn
                    reason = turn.handoff.reason if turn.handoff is not None and turn.action == "handoff" else None
                    self.observer.turn(
                        conversation_id=t.conversation_id,
                        timings_ms=turn.timings_ms,
                        mode=turn.reply.mode if turn.reply else ("handoff" if reason else "agent"),
                        action=turn.action or "agent",
                        confidence=turn.confidence,
                        handoff_reason=reason,
                        error="handoff:error" if reason == "error" else None,
                    )
                yield ev
        finally:
            events.close()

    def assess_intent(self, text: str, previous: list[Message]) -> IntentEvidence:
        """Intent signals of this message given the customer's earlier ones (see assistant.turn.intent)."""
        earlier = [m.text for m in previous if m.role == "customer"][-5:]
        vectors = self.answerer.vectors
        fr = frustration(
            text,
            earlier,
            vectors.embed_one(text),
            vectors.embed(earlier) if earlier else None,
            self.settings.policy.repeat_similarity,
        )
        return IntentEvidence(
            wants_human=wants_human(text),
            policy_topics=self.policy_rules.topics(text),
            frustration=fr,
            frustration_score=fr.score,
        )

    def _relay(self, gen: Generator[str, None, ResultT], timer: StepTimer) -> Generator[TokenEvent, None, ResultT]:
        """Pass the answer's text on as token events; the consumer's time is not charged to `generate`."""
        while True:
            try:
                piece = next(gen)
            except StopIteration as stop:
                result: ResultT = stop.value
                return result
            timer.lap("generate")
            yield TokenEvent(text=piece)
            timer.skip()

    def search_request(self, text: str, question: str, previous: list[Message]) -> tuple[str, SearchContext | None]:
        """What the knowledge is searched with for message `text`, whose standalone question is `question`: with the
        heuristic rewrite, the message itself and the conversation as context (its last messages, and the pages
        its latest replies cited, which a follow-up keeps unless the message alone points elsewhere); with the
        LLM rewrite, the rewritten question and those pages; with no rewrite, the message alone."""
        mode = self._rewrite_mode()
        if mode == "off":
            return text, None
        r = self.settings.retrieval
        sources = cited_sources(previous, r.source_replies)
        if mode == "llm":
            return question, SearchContext(sources=sources) if sources else None
        turns = [(m.role, m.text) for m in previous if m.role in ("customer", "assistant", "agent")]
        return text, search_context(
            text, turns, sources, r.context_weight, r.follow_up_context_weight, r.context_messages, r.context_replies
        )

    def _rewrite_mode(self) -> str:
        mode = self.settings.answer.rewrite
        if mode == "auto":
            mode = "llm" if self.settings.chat_provider == "openai" else "heuristic"
        return mode

    def standalone_question(
        self, text: str, previous: list[Message], turn_id: str | None = None, conversation_id: str | None = None
    ) -> str:
        """What to search for. The LLM rewrite runs only with a capable (configured) model."""
        mode = self._rewrite_mode()
        turns = [(m.role, m.text) for m in previous if m.role in ("customer", "assistant", "agent")]
        if mode == "off" or not turns:
            return text
        if mode == "llm":
            transcript = "\n".join(f"{r}: {' '.join(t.split())}" for r, t in turns[-6:])  # one line a message
            try:
                rewritten = self.chat.complete(
                    CONDENSE_QUESTION,
                    {"transcript": neutralize(transcript, TRANSCRIPT_SPEAKERS), "question": neutralize(text)},
                    turn_id=turn_id,
                    conversation_id=conversation_id,
                ).strip()
                if 3 <= len(rewritten) <= 500:
                    return rewritten
            except ModelUnavailableError:
                # The answer would go to the same failing model: hand off now rather than make the
                # customer wait out a second deadline (the turn degrades to a handoff, reason `error`).
                logger.info("question rewrite failed; the model is unavailable")
                raise
        return heuristic_standalone(text, turns)


def _already_said(text: str, said: str) -> bool:
    """Every sentence of `text` is in `said` (the last reply): saying it again tells the customer nothing."""
    norm = " ".join(said.split())
    sentences = [" ".join(x.split()) for x in split_sentences(text)]
    return bool(sentences) and all(x in norm for x in sentences)
