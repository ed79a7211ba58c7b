"""Agent routes: the queue of conversations handed to a person, the packet an agent opens, and the
claim -> reply -> resolve cycle. All need the agent token (or the admin token).

A status that does not allow the action (claiming a claimed handoff, replying before claiming or after
resolving, resolving twice) is a 409 `conflict`: the state machine in `assistant.states` decides.
The reply route's path starts with /v1/conversations, but it is an agent action, so it lives here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import AgentDep, ServicesDep
from api.schemas import TextIn
from assistant.models import ConversationStatus, Handoff, HandoffPacket, Message, Suggestion

router = APIRouter(tags=["agent"])


class HandoffItem(Handoff):
    """A queue entry: the handoff with its conversation's customer and status."""

    customer_id: str | None = None
    conversation_status: ConversationStatus | None = None


class HandoffList(BaseModel):
    items: list[HandoffItem]


class ClaimIn(BaseModel):
    agent_id: str = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$", description="who takes it")


class AgentMessageIn(TextIn):
    suggestion_id: str | None = Field(
        None, max_length=64, description="the copilot suggestion this reply was sent from (as is or edited)"
    )


class ResolveIn(BaseModel):
    resolved: bool = Field(description="was the customer's problem solved?")
    note: str | None = Field(None, max_length=4000, description="the agent's closing note")


class HandoffStateOut(Handoff):
    """The handoff after an action, with where that left its conversation."""

    conversation_status: ConversationStatus
    outcome: str | None = None
    updated_at: datetime


@router.get("/v1/handoffs", response_model=HandoffList)
def list_handoffs(
    services: ServicesDep,
    _: AgentDep,
    status: Annotated[Literal["waiting", "claimed", "resolved"] | None, Query()] = None,
) -> HandoffList:
    items = [
        HandoffItem(
            **q.handoff.model_dump(),
            customer_id=q.conversation.customer_id if q.conversation else None,
            conversation_status=q.conversation.status if q.conversation else None,
        )
        for q in services.agents.queue(status)
    ]
    return HandoffList(items=items)


@router.get("/v1/handoffs/{handoff_id}", response_model=HandoffPacket)
def get_handoff(handoff_id: str, services: ServicesDep, _: AgentDep) -> HandoffPacket:
    """The packet: summary, the full transcript, and the customer's profile and events (verified only)."""
    return services.agents.packet(handoff_id)


@router.post("/v1/handoffs/{handoff_id}/claim", response_model=HandoffStateOut)
def claim_handoff(handoff_id: str, body: ClaimIn, services: ServicesDep, _: AgentDep) -> HandoffStateOut:
    """Take the conversation: the handoff becomes `claimed`, the conversation `with_agent`. 409 if it was
    already claimed or resolved (two agents claiming at once: exactly one wins)."""
    handoff, conv = services.agents.claim(handoff_id, body.agent_id)
    return HandoffStateOut(
        **handoff.model_dump(), conversation_status=conv.status, outcome=conv.outcome, updated_at=conv.updated_at
    )


@router.post("/v1/conversations/{conversation_id}/agent-messages", status_code=201, response_model=Message)
def agent_message(conversation_id: str, body: AgentMessageIn, services: ServicesDep, _: AgentDep) -> Message:
    """Reply to the customer (role `agent`, authored by the claiming agent); it reaches the widget through
    `/v1/conversations/{id}/events`. 409 unless the conversation is `with_agent`."""
    return services.agents.reply(conversation_id, body.text, body.suggestion_id)


@router.post("/v1/handoffs/{handoff_id}/resolve", response_model=HandoffStateOut)
def resolve_handoff(handoff_id: str, body: ResolveIn, services: ServicesDep, _: AgentDep) -> HandoffStateOut:
    """Close the handoff: the conversation becomes `resolved` with outcome `resolved_by_agent` (or
    `unresolved`). 409 unless the handoff is claimed. If the customer writes again, the bot picks up."""
    handoff, conv = services.agents.resolve(handoff_id, body.resolved, body.note)
    return HandoffStateOut(
        **handoff.model_dump(), conversation_status=conv.status, outcome=conv.outcome, updated_at=conv.updated_at
    )


@router.get("/v1/handoffs/{handoff_id}/suggestion", response_model=Suggestion)
def suggestion(handoff_id: str, services: ServicesDep, _: AgentDep) -> Suggestion:
    """A reply drafted for the agent (the copilot): from an approved answer, the customer's record and the help
    center, with its citations (`text` is empty when nothing was found). Send it with `suggestion_id` on
    `/agent-messages` (as is or edited), or ignore it."""
    return services.copilot.suggest(handoff_id)


@router.post("/v1/handoffs/{handoff_id}/suggestion/ignore", response_model=Suggestion | None)
def ignore_suggestion(handoff_id: str, services: ServicesDep, _: AgentDep) -> Suggestion | None:
    """The agent dismissed the drafted reply (null when there was none undecided)."""
    return services.copilot.ignore(handoff_id)
