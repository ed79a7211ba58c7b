"""Customer (widget) routes: start a conversation, send a message (JSON or SSE), read it, follow it live,
ask for a person, rate it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import (
    CustomerConversationDep,
    KeysDep,
    ReadableConversationDep,
    ServicesDep,
    StreamedConversationDep,
    WidgetDep,
)
from api.errors import ApiError
from api.idempotency import IdempotencyKey, checked_key, claim, fingerprint, replay, run_once
from api.schemas import TextIn
from api.streaming import SSE_HEADERS, replay_sse, sse, turn_sse
from assistant.models import (
    HANDOFF_REASONS,
    Conversation,
    ConversationView,
    DoneEvent,
    Feedback,
    Handoff,
    Message,
    QueueInfo,
    SignalEvent,
    Turn,
    TurnEvent,
)
from assistant.safety import payload
from assistant.services import Services

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


class ConversationIn(BaseModel):
    customer_id: str | None = Field(None, min_length=1, max_length=200)
    customer_hash: str | None = Field(None, max_length=128)
    channel: Literal["web", "mobile", "email", "chat", "api"] = "web"
    metadata: Annotated[dict[str, Any], AfterValidator(payload.free_json(max_bytes=4000))] = Field(
        default_factory=dict, description="free-form JSON: at most 4000 bytes, 8 levels deep, valid Unicode"
    )


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


class CreatedConversationOut(ConversationOut):
    token: str = Field(
        description="opens this conversation: send it as X-Conversation-Token on every later call (required for "
        "a verified customer's conversation; ?token= on the /events stream for a client that cannot set headers)"
    )


@router.post("", status_code=201, response_model=CreatedConversationOut)
def create_conversation(
    body: ConversationIn, services: ServicesDep, keys: KeysDep, _: WidgetDep, idempotency_key: IdempotencyKey = None
) -> Any:
    def create() -> CreatedConversationOut:
        verified = keys.verify_customer(body.customer_id, body.customer_hash)
        conv = services.engine.start_conversation(body.customer_id, verified, body.channel, body.metadata)
        return CreatedConversationOut(**ConversationOut.of(conv).model_dump(), token=keys.conversation_token(conv.id))

    def restore(stored: dict[str, Any]) -> dict[str, Any]:
        return {**stored, "token": keys.conversation_token(str(stored["id"]))}

    return run_once(services, idempotency_key, "conversations", fingerprint(body.model_dump()), 201, create, restore)


@router.post(
    "/{conversation_id}/messages",
    response_model=Turn,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the Turn, or its events as SSE"}},
)
async def post_message(
    conversation: CustomerConversationDep,
    body: MessageIn,
    services: ServicesDep,
    accept: Annotated[str | None, Header()] = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    engine = services.engine
    if body.text and len(body.text) > services.settings.max_message_chars:
        raise ApiError(422, "invalid_request", f"text: at most {services.settings.max_message_chars} characters")
    stream = bool(accept and "text/event-stream" in accept)
    key, scope = checked_key(idempotency_key), f"messages:{conversation.id}"
    if key is not None:
        found = await run_in_threadpool(claim, services, scope, key, fingerprint(body.text))
        if found.state == "done":
            if stream:
                return StreamingResponse(
                    replay_sse(Turn.model_validate(found.body)), media_type="text/event-stream", headers=SSE_HEADERS
                )
            return replay(found)
    # An unknown conversation is a 404 before the stream starts (a stream cannot change its status afterwards):
    # `stream_turn` reads the conversation, and raises, before it returns the events.
    try:
        if stream:
            # The message is stored before the 200 goes out: a locked database is still a 503, not an SSE error.
            events = await run_in_threadpool(engine.stream_turn, conversation.id, body.text)
            if key is not None:
                events = _remembered(events, services, scope, key)
            return StreamingResponse(turn_sse(events), media_type="text/event-stream", headers=SSE_HEADERS)
        turn = await run_in_threadpool(engine.run_turn, conversation.id, body.text)
    except BaseException:
        if key is not None:
            await run_in_threadpool(services.store.idempotency.release, scope, key)
        raise
    if key is not None:
        await run_in_threadpool(services.store.idempotency.complete, scope, key, 200, turn.model_dump(mode="json"))
    return turn


def _remembered(events: Iterator[TurnEvent], services: Services, scope: str, key: str) -> Iterator[TurnEvent]:
    """A streamed turn's events, its finished Turn kept under the idempotency key (released if the turn fails)."""
    try:
        for ev in events:
            if isinstance(ev, DoneEvent):
                services.store.idempotency.complete(scope, key, 200, ev.turn.model_dump(mode="json"))
            yield ev
    except BaseException:
        services.store.idempotency.release(scope, key)
        raise


@router.get("/{conversation_id}", response_model=TranscriptOut)
def get_conversation(conversation: ReadableConversationDep, services: ServicesDep) -> TranscriptOut:
    """The transcript, for the customer's widget (widget key, and the conversation's token when the customer is
    verified) or staff (agent, cx or admin token)."""
    return TranscriptOut.of(services.engine.view(conversation.id))


PING_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream
MAX_SEQ = 2**31 - 1  # message numbers are 32-bit integers in the database: a larger cursor cannot be bound


@router.get("/{conversation_id}/events", responses={200: {"content": {"text/event-stream": {}}}})
async def conversation_events(
    conversation: StreamedConversationDep,
    request: Request,
    services: ServicesDep,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="only messages after this sequence number")] = 0,
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
    forever; a `: ping` comment every 15 s keeps proxies from cutting a quiet one earlier.

    A verified customer's widget sends the conversation's token as `X-Conversation-Token`, or as `?token=` where
    the client cannot set headers (EventSource)."""
    conversation_id = conversation.id
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

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


def _seq_of(last_event_id: str | None) -> int:
    """The sequence number in a Last-Event-ID header (ours are plain integers, at most `MAX_SEQ`; anything else,
    a huge number included, is ignored: the stream starts from `after`)."""
    value = (last_event_id or "").strip()
    if not value.isdigit() or len(value) > 10:
        return 0
    seq = int(value)
    return seq if seq <= MAX_SEQ else 0


@router.post("/{conversation_id}/handoff", response_model=HandoffOut)
def request_handoff(
    conversation: CustomerConversationDep,
    services: ServicesDep,
    body: HandoffIn | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """The customer's "talk to a person". The handoff's `reason` is `customer_request`; what the customer wrote in
    `reason`, if anything, is the handoff's `customer_note` (shown to agents as their words, never as a label)."""
    written = body.reason.strip() if body and body.reason else None
    note = None if not written or written in HANDOFF_REASONS else written

    def hand_off() -> HandoffOut:
        receipt = services.engine.ask_for_person(conversation.id, note)
        return HandoffOut(handoff=receipt.handoff, status=receipt.status, **receipt.queue.model_dump())

    return run_once(services, idempotency_key, f"handoff:{conversation.id}", fingerprint(note), 200, hand_off)


class FeedbackOut(BaseModel):
    conversation_id: str
    feedback: Feedback


@router.post("/{conversation_id}/feedback", response_model=FeedbackOut)
def feedback(
    conversation: CustomerConversationDep,
    body: Feedback,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    if body.csat is None and body.ces is None and body.resolved is None and not body.comment:
        raise ApiError(422, "invalid_request", "give at least one of csat, ces, resolved, comment")

    def record() -> FeedbackOut:
        services.engine.record_feedback(conversation.id, body)
        return FeedbackOut(conversation_id=conversation.id, feedback=body)

    fp = fingerprint(body.model_dump())
    return run_once(services, idempotency_key, f"feedback:{conversation.id}", fp, 200, record)
