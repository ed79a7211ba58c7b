"""Server-sent events: the one formatter, and the bridge from a turn's synchronous event generator (it runs the
model in its own thread) to an async SSE response."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from api.errors import error_body
from assistant.models import CitationsEvent, DoneEvent, HandoffEvent, TokenEvent, Turn, TurnEvent
from assistant.safety import payload

logger = logging.getLogger(__name__)


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(event: str, data: Any, id_: int | None = None) -> str:
    """One SSE event: `id:` (optional), `event:` and a one-line JSON `data:`."""
    text = payload.clean_text(data) if isinstance(data, str) else payload.dumps(data)
    head = f"id: {id_}\n" if id_ is not None else ""
    return f"{head}event: {event}\ndata: {text}\n\n"


def turn_event(ev: TurnEvent) -> str:
    """A turn's event as API.md names them: `token`, `citations`, `handoff`, then `done` with the full Turn."""
    if ev.type == "token":
        return sse("token", {"text": ev.text})
    if ev.type == "citations":
        return sse("citations", {"citations": [c.model_dump() for c in ev.citations]})
    if ev.type == "handoff":
        return sse("handoff", ev.handoff.model_dump(mode="json"))
    assert isinstance(ev, DoneEvent)
    return sse("done", ev.turn.model_dump(mode="json"))


async def turn_sse(events: Iterator[TurnEvent]) -> AsyncIterator[str]:
    """Relay a turn's events. The turn runs in its own thread and finishes even if the customer's
    connection drops, so the reply is stored and shows up when they reconnect (GET or /events)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[TurnEvent | BaseException | None] = asyncio.Queue()

    def produce() -> None:
        try:
            for ev in events:
                loop.call_soon_threadsafe(queue.put_nowait, ev)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which reports it
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=produce, name="turn", daemon=True).start()
    while True:
        item = await queue.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            logger.error("turn failed mid-stream: %s", item)
            yield sse("error", error_body(getattr(item, "code", "internal_error"), str(item)))
            return
        yield turn_event(item)


async def replay_sse(turn: Turn) -> AsyncIterator[str]:
    """A finished turn as the events its stream sent (the reply as one `token`), for a retried streamed request
    (`Idempotency-Key`)."""
    events: list[TurnEvent] = []
    if turn.reply is not None:
        events.append(TokenEvent(text=turn.reply.text))
        if turn.reply.citations:
            events.append(CitationsEvent(citations=turn.reply.citations))
    if turn.handoff is not None:
        events.append(HandoffEvent(handoff=turn.handoff))
    events.append(DoneEvent(turn=turn))
    for ev in events:
        yield turn_event(ev)
