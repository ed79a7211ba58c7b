"""A real HTTP receiver for webhook tests: `http.server` on 127.0.0.1 in a thread, verifying signatures the
way a helpdesk would (over the raw body, before parsing it)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from assistant.handoff.webhooks import verify


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool


class WebhookReceiver:
    """Answers each POST with the next status of `statuses` (the last one repeats), after `delay_s`."""

    def __init__(self, secret: str | None, statuses: list[int] | None = None, delay_s: float = 0.0) -> None:
        self.secret = secret
        self.statuses = list(statuses or [200])
        self.delay_s = delay_s
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                ok = receiver.secret is not None and verify(receiver.secret, body, headers.get("x-cxa-signature"))
                with receiver._lock:
                    receiver.deliveries.append(Delivery(self.path, headers, body, ok))
                    status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                # a receiver refuses what it cannot authenticate
                if receiver.secret is not None and not ok:
                    status = 401
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/cxa"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.deliveries)
