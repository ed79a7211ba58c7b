"""The optional handoff webhook: tell an external helpdesk that a conversation needs a person.

When `handoff_webhook_url` is set, every new handoff is POSTed there as the handoff packet JSON (the
same body as `GET /v1/handoffs/{id}`), with the headers

    X-CXA-Event: handoff.created
    X-CXA-Delivery: <unique id; the same on every retry of one delivery, so the receiver can de-duplicate>
    X-CXA-Signature: sha256=<hex HMAC-SHA256(handoff_webhook_secret, raw body)>   (when a secret is set)

A receiver verifies the signature over the raw bytes it received, before parsing them (`verify`).

Delivery never blocks or fails a turn: `notify` only enqueues, and one background thread posts, with a
5 s timeout and at most 3 attempts, retrying only connection errors, timeouts and 5xx answers (a 4xx
means the receiver refused this body: sending it again would not help). Failures are logged. The queue
is bounded; when a dead receiver lets it fill up, further notifications are dropped and logged rather
than growing memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable

import httpx
from pydantic import BaseModel
from tenacity import (
    RetryError,
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from assistant.models import Conversation, Handoff, HandoffPacket

logger = logging.getLogger(__name__)

EVENT_HANDOFF_CREATED = "handoff.created"
SIGNATURE_HEADER = "X-CXA-Signature"
EVENT_HEADER = "X-CXA-Event"
DELIVERY_HEADER = "X-CXA-Delivery"

PacketBuilder = Callable[[Handoff, Conversation], BaseModel]


def sign(secret: str, body: bytes) -> str:
    """The `X-CXA-Signature` value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """What a receiver does: recompute over the raw body and compare in constant time."""
    return signature is not None and hmac.compare_digest(sign(secret, body).encode(), signature.encode())


class ServerError(Exception):
    """The receiver answered 5xx: worth another attempt."""


class WebhookNotifier:
    def __init__(
        self,
        url: str,
        secret: str | None = None,
        packet: PacketBuilder | None = None,
        *,
        timeout_s: float = 5.0,
        attempts: int = 3,
        backoff_s: float = 0.5,
        queue_size: int = 1000,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.secret = secret
        self.packet = packet
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False, transport=transport)
        self._queue: queue.Queue[tuple[Handoff, Conversation] | None] = queue.Queue(maxsize=queue_size)
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        if secret is None:
            logger.warning("handoff webhook to %s is not signed: set handoff_webhook_secret", url)

    # -- the producer side (a turn's thread): never blocks, never raises ---------------------------

    def notify(self, handoff: Handoff, conversation: Conversation) -> None:
        """Queue a `handoff.created` delivery; returns at once."""
        self._ensure_worker()
        try:
            self._queue.put_nowait((handoff, conversation))
        except queue.Full:
            logger.error("handoff webhook queue is full; handoff %s will not be delivered", handoff.id)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued delivery has finished (for tests and shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Let queued deliveries finish for up to `timeout` seconds, then stop the worker."""
        self.wait_idle(timeout)
        if self._worker is not None and self._worker.is_alive():
            with contextlib.suppress(queue.Full):  # full: the worker is a daemon thread, it dies with the process
                self._queue.put_nowait(None)
            self._worker.join(timeout=0.5)
        self._client.close()

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="handoff-webhook", daemon=True)
                self._worker.start()

    # -- the worker ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                handoff, conversation = item
                self.deliver(self.body(handoff, conversation), handoff_id=handoff.id)
            except Exception:  # the worker must outlive any one bad delivery
                logger.exception("handoff webhook worker error")
            finally:
                self._queue.task_done()

    def body(self, handoff: Handoff, conversation: Conversation) -> bytes:
        """The packet as JSON bytes; if the full packet cannot be built (database trouble), the handoff
        and conversation alone, so the helpdesk still learns of it."""
        if self.packet is not None:
            try:
                return self.packet(handoff, conversation).model_dump_json().encode()
            except Exception:
                logger.exception("could not build the packet of handoff %s; sending it without transcript", handoff.id)
        return HandoffPacket(**handoff.model_dump(), conversation=conversation).model_dump_json().encode()

    def deliver(self, body: bytes, *, handoff_id: str = "", event: str = EVENT_HANDOFF_CREATED) -> bool:
        """POST `body` with bounded retries; True when the receiver answered 2xx. Never raises."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "cx-assistant-webhook",
            EVENT_HEADER: event,
            DELIVERY_HEADER: uuid.uuid4().hex,
        }
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_s, max=10 * self.backoff_s),
            retry=retry_if_exception_type((httpx.TransportError, ServerError)),
            before_sleep=before_sleep_log(logger, logging.WARNING),
        )
        try:
            for attempt in retrying:
                with attempt:
                    n = attempt.retry_state.attempt_number
                    logger.debug("handoff webhook %s: attempt %d to %s", handoff_id, n, self.url)
                    r = self._client.post(self.url, content=body, headers=headers)
                    if r.status_code >= 500:
                        raise ServerError(f"{r.status_code} from {self.url}")
        except RetryError as exc:
            logger.error(
                "handoff webhook %s: giving up after %d attempts (%s)",
                handoff_id,
                self.attempts,
                exc.last_attempt.exception(),
            )
            return False
        except httpx.HTTPError as exc:  # not a transport error: a bad URL, an unsupported scheme
            logger.error("handoff webhook %s: %s", handoff_id, exc)
            return False
        if not 200 <= r.status_code < 300:
            logger.error("handoff webhook %s: %s answered %d; not retried", handoff_id, self.url, r.status_code)
            return False
        logger.info("handoff webhook %s delivered (attempt %d)", handoff_id, n)
        return True
