"""Customer (widget) routes: start a conversation, send a message (JSON or SSE), read it, follow it live,
ask for a person, rate it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from api.deps import KeysDep, ReaderDep, ServicesDep, WidgetDep
from api.errors import ApiError
from api.schemas import TextIn
from api.streaming import sse, turn_sse
from assistant.models import Conversation, ConversationView, Feedback, Handoff, Message, QueueInfo, SignalEvent, Turn

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


class ConversationIn(BaseModel):
    customer_id: str | None = Field(None, min_length=1, max_length=200)
    customer_hash: str | None = Field(None, max_length=128)
    channel: Literal["web", "mobile", "email", "chat", "api"] = "web"
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(v, default=str)) > 4000:
            raise ValueError("metadata must be under 4000 characters of JSON")
        return v


class ConversationOut(BaseModel):
    id: str
    status: str
    customer_id: str | None
    verified: bool
    channel: str
    created_at: datetime
    metadata: dict[str, Any]

    @classmethod
    def of(cls, c: Conversation) -> ConversationOut:
        return cls(
            id=c.id,
            status=c.status,
            customer_id=c.customer_id,
            verified=c.verified,
            channel=c.channel,
            created_at=c.created_at,
            metadata=c.metadata,
        )


MessageIn = TextIn


class TranscriptOut(ConversationOut, QueueInfo):
    messages: list[Message]
    handoff: Handoff | None = None
    outcome: str | None = None
    effort: float | None = Field(None, description="predicted customer effort so far, CES 1..7")
    signals: list[SignalEvent] = Field(default_factory=list, description="effort and resolution signals, oldest first")

    @classmethod
    def of(cls, v: ConversationView) -> TranscriptOut:  # type: ignore[override]
        return cls(
            **ConversationOut.of(v.conversation).model_dump(),
            **v.queue.model_dump(),
            messages=v.messages,
            handoff=v.handoff,
            outcome=v.facts.outcome if v.facts else None,
            effort=v.facts.effort if v.facts else None,
            signals=v.signals,
        )


class HandoffIn(BaseModel):
    reason: str | None = Field(None, max_length=200)


class HandoffOut(QueueInfo):
    handoff: Handoff
    status: str


@router.post("", status_code=201, response_model=ConversationOut)
def create_conversation(body: ConversationIn, services: ServicesDep, keys: KeysDep, _: WidgetDep) -> ConversationOut:
    verified = keys.verify_customer(body.customer_id, body.customer_hash)
    conv = services.engine.start_conversation(body.customer_id, verified, body.channel, body.metadata)
    return ConversationOut.of(conv)


@router.post(
    "/{conversation_id}/messages",
    response_model=Turn,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the Turn, or its events as SSE"}},
)
async def post_message(
    conversation_id: str,
    body: MessageIn,
    services: ServicesDep,
    _: WidgetDep,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    engine = services.engine
    if body.text and len(body.text) > services.settings.max_message_chars:
        raise ApiError(422, "invalid_request", f"text: at most {services.settings.max_message_chars} characters")
    # An unknown conversation is a 404 before the stream starts (a stream cannot change its status afterwards):
    # `stream_turn` reads the conversation, and raises, before it returns the events.
    if accept and "text/event-stream" in accept:
        # The message is stored before the 200 goes out: a locked database is still a 503, not an SSE error.
        events = await run_in_threadpool(engine.stream_turn, conversation_id, body.text)
        return StreamingResponse(
            turn_sse(events),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return await run_in_threadpool(engine.run_turn, conversation_id, body.text)


@router.get("/{conversation_id}", response_model=TranscriptOut)
def get_conversation(conversation_id: str, services: ServicesDep, _: ReaderDep) -> TranscriptOut:
    """The transcript, for the customer's widget (widget key) or staff (agent, cx or admin token)."""
    return TranscriptOut.of(services.engine.view(conversation_id))


PING_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream


@router.get("/{conversation_id}/events", responses={200: {"content": {"text/event-stream": {}}}})
async def conversation_events(
    conversation_id: str,
    request: Request,
    services: ServicesDep,
    _: ReaderDep,
    after: Annotated[int, Query(ge=0, description="only messages after this sequence number")] = 0,
    poll_s: Annotated[
        float | None,
        Query(ge=0.2, le=60, description="read the database at least this often; default CXA_LIVE__POLL_S"),
    ] = None,
    max_s: Annotated[float, Query(ge=1, le=3600, description="close the stream after this long")] = 300.0,
    last_event_id: Annotated[str | None, Header(description="sent by EventSource when it reconnects")] = None,
) -> StreamingResponse:
    """New messages of the conversation as SSE `message` events (agent replies reach the widget this way;
    the agent console follows the customer the same way, with its bearer token),
    each with `id:` = the message's sequence number, and a `status` event whenever the status changes
    (first on connect). Read from the database, so it works whichever worker wrote the message; the store's
    live bus wakes the stream as soon as one commits (PostgreSQL LISTEN/NOTIFY across workers), and it reads
    again every `poll_s` anyway.

    Resume: a reconnecting EventSource sends `Last-Event-ID`, and the stream continues after that
    message (as `?after=` does); nothing is sent twice or missed. The stream ends after `max_s` seconds
    (EventSource reconnects by itself, resuming the same way), so an idle connection is never held
    forever; a `: ping` comment every 15 s keeps proxies from cutting a quiet one earlier."""
    await run_in_threadpool(services.engine.conversation, conversation_id)
    start_after = max(after, _seq_of(last_event_id))
    bus = services.store.live
    poll = poll_s or services.settings.live.poll_interval(bus.crosses_processes)

    async def stream() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline, next_ping = now + max_s, now + PING_S
        last, status = start_after, None
        yield "retry: 2000\n: connected\n\n"
        # Subscribed before the first read: a message committed between a read and the wait still wakes it.
        with bus.subscribe(conversation_id) as wakeup:
            read = True
            while not await request.is_disconnected():
                if read:
                    messages, conv = await run_in_threadpool(services.engine.messages_since, conversation_id, last)
                    for m in messages:
                        last = m.seq
                        yield sse("message", m.model_dump(mode="json"), id_=m.seq)
                    changed = bool(messages)
                    if conv.status != status:
                        status, changed = conv.status, True
                        yield sse("status", {"status": status, "outcome": conv.outcome})
                    next_read = loop.time() + poll
                    if changed:
                        next_ping = loop.time() + PING_S
                now = loop.time()
                if now >= deadline:
                    return
                woke = await wakeup.wait(min(next_read, next_ping, deadline) - now)
                now = loop.time()
                read = woke or now >= next_read
                if now >= next_ping:
                    next_ping = now + PING_S
                    yield ": ping\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _seq_of(last_event_id: str | None) -> int:
    """The sequence number in a Last-Event-ID header (ours are plain integers; anything else is ignored)."""
    try:
        return max(0, int((last_event_id or "0").strip()))
    except ValueError:
        return 0


@router.post("/{conversation_id}/handoff", response_model=HandoffOut)
def request_handoff(
    conversation_id: str, services: ServicesDep, _: WidgetDep, body: HandoffIn | None = None
) -> HandoffOut:
    receipt = services.engine.ask_for_person(conversation_id, (body.reason if body else None) or "customer_request")
    return HandoffOut(handoff=receipt.handoff, status=receipt.status, **receipt.queue.model_dump())


@router.post("/{conversation_id}/feedback")
def feedback(conversation_id: str, body: Feedback, services: ServicesDep, _: WidgetDep) -> dict[str, Any]:
    if body.csat is None and body.ces is None and body.resolved is None and not body.comment:
        raise ApiError(422, "invalid_request", "give at least one of csat, ces, resolved, comment")
    services.engine.record_feedback(conversation_id, body)
    return {"conversation_id": conversation_id, "feedback": body.model_dump()}
