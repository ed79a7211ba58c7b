"""Card data minimised (issue 19, finding 12): a customer who types a card number (Luhn-valid), an IBAN, a one-time
code or a password sees it masked (a card or IBAN to its last four) before any prompt, in `llm_calls`, in the
handoff summary and note, and in the agent's view; the stored message keeps the typed text only for
CXA_PRIVACY__PAYMENT_DATA_RETENTION_DAYS (none by default), after which the sweep forgets it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from assistant.models import utcnow
from assistant.safety.redact import mask_payment_data
from assistant.store.tables import LLMCallRow, MessageRow
from tests.api.support import app_client, customer_headers, start
from tests.conftest import AGENT_TOKEN, bearer, customer_hash
from tests.fakes import FakeChatModel

CARD, IBAN = "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32"
SAID = f"My card {CARD} was charged twice, refund it to {IBAN}. The code they texted is 739164, password is hunter22"
SECRETS = (CARD, "4111111111111111", IBAN, "GB82WEST12345698765432", "739164", "hunter22")


def test_masking_keeps_the_last_four_of_a_card_or_iban_and_nothing_of_a_code() -> None:
    masked = mask_payment_data(SAID)
    assert "[card ending 1111]" in masked and "[IBAN ending 5432]" in masked
    assert "[code]" in masked and "[password]" in masked
    assert not any(s in masked for s in SECRETS)
    for ordinary in ("Order 1042 arrived on 2026-01-03", "Call 020 7946 0018", "4111 1111 1111 1112 (not Luhn)"):
        assert mask_payment_data(ordinary) == ordinary


def test_payment_data_reaches_no_prompt_log_summary_or_agent(sample_data_dir: Path) -> None:
    model = FakeChatModel(reply=lambda call: " ".join(str(m.content) for m in call.messages)[:300])
    with app_client(sample_data_dir, chat_model=model) as client:
        conv = start(client, customer_id="cus_1001", customer_hash=customer_hash("cus_1001"))
        cid = conv["id"]
        turn = client.post(f"/v1/conversations/{cid}/messages", json={"text": SAID}, headers=customer_headers(cid))
        assert turn.status_code == 200, turn.text
        note = f"call me about {CARD}"
        handed = client.post(f"/v1/conversations/{cid}/handoff", json={"reason": note}, headers=customer_headers(cid))
        assert handed.status_code == 200, handed.text
        prompts = json.dumps([[str(m.content) for m in c.messages] for c in model.calls])
        assert model.calls and "[card ending 1111]" in prompts
        store = client.app.state.services.store  # type: ignore[attr-defined]
        with store.session() as s:
            logged = json.dumps([(r.messages, r.output) for r in s.scalars(select(LLMCallRow))])
            stored = s.scalars(select(MessageRow).where(MessageRow.conversation_id == cid)).all()
        packet = client.get(f"/v1/handoffs/{handed.json()['handoff']['id']}", headers=bearer(AGENT_TOKEN))
        queue = client.get("/v1/handoffs", params={"status": "waiting"}, headers=bearer(AGENT_TOKEN))
        seen_by_agent = packet.text + queue.text
        transcript = client.get(f"/v1/conversations/{cid}", headers=bearer(AGENT_TOKEN)).text
        for where, text in [
            ("prompt", prompts),
            ("llm_calls", logged),
            ("agent", seen_by_agent),
            ("transcript", transcript),
        ]:
            assert not [s for s in SECRETS if s in text], where
        assert "[card ending 1111]" in packet.json()["customer_note"]
        assert all(r.original_text is None for r in stored)  # no retention: the typed text was never stored
        assert any("[card ending 1111]" in r.text for r in stored)


def test_the_typed_text_is_kept_for_its_retention_then_forgotten(sample_data_dir: Path) -> None:
    with app_client(sample_data_dir, privacy={"payment_data_retention_days": 30}) as client:
        cid = start(client)["id"]
        client.post(f"/v1/conversations/{cid}/messages", json={"text": SAID}, headers=customer_headers(cid))
        store = client.app.state.services.store  # type: ignore[attr-defined]
        with store.session() as s:
            [row] = s.scalars(
                select(MessageRow).where(MessageRow.conversation_id == cid, MessageRow.role == "customer")
            )
            assert row.original_text == SAID and CARD not in row.text
        # what the API serves is the masked text, whoever asks
        assert CARD not in client.get(f"/v1/conversations/{cid}", headers=customer_headers(cid)).text
        assert store.messages.purge_originals(utcnow() - timedelta(days=30)) == 0  # not yet 30 days old
        with store.session() as s:
            s.execute(update(MessageRow).values(created_at=utcnow() - timedelta(days=31)))
        assert store.messages.purge_originals(utcnow() - timedelta(days=30)) == 1
        with store.session() as s:
            assert s.scalars(select(MessageRow.original_text).where(MessageRow.conversation_id == cid)).all() == [
                None
            ] * len(s.scalars(select(MessageRow.id).where(MessageRow.conversation_id == cid)).all())
