"""The signed handoff webhook against a real HTTP server on 127.0.0.1 (tests/webhook_receiver.py)."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator

import pytest

from assistant.handoff.webhooks import WebhookNotifier, sign, verify
from assistant.models import Conversation, Handoff, HandoffPacket, HandoffSummary, utcnow
from tests.webhook_receiver import WebhookReceiver

SECRET = "whsec-test-0123456789"


def _handoff() -> tuple[Handoff, Conversation]:
    now = utcnow()
    conv = Conversation(id="conv_1", status="waiting_for_agent", created_at=now, updated_at=now)
    handoff = Handoff(
        id="ho_1",
        conversation_id="conv_1",
        reason="customer_request",
        summary=HandoffSummary(issue="My parcel never arrived", customer_goal="a refund"),
        created_at=now,
    )
    return handoff, conv


@pytest.fixture
def notifiers() -> Iterator[list[WebhookNotifier]]:
    made: list[WebhookNotifier] = []
    yield made
    for n in made:
        n.close(timeout=0.5)


def _notifier(made: list[WebhookNotifier], url: str, secret: str | None = SECRET, **kw: object) -> WebhookNotifier:
    n = WebhookNotifier(url, secret, backoff_s=0.01, **kw)  # type: ignore[arg-type]
    made.append(n)
    return n


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sign_and_verify() -> None:
    body = b'{"id": "ho_1"}'
    sig = sign(SECRET, body)
    assert sig.startswith("sha256=") and len(sig) == len("sha256=") + 64
    assert verify(SECRET, body, sig)
    assert not verify(SECRET, body + b" ", sig)
    assert not verify("another-secret", body, sig)
    assert not verify(SECRET, body, None)


def test_a_handoff_is_posted_signed_in_the_background(notifiers: list[WebhookNotifier]) -> None:
    handoff, conv = _handoff()
    with WebhookReceiver(SECRET, delay_s=0.3) as rx:
        n = _notifier(notifiers, rx.url)
        t0 = time.perf_counter()
        n.notify(handoff, conv)
        assert time.perf_counter() - t0 < 0.1  # the turn never waits for the receiver
        assert n.wait_idle(10)
        [d] = rx.deliveries
    assert d.path == "/hooks/cxa"
    assert d.signature_ok
    assert d.headers["x-cxa-event"] == "handoff.created"
    assert d.headers["content-type"] == "application/json"
    assert d.headers["x-cxa-delivery"]
    packet = HandoffPacket.model_validate_json(d.body)
    assert packet.id == "ho_1" and packet.conversation.id == "conv_1"
    assert packet.summary.issue == "My parcel never arrived"


def test_the_packet_builder_supplies_the_body(notifiers: list[WebhookNotifier]) -> None:
    handoff, conv = _handoff()

    def packet(h: Handoff, c: Conversation) -> HandoffPacket:
        return HandoffPacket(**h.model_dump(), conversation=c, transcript=[])

    def broken(h: Handoff, c: Conversation) -> HandoffPacket:
        raise RuntimeError("database is gone")

    with WebhookReceiver(SECRET) as rx:
        _notifier(notifiers, rx.url, packet=packet).notify(handoff, conv)
        _notifier(notifiers, rx.url, packet=broken).notify(handoff, conv)  # still delivered, without transcript
        deliveries = rx.wait_for(2)
    assert len(deliveries) == 2 and all(d.signature_ok for d in deliveries)
    assert {json.loads(d.body)["id"] for d in deliveries} == {"ho_1"}


def test_5xx_is_retried_with_the_same_delivery_id(notifiers: list[WebhookNotifier]) -> None:
    with WebhookReceiver(SECRET, statuses=[503, 502, 200]) as rx:
        ok = _notifier(notifiers, rx.url).deliver(b'{"id": "ho_1"}', handoff_id="ho_1")
    assert ok
    assert len(rx.deliveries) == 3
    assert len({d.headers["x-cxa-delivery"] for d in rx.deliveries}) == 1
    assert all(d.signature_ok for d in rx.deliveries)


def test_retries_are_bounded_and_failure_is_logged(
    notifiers: list[WebhookNotifier], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "assistant.handoff.webhooks"), WebhookReceiver(SECRET, statuses=[500]) as rx:
        ok = _notifier(notifiers, rx.url).deliver(b"{}", handoff_id="ho_1")
    assert not ok
    assert len(rx.deliveries) == 3
    assert "giving up after 3 attempts" in caplog.text


def test_4xx_is_not_retried(notifiers: list[WebhookNotifier], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "assistant.handoff.webhooks"), WebhookReceiver(SECRET, statuses=[410]) as rx:
        ok = _notifier(notifiers, rx.url).deliver(b"{}", handoff_id="ho_1")
    assert not ok
    assert len(rx.deliveries) == 1
    assert "answered 410" in caplog.text


def test_a_wrong_secret_is_refused_by_the_receiver(notifiers: list[WebhookNotifier]) -> None:
    with WebhookReceiver(SECRET) as rx:
        ok = _notifier(notifiers, rx.url, secret="not-the-receivers-secret").deliver(b"{}")
    assert not ok
    assert [d.signature_ok for d in rx.deliveries] == [False]


def test_an_unsigned_webhook_has_no_signature_header(notifiers: list[WebhookNotifier]) -> None:
    with WebhookReceiver(None) as rx:
        assert _notifier(notifiers, rx.url, secret=None).deliver(b"{}")
    assert "x-cxa-signature" not in rx.deliveries[0].headers


def test_connection_errors_are_retried_then_logged_never_raised(
    notifiers: list[WebhookNotifier], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{_free_port()}/nobody-listens"
    handoff, conv = _handoff()
    n = _notifier(notifiers, url)
    with caplog.at_level(logging.WARNING, "assistant.handoff.webhooks"):
        assert n.deliver(b"{}", handoff_id="ho_1") is False
        n.notify(handoff, conv)  # the background path swallows it too
        assert n.wait_idle(10)
    assert caplog.text.count("giving up after 3 attempts") == 2
    assert "Retrying" in caplog.text  # tenacity logs before each new attempt


def test_a_slow_receiver_times_out_and_is_retried(notifiers: list[WebhookNotifier]) -> None:
    with WebhookReceiver(SECRET, delay_s=0.5) as rx:
        ok = _notifier(notifiers, rx.url, timeout_s=0.1, attempts=2).deliver(b"{}")
    assert not ok
    assert len(rx.deliveries) == 2


def test_a_full_queue_drops_and_logs_instead_of_blocking(
    notifiers: list[WebhookNotifier], caplog: pytest.LogCaptureFixture
) -> None:
    handoff, conv = _handoff()
    with WebhookReceiver(SECRET, delay_s=0.3) as rx:
        n = _notifier(notifiers, rx.url, queue_size=1)
        with caplog.at_level(logging.ERROR, "assistant.handoff.webhooks"):
            t0 = time.perf_counter()
            for _ in range(5):
                n.notify(handoff, conv)
            assert time.perf_counter() - t0 < 0.2
        assert "queue is full" in caplog.text
        assert n.wait_idle(10)
        assert 1 <= len(rx.deliveries) <= 2
