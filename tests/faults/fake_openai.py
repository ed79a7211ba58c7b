"""A fake OpenAI-compatible chat server on a loopback port, with switchable faults.

It is a remote service as far as the app is concerned: the app reaches it over real HTTP through
`langchain-openai` and the `openai` client, exactly as it reaches OpenAI, vLLM or llama.cpp. Only the
server's behaviour is scripted:

    ok              a normal completion (streamed when asked): the first sentence of source [1], cited
    slow            sleeps `delay` seconds before answering (past the client's timeout)
    slow_stream     streams a long answer, one word every `delay` seconds (a model still generating)
    error_500       HTTP 500 with an OpenAI-style error body
    rate_limited    HTTP 429 with `Retry-After: retry_after`
    not_json        200, an SSE stream whose data lines are not JSON
    truncated_json  200, an SSE stream whose first chunk is JSON cut in half, then the connection closes
    html            200, a proxy's HTML error page instead of an SSE stream or JSON
    empty           200, a valid stream/envelope whose content is empty or null, then [DONE]
    broken_stream   200, two chunks, then the socket closes mid-body (incomplete chunked encoding)
    no_done_hang    200, two chunks, then silence with the connection open (no [DONE], never ends)
    reset           the connection is accepted and reset before any response (TCP RST)
    invent          like ok, but an answer after tool results adds a sentence the results do not support

Function calling (any mode that answers): a request offering `tools` is answered with one tool call chosen from
the question's words (an order number in it becomes `order_id`); a request carrying tool results is answered
with the first sentence of the first result's facts.

`requests` counts the chat-completion requests received (each retry is one more).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = (
    "ok",
    "slow",
    "slow_stream",
    "error_500",
    "rate_limited",
    "not_json",
    "truncated_json",
    "html",
    "empty",
    "broken_stream",
    "no_done_hang",
    "reset",
    "invent",
)

_SOURCE = re.compile(r"^\[1\]\s*(?:\([^)]*\)\s*)?(.*)$", re.M)


_TOOL_WORDS = (
    ("refund", "refund_status"),
    ("return", "return_status"),
    ("rma", "return_status"),
    ("member", "membership"),
    ("renew", "membership"),
    ("subscription", "membership"),
    ("payment", "payments"),
    ("declin", "payments"),
    ("complaint", "tickets"),
    ("ticket", "tickets"),
)


def tool_call_for(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool call a request offering tools gets (None: it carries tool results already, or offers none)."""
    messages = body.get("messages", [])
    if not body.get("tools") or any(m.get("role") == "tool" for m in messages):
        return None
    question = str(messages[-1].get("content") or "").rsplit("Question:", 1)[-1].lower()
    name = next((tool for word, tool in _TOOL_WORDS if word in question), "order_status")
    order = re.search(r"\b[a-z]{2,5}-\d{4,10}\b", question)
    args = {"order_id": order.group(0).upper()} if order else {}
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def tool_answer_for(body: dict[str, Any], invent: bool) -> str | None:
    """After tool results: the first sentence of the first result's facts (and, `invent`, one it does not say)."""
    results = [m for m in body.get("messages", []) if m.get("role") == "tool"]
    if not results:
        return None
    try:
        facts = str(json.loads(results[0].get("content") or "{}").get("facts") or "")
    except ValueError:
        facts = str(results[0].get("content") or "")
    first = re.split(r"(?<=[.!?])\s+", facts.strip())[0] if facts.strip() else "I can't see that."
    return first + (" We have also refunded you £999.99 as a goodwill gesture." if invent else "")


def answer_for(body: dict[str, Any]) -> str:
    """The first sentence of source [1], cited; for prompts without sources, the question itself."""
    text = "\n".join(str(m.get("content") or "") for m in body.get("messages", []))
    m = _SOURCE.search(text)
    if m:
        first = re.split(r"(?<=[.!?])\s+", m.group(1).strip())[0]
        return f"{first} [1]"
    q = re.search(r"Question:\s*(.+)", text)
    return q.group(1).strip() if q else "I don't know."


class FakeOpenAI:
    """Start with `with FakeOpenAI() as fake:`; `fake.url` is the base URL (ending in /v1)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.delay = 5.0
        self.retry_after = "1"
        self.requests = 0
        self._lock = threading.Lock()
        self.stop = threading.Event()  # set on close: hanging handlers return
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self.server = server
        self.port = int(server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=server.serve_forever, name="fake-openai", daemon=True)

    def set(self, mode: str, **params: Any) -> FakeOpenAI:
        assert mode in MODES, mode
        self.mode = mode
        for k, v in params.items():
            setattr(self, k, v)
        self.requests = 0
        return self

    def count(self) -> None:
        with self._lock:
            self.requests += 1

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def _chunk(content: str | None, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "fake",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": finish}],
    }


def _completion(content: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            pass

        # -- plumbing ------------------------------------------------------------------------------

        def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def _start_stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

        def _frame(self, data: str) -> None:
            raw = data.encode()
            self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            self.wfile.flush()

        def _event(self, payload: dict[str, Any] | str) -> None:
            self._frame(f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n")

        def _end_stream(self) -> None:
            self._frame("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _sleep(self, seconds: float) -> None:
            fake.stop.wait(seconds)

        # -- routes ----------------------------------------------------------------------------------

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path.rstrip("/").endswith("/models"):
                body = {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "tests"}]}
                self._send(200, json.dumps(body).encode(), "application/json")
            else:
                self._send(404, b'{"error": {"message": "not found"}}', "application/json")

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, b'{"error": {"message": "not found"}}', "application/json")
                return
            fake.count()
            body = json.loads(raw or b"{}")
            # A client that gave up (its timeout) is what a real server sees too.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._respond(fake.mode, body, bool(body.get("stream")))

        def _respond(self, mode: str, body: dict[str, Any], stream: bool) -> None:
            call = tool_call_for(body)
            if call is not None and mode in ("ok", "invent"):
                self._tool_call(call, stream)
                return
            after_tools = tool_answer_for(body, invent=mode == "invent")
            text = after_tools if after_tools is not None else answer_for(body)
            mode = "ok" if mode == "invent" else mode
            if mode == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            if mode == "slow":
                self._sleep(fake.delay)
                mode = "ok"
            if mode == "error_500":
                err = {"error": {"message": "the model crashed", "type": "server_error", "code": None}}
                self._send(500, json.dumps(err).encode(), "application/json")
            elif mode == "rate_limited":
                err = {"error": {"message": "rate limit reached", "type": "rate_limit_error", "code": None}}
                self._send(429, json.dumps(err).encode(), "application/json", {"Retry-After": fake.retry_after})
            elif mode == "html":
                page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
                self._send(200, page, "text/html")
            elif not stream:
                content: str | None = None if mode == "empty" else text
                if mode in ("not_json", "truncated_json"):
                    payload = b"this is not json" if mode == "not_json" else json.dumps(_completion(text)).encode()[:40]
                    self._send(200, payload, "application/json")
                else:
                    self._send(200, json.dumps(_completion(content)).encode(), "application/json")
            else:
                self._stream(mode, text)

        def _tool_call(self, call: dict[str, Any], stream: bool) -> None:
            if not stream:
                body = _completion(None)
                body["choices"][0]["message"]["tool_calls"] = [call]
                body["choices"][0]["finish_reason"] = "tool_calls"
                self._send(200, json.dumps(body).encode(), "application/json")
                return
            self._start_stream()
            chunk = _chunk(None)
            chunk["choices"][0]["delta"]["tool_calls"] = [{"index": 0, **call}]
            self._event(chunk)
            self._event(_chunk(None, "tool_calls"))
            self._end_stream()

        def _stream(self, mode: str, text: str) -> None:
            self._start_stream()
            words = re.findall(r"\S+\s*", text)
            if mode == "ok":
                for w in words:
                    self._event(_chunk(w))
                self._event(_chunk(None, "stop"))
                self._end_stream()
            elif mode == "slow_stream":
                for w in (words * 50)[:400]:
                    if fake.stop.is_set():
                        return
                    self._event(_chunk(w))
                    self._sleep(fake.delay)
                self._end_stream()
            elif mode == "empty":
                self._event(_chunk(""))
                self._event(_chunk(None))
                self._event(_chunk(None, "stop"))
                self._end_stream()
            elif mode == "not_json":
                self._event("this is not json")
                self._end_stream()
            elif mode == "truncated_json":
                self._frame("data: " + json.dumps(_chunk(text))[:30])  # no end of event, no end of body
                self.connection.shutdown(socket.SHUT_RDWR)
            elif mode == "broken_stream":
                for w in words[:2]:
                    self._event(_chunk(w))
                self.connection.shutdown(socket.SHUT_RDWR)  # mid-body: the chunked encoding never ends
            elif mode == "no_done_hang":
                for w in words[:2]:
                    self._event(_chunk(w))
                self._sleep(fake.delay)

    return Handler
