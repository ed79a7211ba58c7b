"""What one turn carries from step to step: the conversation as it was, the customer's message, what each step
found, the turn record being filled in, and the clock that times every step."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from assistant.models import (
    Conversation,
    ConversationStatus,
    CustomerContext,
    CustomerRecord,
    DoneEvent,
    Handoff,
    IntentEvidence,
    Message,
    Reply,
    SearchHit,
    Turn,
    TurnRecord,
)


class StepTimer:
    """Milliseconds per named step; a step that runs twice (streamed generation) adds up."""

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


@dataclass
class TurnContext:
    """One customer turn in progress. Steps read what earlier steps left here and add their own findings; the
    record is what `Store.finish_turn` writes at the end."""

    conversation: Conversation  # as it was before this message
    previous: list[Message]  # the conversation's messages before this one
    message: Message  # the customer's message, already stored
    record: TurnRecord
    timer: StepTimer = field(default_factory=StepTimer)
    customer: CustomerContext = field(default_factory=CustomerContext)
    intent: IntentEvidence = field(default_factory=IntentEvidence)  # no signals until assessed
    hits: list[SearchHit] = field(default_factory=list)
    pool: list[SearchHit] = field(default_factory=list)  # the wider search `hits` are the first top-k of
    account_record: CustomerRecord | None = None  # the customer's record as the history step read it

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def conversation_id(self) -> str:
        return self.conversation.id

    @property
    def turn_id(self) -> str:
        return self.record.id

    def done(
        self,
        reply: Reply | None,
        confidence: float,
        status: ConversationStatus,
        handoff: Handoff | None = None,
    ) -> DoneEvent:
        """The turn's last event; the record's timings are closed here (`finish_turn` is called just before)."""
        return DoneEvent(
            turn=Turn(
                message_id=self.message.id,
                conversation_id=self.conversation_id,
                turn_id=self.turn_id,
                reply=reply,
                confidence=confidence,
                handoff=handoff,
                status=status,
                action=self.record.action or "answer",
                query=self.record.query,
                timings_ms=self.record.timings_ms,
            )
        )
