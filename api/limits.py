"""Abuse limits in front of the /v1 API, as plain ASGI middleware (streamed answers pass through untouched).

- Rate limits (on unless `CXA_RATE_LIMITS=off`): a moving window per client address, per credential (the widget
  key or a bearer token, kept only as a hash) and, for customer messages (each one a model turn, the costly
  request), per client address again. A window holds `burst_s` seconds' worth of requests, so a short burst
  passes and a steady flood does not. A request over any limit gets 429 `rate_limited` with a `Retry-After`
  header in whole seconds, and takes from **no** window: every window is tested before any is spent, so one
  address flooding with the public widget key empties its own window, not the key's that every customer shares.
  The windows are the `limits` library's, kept where `CXA_LIMITS__STORAGE_URL` says: `memory://` (this process),
  or `redis://host:port/db` (every worker and server counting together). When that store is unreachable, requests
  pass (logged): a broken limiter must not take the API down with it.
- Body size (always on): a request body over `CXA_LIMITS__MAX_BODY_BYTES` (knowledge uploads:
  `CXA_MAX_UPLOAD_BYTES` plus room for the multipart envelope) gets 413 `payload_too_large` before any route
  reads it; a body sent without Content-Length is counted as it arrives. A body not complete within
  `CXA_LIMITS__BODY_TIMEOUT_S` gets 408 `request_timeout`.
- JSON bodies (always on): valid Unicode (no lone surrogate), finite numbers, at most `payload.BODY_DEPTH` levels
  (`assistant.safety.payload`), else 422 `invalid_request` naming the field; unparseable JSON is left to the
  route (400 `invalid_json`).

Behind a proxy, run uvicorn with `--proxy-headers --forwarded-allow-ips ...` so the client address is the
customer's, not the proxy's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool

from api.errors import error_body
from assistant.safety import payload
from assistant.settings import LimitSettings, Settings

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TURN_PATH = re.compile(r"^/v1/conversations/[^/]+/messages/?$")
_UPLOAD_PATH = "/v1/knowledge/documents"
_MULTIPART_ROOM = 64 * 1024
_WITH_BODY = ("POST", "PUT", "PATCH")


def window(per_minute: int, burst_s: float) -> RateLimitItem:
    """`per_minute` requests a minute as a moving window of `burst_s` seconds (whole, at least one) holding that
    many seconds' worth of requests (at least one)."""
    seconds = max(1, round(burst_s))
    return RateLimitItemPerSecond(max(1, round(per_minute * seconds / 60)), seconds)


class RateLimits:
    """The windows of the module docstring over one `limits` storage. `check` tests every window a request
    counts against and spends one from each only when none is full."""

    def __init__(self, limits: LimitSettings, namespace: str = "cxa") -> None:
        self.storage: Storage = storage_from_string(limits.storage_url)
        self.remote = not limits.storage_url.startswith("memory://")
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.per_ip = window(limits.ip_per_minute, limits.burst_s)
        self.per_credential = window(limits.credential_per_minute, limits.burst_s)
        self.turns = window(limits.turns_per_minute, limits.burst_s)
        self.namespace = namespace
        self._warned = False

    def windows(self, address: str, credential: bytes | None, turn: bool) -> list[tuple[RateLimitItem, str, str]]:
        out = [(self.per_ip, "ip", address)]
        if credential:
            out.append((self.per_credential, "credential", hashlib.sha256(credential).hexdigest()[:32]))
        if turn:
            out.append((self.turns, "turn", address))
        return out

    def check(self, address: str, credential: bytes | None, turn: bool) -> float:
        """0.0 when the request may pass (one spent from each of its windows); else the seconds until the full
        window has room again, with nothing spent."""
        try:
            wanted = self.windows(address, credential, turn)
            for item, kind, key in wanted:
                if not self.limiter.test(item, self.namespace, kind, key):
                    return self._wait(item, kind, key)
            for item, kind, key in wanted:
                if not self.limiter.hit(item, self.namespace, kind, key):  # another request took the last one
                    return self._wait(item, kind, key)
            return 0.0
        except Exception as exc:  # the shared store is down: let requests through rather than refuse them all
            if not self._warned:
                logger.warning("rate limits not applied: the limits store is unavailable (%s)", exc)
                self._warned = True
            return 0.0

    def _wait(self, item: RateLimitItem, kind: str, key: str) -> float:
        stats = self.limiter.get_window_stats(item, self.namespace, kind, key)
        return max(1.0, stats.reset_time - time.time())


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


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class AbuseLimits:
    """ASGI middleware: the rate limits, body cap and JSON checks described in the module docstring."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        limits = settings.limits
        self.enabled = settings.rate_limits == "on"
        self.max_body = limits.max_body_bytes
        self.max_upload = settings.max_upload_bytes + _MULTIPART_ROOM
        self.body_timeout_s = limits.body_timeout_s
        self.rates = RateLimits(limits) if self.enabled else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        method: str = scope.get("method", "GET")
        headers = {k.lower(): v for k, v in scope.get("headers", [])}

        if self.rates is not None:
            client = scope.get("client")
            args = (
                client[0] if client else "unknown",
                headers.get(b"x-widget-key") or headers.get(b"authorization"),
                method == "POST" and bool(_TURN_PATH.match(path)),
            )
            wait = await run_in_threadpool(self.rates.check, *args) if self.rates.remote else self.rates.check(*args)
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
        if method not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        try:
            body = await asyncio.wait_for(self._read(receive, limit), self.body_timeout_s)
        except TimeoutError:
            await _reject(
                send, 408, "request_timeout", f"the request body did not arrive within {self.body_timeout_s:g} s", []
            )
            return
        except _Refused as exc:
            await _reject(send, exc.status, exc.code, exc.message, [])
            return
        if body is None:  # the client went away
            return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if body and content_type in (b"application/json", b""):
            found = _json_problem(body)
            if found is not None:
                await _reject(send, 422, "invalid_request", found, [])
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _read(receive: Receive, limit: int) -> bytes | None:
        """The whole body, at most `limit` bytes (else 413); None when the client disconnected."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refused(413, "payload_too_large", f"the request body is over {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _json_problem(body: bytes) -> str | None:
    """Why a JSON body may not reach a route (see `assistant.safety.payload`), or None. A body that does not parse
    is the route's to report (400 invalid_json)."""
    try:
        value = json.loads(body)
    except RecursionError:
        return f"body: nested deeper than {payload.BODY_DEPTH} levels"
    except ValueError:
        return None
    found = payload.problem(value, payload.BODY_DEPTH, "body")
    return found
