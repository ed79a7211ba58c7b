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
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from assistant.errors import ModelUnavailableError, StoreUnavailableError
from assistant.handoff.service import HandoffService
from assistant.llm import ChatGateway
from assistant.models import (
    AnswerEvidence,
    AnswerResult,
    CitationsEvent,
    Conversation,
    CustomerContext,
    Decision,
    DoneEvent,
    Feedback,
    Handoff,
    HandoffEvent,
    IntentEvidence,
    Message,
    Reply,
    SearchHit,
    TokenEvent,
    Turn,
    TurnEvent,
)
from assistant.prompts import CONDENSE_QUESTION
from assistant.safety.guard import neutralize
from assistant.settings import Settings
from assistant.store.repo import Store
from assistant.telemetry.observability import TurnObserver
from assistant.telemetry.recorder import Telemetry
from assistant.telemetry.signals import is_confirmation
from assistant.turn.answer import Answerer
from assistant.turn.confidence import decide_after_answer, decide_before_answer, turn_confidence
from assistant.turn.history import HistoryBuilder
from assistant.turn.intent import PolicyRules, frustration, wants_human
from assistant.turn.rewrite import heuristic_standalone
from knowledge.errors import KnowledgeError

logger = logging.getLogger(__name__)

CLOSING_TEXT = "You're welcome! Is there anything else I can help you with?"


# Words that say a thank-you goes on to something more: a question, a reservation, a new request.
# Question words count where a clause starts ("thanks, how do I..."), not inside one ("just what I needed").
_MORE_TO_SAY = re.compile(
    r"\b(but|however|although|though|also|another|still|except"
    r"|can you|could you|would you|please help|i need|i want|i'd like)\b"
    r"|(?:^|[.,!;:]\s*)(?:and\s+|so\s+)?(?:how|what|why|when|where|which|who)\b",
    re.IGNORECASE,
)


def is_thanks_only(text: str) -> bool:
    """A thank-you or "that worked" with no new question or request in it (answered with a closing line)."""
    return is_confirmation(text) and "?" not in text and len(text.split()) <= 25 and not _MORE_TO_SAY.search(text)


Search = Callable[[str, int], list[SearchHit]]


class _Timer:
    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self._last = self._t0

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.ms[name] = round(self.ms.get(name, 0.0) + (now - self._last) * 1000, 3)
        self._last = now

    def skip(self) -> None:
        """Time spent outside the engine (e.g. the client reading a stream) is not charged to a step."""
        self._last = time.perf_counter()

    def total(self) -> dict[str, float]:
        return {**self.ms, "total": round((time.perf_counter() - self._t0) * 1000, 3)}


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
    ) -> None:
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

    def transcript(self, conversation_id: str) -> tuple[Conversation, list[Message]]:
        conv = self.store.get_conversation(conversation_id)
        return conv, self.store.list_messages(conversation_id)

    def request_handoff(self, conversation_id: str, reason: str = "customer_request") -> Handoff:
        """The customer asked for a person (or a rule decided so)."""
        conv = self.store.get_conversation(conversation_id)
        ctx = self.history.build(conv)
        handoff, created = self.handoffs.hand_off(conversation_id, reason, None, ctx)
        if created and self.telemetry is not None:
            self.telemetry.on_handoff(conversation_id, reason)
        return handoff

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
        timer = _Timer()
        # One transaction: the conversation and its messages so far, then this message (an unknown id raises
        # before anything is written).
        conv, previous, msg, turn_id = self.store.open_turn(conversation_id, text)
        timer.lap("persist")
        return self._observed(conversation_id, self._turn_events(timer, conv, previous, msg, turn_id, text))

    def _observed(self, conversation_id: str, events: Generator[TurnEvent, None, None]) -> Iterator[TurnEvent]:
        try:
            for ev in events:
                if isinstance(ev, DoneEvent) and self.observer is not None:
                    t = ev.turn
                    reason = t.handoff.reason if t.handoff is not None and t.action == "handoff" else None
                    self.observer.turn(
                        conversation_id=conversation_id,
                        timings_ms=t.timings_ms,
                        mode=t.reply.mode if t.reply else ("handoff" if reason else "agent"),
                        action=t.action or "agent",
                        confidence=t.confidence,
                        handoff_reason=reason,
                        error="handoff:error" if reason == "error" else None,
                    )
                yield ev
        finally:
            events.close()

    def _turn_events(
        self, timer: _Timer, conv: Conversation, previous: list[Message], msg: Message, turn_id: str, text: str
    ) -> Generator[TurnEvent, None, None]:
        conversation_id = conv.id
        intent = IntentEvidence()  # until assessed: no signals

        def signals(result: str | None = None, confidence: float | None = None, handoff: str | None = None) -> None:
            """This message's effort and resolution signals (never raises; timed as its own step)."""
            if self.telemetry is not None:
                self.telemetry.on_customer_message(
                    conv, msg, previous, intent.frustration, turn_id, result, confidence, handoff
                )
            timer.lap("signals")

        if conv.status in ("waiting_for_agent", "with_agent"):
            try:  # the bot stays silent, but repeats and anger while waiting still count
                intent = self.assess_intent(text, previous)
            except Exception:
                logger.exception("intent signals failed for a message to a person")
            signals()
            self.store.finish_turn(turn_id, state="done", reply_mode=None, timings_ms=timer.total())
            yield DoneEvent(
                turn=Turn(
                    message_id=msg.id,
                    conversation_id=conversation_id,
                    turn_id=turn_id,
                    reply=None,
                    confidence=0.0,
                    handoff=self.store.open_handoff(conversation_id),
                    status=conv.status,
                    timings_ms=timer.total(),
                )
            )
            return
        if conv.status in ("resolved", "abandoned"):
            conv = self.store.set_status(conversation_id, "bot")  # the customer came back: the bot picks up again

        ctx = CustomerContext()
        query: str | None = None
        hits: list[SearchHit] = []
        result: AnswerResult | None = None
        error: str | None = None
        decision: Decision | None = None
        try:
            ctx = self.history.build(conv, text)
            timer.lap("history")
            intent = self.assess_intent(text, previous)
            decision = decide_before_answer(intent, self.settings.policy)
            timer.lap("intent")
            if decision is None and is_thanks_only(text) and any(m.role != "customer" for m in previous):
                yield from self._close_politely(conv, msg.id, turn_id, timer, signals)
                return
            if decision is None:
                query = self.standalone_question(text, previous, turn_id, conversation_id)
                timer.lap("rewrite")
                hits = self.search(query, self.settings.retrieval.top_k)
                timer.lap("retrieve")
                gen = self.answerer.stream(
                    text, hits, ctx, previous, turn_id=turn_id, conversation_id=conversation_id, search_query=query
                )
                result = yield from self._relay(gen, timer)
                timer.lap("generate")
        except (ModelUnavailableError, KnowledgeError) as exc:
            error = str(exc)
            logger.warning("turn %s degraded to a handoff: %s", turn_id, error)
        except StoreUnavailableError:
            raise
        except Exception as exc:  # an unexpected bug must still not lose the customer: hand off and record it
            error = f"{type(exc).__name__}: {exc}"
            logger.exception("turn %s failed; handing off", turn_id)

        record: dict[str, Any] = {
            "query": query,
            "chunk_ids": [h.chunk.chunk_id for h in hits],
            "chunk_scores": [round(h.score, 4) for h in hits],
        }
        if result is None:  # no answer: the model or index failed, or intent sent it straight to a person
            reason = "error" if error is not None or decision is None else str(decision.reason)
            evidence = {
                **AnswerEvidence(mode="error", retrieval_top=hits[0].score if hits else 0.0).model_dump(),
                "intent": intent.model_dump(),
                "action": "handoff",
            }
            yield from self._hand_off(
                msg.id,
                turn_id,
                conversation_id,
                reason,
                0.0,
                ctx,
                timer,
                None,
                record,
                evidence,
                signals,
                state="error" if error is not None else "done",
                error=error,
            )
            return

        confidence = turn_confidence(result.evidence, self.settings.answer.min_retrieval_score)
        decision = decide_after_answer(confidence, result.evidence.mode, self.settings.policy)
        timer.lap("confidence")
        evidence = {**result.evidence.model_dump(), "intent": intent.model_dump(), "action": decision.action}
        record["cited_chunk_ids"] = [c.chunk_id for c in result.citations]
        declined = result.evidence.mode == "declined"
        if declined and decision.action == "handoff":  # nothing was shown yet: a person takes it from here
            yield from self._hand_off(
                msg.id,
                turn_id,
                conversation_id,
                "low_confidence",
                confidence,
                ctx,
                timer,
                None,
                record,
                evidence,
                signals,
            )
            return
        if declined:
            yield TokenEvent(text=result.text)
        if result.citations:
            yield CitationsEvent(citations=result.citations)
        reply = Reply(text=result.text, citations=result.citations, mode=result.evidence.mode)
        reply_msg = self.store.add_message(conversation_id, "assistant", result.text, result.citations, turn_id=turn_id)
        record["reply_message_id"] = reply_msg.id
        timer.lap("record")
        if decision.action == "handoff":  # a weak answer was shown; a person follows up on it
            yield from self._hand_off(
                msg.id,
                turn_id,
                conversation_id,
                "low_confidence",
                confidence,
                ctx,
                timer,
                reply,
                record,
                evidence,
                signals,
            )
            return
        signals("dead_end" if declined else "answered", confidence)
        timings = timer.total()
        self.store.finish_turn(
            turn_id,
            state="done",
            reply_mode=result.evidence.mode,
            confidence=confidence,
            evidence=evidence,
            timings_ms=timings,
            **record,
        )
        yield DoneEvent(
            turn=Turn(
                message_id=msg.id,
                conversation_id=conversation_id,
                turn_id=turn_id,
                reply=reply,
                confidence=confidence,
                handoff=None,
                status=conv.status,
                action=decision.action,
                query=query,
                timings_ms=timings,
            )
        )

    def _close_politely(
        self, conv: Conversation, message_id: str, turn_id: str, timer: _Timer, signals: Callable[..., None]
    ) -> Iterator[TurnEvent]:
        """ "Thanks, that worked": no search, no handoff; a short closing reply (the confirmation is a signal)."""
        yield TokenEvent(text=CLOSING_TEXT)
        reply = Reply(text=CLOSING_TEXT, citations=[], mode="closing")
        reply_msg = self.store.add_message(conv.id, "assistant", CLOSING_TEXT, [], turn_id=turn_id)
        signals()
        timings = timer.total()
        self.store.finish_turn(
            turn_id,
            state="done",
            reply_mode="closing",
            confidence=1.0,
            reply_message_id=reply_msg.id,
            timings_ms=timings,
        )
        yield DoneEvent(
            turn=Turn(
                message_id=message_id,
                conversation_id=conv.id,
                turn_id=turn_id,
                reply=reply,
                confidence=1.0,
                handoff=None,
                status=conv.status,
                action="answer",
                timings_ms=timings,
            )
        )

    def _hand_off(
        self,
        message_id: str,
        turn_id: str,
        conversation_id: str,
        reason: str,
        confidence: float,
        ctx: CustomerContext,
        timer: _Timer,
        reply: Reply | None,
        record: dict[str, Any],
        evidence: dict[str, Any],
        signals: Callable[..., None],
        state: str = "done",
        error: str | None = None,
    ) -> Iterator[TurnEvent]:
        handoff, created = self.handoffs.hand_off(conversation_id, reason, confidence, ctx)
        timer.lap("handoff")
        could_not_answer = reason in ("error", "low_confidence")
        signals("dead_end" if could_not_answer else None, confidence, reason if created else None)
        yield HandoffEvent(handoff=handoff)
        timings = timer.total()
        self.store.finish_turn(
            turn_id,
            state=state,
            reply_mode=reply.mode if reply else "handoff",
            confidence=confidence,
            evidence=evidence,
            handoff_id=handoff.id,
            timings_ms=timings,
            error=error,
            **record,
        )
        yield DoneEvent(
            turn=Turn(
                message_id=message_id,
                conversation_id=conversation_id,
                turn_id=turn_id,
                reply=reply,
                confidence=confidence,
                handoff=handoff,
                status="waiting_for_agent",
                action="handoff",
                query=record.get("query"),
                timings_ms=timings,
            )
        )

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

    def _relay(
        self, gen: Generator[str, None, AnswerResult], timer: _Timer
    ) -> Generator[TokenEvent, None, AnswerResult]:
        """Pass the answer's text on as token events; the consumer's time is not charged to `generate`."""
        while True:
            try:
                piece = next(gen)
            except StopIteration as stop:
                return stop.value
            timer.lap("generate")
            yield TokenEvent(text=piece)
            timer.skip()

    def standalone_question(
        self, text: str, previous: list[Message], turn_id: str | None = None, conversation_id: str | None = None
    ) -> str:
        """What to search for. The LLM rewrite runs only with a capable (configured) model."""
        mode = self.settings.answer.rewrite
        if mode == "auto":
            mode = "llm" if self.settings.chat_provider == "openai" else "heuristic"
        turns = [(m.role, m.text) for m in previous if m.role in ("customer", "assistant", "agent")]
        if mode == "off" or not turns:
            return text
        if mode == "llm":
            transcript = "\n".join(f"{r}: {t}" for r, t in turns[-6:])
            try:
                rewritten = self.chat.complete(
                    CONDENSE_QUESTION,
                    {"transcript": neutralize(transcript), "question": neutralize(text)},
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
