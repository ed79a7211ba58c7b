"""Abuse limits in front of the /v1 API, as plain ASGI middleware (streamed answers pass through untouched).

- Rate limits (on unless `CXA_RATE_LIMITS=off`): token buckets per client address, per credential (the
  widget key or a bearer token, kept only as a hash) and, for customer messages (each one a model turn, the
  costly request), per client address again. A request over any limit gets 429 `rate_limited` with a
  `Retry-After` header in whole seconds. Buckets hold `burst_s` seconds' worth of requests, so a short burst
  passes and a steady flood does not.
- Body size (always on): a request body over `CXA_LIMITS__MAX_BODY_BYTES` (knowledge uploads:
  `CXA_MAX_UPLOAD_BYTES` plus room for the multipart envelope) gets 413 `payload_too_large` before any route
  reads it; a body sent without Content-Length is counted as it arrives.

Buckets live in this process. Behind a proxy, run uvicorn with `--proxy-headers --forwarded-allow-ips ...`
so the client address is the customer's, not the proxy's.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from api.errors import error_body
from assistant.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TURN_PATH = re.compile(r"^/v1/conversations/[^/]+/messages/?$")
_UPLOAD_PATH = "/v1/knowledge/documents"
_MULTIPART_ROOM = 64 * 1024


class TokenBuckets:
    """One token bucket per key: `per_minute` tokens a minute, holding at most `burst_s` seconds' worth
    (at least one). Thread-safe; the least recently seen keys are forgotten beyond `max_keys`."""

    def __init__(
        self,
        per_minute: int,
        burst_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self._clock, self._max_keys = clock, max_keys
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one token: 0.0 if there was one, else the seconds until there will be (nothing spent)."""
        with self._lock:
            now = self._clock()
            tokens, last = self._state.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._state[key] = (tokens, now)
            self._state.move_to_end(key)
            while len(self._state) > self._max_keys:
                self._state.popitem(last=False)
            return wait


async def _reject(send: Send, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AbuseLimits:
    """ASGI middleware: the rate limits and body-size cap described in the module docstring."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        limits = settings.limits
        self.enabled = settings.rate_limits == "on"
        self.max_body = limits.max_body_bytes
        self.max_upload = settings.max_upload_bytes + _MULTIPART_ROOM
        self.per_ip = TokenBuckets(limits.ip_per_minute, limits.burst_s)
        self.per_credential = TokenBuckets(limits.credential_per_minute, limits.burst_s)
        self.turns = TokenBuckets(limits.turns_per_minute, limits.burst_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        method: str = scope.get("method", "GET")
        headers = {k.lower(): v for k, v in scope.get("headers", [])}

        if self.enabled:
            wait = self._wait(scope, method, path, headers)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                await _reject(
                    send,
                    429,
                    "rate_limited",
                    f"too many requests; try again in {retry} s",
                    [(b"retry-after", str(retry).encode())],
                )
                return

        limit = self.max_upload if (method == "POST" and path.rstrip("/") == _UPLOAD_PATH) else self.max_body
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _reject(send, 400, "bad_request", "Content-Length is not a number", [])
                return
            if int(declared) > limit:
                await _reject(send, 413, "payload_too_large", f"the request body is over {limit} bytes", [])
                return
            await self.app(scope, receive, send)
            return
        if method not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): read up to the limit here, then hand the body on as one message.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _reject(send, 413, "payload_too_large", f"the request body is over {limit} bytes", [])
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, sent = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _wait(self, scope: Scope, method: str, path: str, headers: dict[bytes, bytes]) -> float:
        client = scope.get("client")
        address = client[0] if client else "unknown"
        waits = [self.per_ip.take(address)]
        credential = headers.get(b"x-widget-key") or headers.get(b"authorization")
        if credential:
            waits.append(self.per_credential.take(hashlib.sha256(credential).hexdigest()[:32]))
        if method == "POST" and _TURN_PATH.match(path):
            waits.append(self.turns.take(address))
        return max(waits)
