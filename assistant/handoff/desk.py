"""The agent side of a handoff: open the packet, claim it, reply to the customer, resolve it.

Every status change goes through the conversation state machine (`assistant.states`), applied by the
store as conditional UPDATEs, so two agents acting at once cannot both win: the second gets a
`ConflictError` (409). Agent replies are ordinary messages (role `agent`, `author_id` = the claiming
agent): the customer's widget receives them from `/events`, and the bot sees them in the transcript
if the conversation comes back to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from assistant.models import Conversation, Handoff, HandoffPacket, Message, QueuedHandoff, TurnTrace
from assistant.safety.redact import mask_payment_data_in
from assistant.store.repo import Store
from assistant.telemetry.recorder import Telemetry

logger = logging.getLogger(__name__)

# (conversation id, the agent's message, the copilot suggestion it came from): what the copilot counts
ReplyHook = Callable[[str, Message, str | None], None]


class AgentDesk:
    def __init__(
        self,
        store: Store,
        max_events: int = 20,
        telemetry: Telemetry | None = None,
        on_reply: ReplyHook | None = None,
    ) -> None:
        self.store = store
        self.max_events = max_events
        self.telemetry = telemetry
        self.on_reply = on_reply

    def queue(self, status: str | None = None) -> list[QueuedHandoff]:
        """The handoffs (all, or those in `status`), each with its conversation."""
        handoffs = self.store.list_handoffs(status)
        convs = self.store.get_conversations(h.conversation_id for h in handoffs)
        return [QueuedHandoff(handoff=h, conversation=convs.get(h.conversation_id)) for h in handoffs]

    def packet(self, handoff_id: str) -> HandoffPacket:
        """The handoff with its transcript and, only for a verified customer, their profile and events
        (an id claimed without a valid `customer_hash` is never looked up)."""
        handoff = self.store.get_handoff(handoff_id)
        conversation = self.store.get_conversation(handoff.conversation_id)
        customer, events = None, []
        if conversation.verified and conversation.customer_id:
            customer = self.store.get_customer(conversation.customer_id)
            if customer is not None:
                events = [
                    e.model_copy(update={"data": mask_payment_data_in(e.data)})  # the agent never sees a card number
                    for e in self.store.list_events(customer.id, self.max_events)
                ]
        return HandoffPacket(
            **handoff.model_dump(),
            conversation=conversation,
            transcript=self.store.list_messages(conversation.id),
            customer=customer,
            customer_events=events,
            turns=[TurnTrace.of(r) for r in self.store.list_turns(conversation.id)],
        )

    def claim(self, handoff_id: str, agent_id: str) -> tuple[Handoff, Conversation]:
        handoff, conversation = self.store.claim_handoff(handoff_id, agent_id)
        logger.info("handoff %s claimed by %s", handoff_id, agent_id)
        return handoff, conversation

    def reply(self, conversation_id: str, text: str, suggestion_id: str | None = None) -> Message:
        """The agent's message to the customer; `suggestion_id`: the copilot draft it was sent from (as is or
        edited)."""
        message = self.store.add_agent_message(conversation_id, text)
        if self.telemetry is not None:
            self.telemetry.on_agent_message(conversation_id, message)
        if self.on_reply is not None:
            try:
                self.on_reply(conversation_id, message, suggestion_id)
            except Exception:  # the message is sent; only the copilot's count is lost
                logger.exception("copilot outcome not recorded for %s", message.id)
        return message

    def resolve(self, handoff_id: str, resolved: bool, note: str | None = None) -> tuple[Handoff, Conversation]:
        handoff, conversation = self.store.resolve_handoff(handoff_id, resolved, note)
        if self.telemetry is not None:
            self.telemetry.on_agent_resolved(conversation.id, resolved)
        logger.info("handoff %s resolved (%s)", handoff_id, conversation.outcome)
        return handoff, conversation
