"""No request path builds a model, a database engine or an index client of its own: they are opened once, at
start (`assistant.services`). Counted with library-level hooks (`evals.perf.probes.Constructions` wraps the
constructors of SQLAlchemy's Engine, ONNX Runtime's InferenceSession, LangChain's BaseChatModel, llama.cpp's
Llama and Chroma's Client) while customer, agent and staff requests run against the real app. Not timed."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_app
from assistant.settings import Settings
from evals.perf.probes import WATCHED, Constructions
from tests.api.support import OFF_TOPIC_QUESTION, TWO_FA_QUESTION, parse_sse, say, start
from tests.conftest import ADMIN_TOKEN, AGENT_TOKEN, CX_TOKEN, bearer, customer_hash, widget_headers


def test_requests_build_no_engine_model_session_or_client(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client, Constructions() as built:  # counting starts after startup
        verified = start(client, customer_id="cus_1001", customer_hash=customer_hash("cus_1001"))["id"]
        for text in (TWO_FA_QUESTION, "and what if I lose my phone?", "thanks, that worked!"):
            say(client, verified, text)
        streamed = start(client)["id"]
        r = client.post(
            f"/v1/conversations/{streamed}/messages",
            json={"text": "How long does a refund take to reach my card?"},
            headers=widget_headers(Accept="text/event-stream"),
        )
        assert [e for e, _ in parse_sse(r.text)][-1] == "done"
        handed = start(client)["id"]
        say(client, handed, OFF_TOPIC_QUESTION)
        r = client.post(f"/v1/conversations/{handed}/handoff", headers=widget_headers())  # the summary is written
        assert r.status_code == 200, r.text
        handoff_id = r.json()["handoff"]["id"]
        agent = bearer(AGENT_TOKEN)
        assert client.post(f"/v1/handoffs/{handoff_id}/claim", json={"agent_id": "sam"}, headers=agent).is_success
        reply = client.post(f"/v1/conversations/{handed}/agent-messages", json={"text": "Hi, Sam here."}, headers=agent)
        assert reply.status_code == 201, reply.text
        assert client.get(f"/v1/conversations/{handed}", headers=widget_headers()).is_success
        assert client.get("/v1/knowledge/search?q=refund", headers=bearer(ADMIN_TOKEN)).is_success
        assert client.get("/v1/metrics", headers=bearer(CX_TOKEN)).is_success
        assert client.get("/v1/conversations", headers=bearer(CX_TOKEN)).is_success
        counts = built.snapshot()
    assert set(counts) == {label for label, _, _ in WATCHED}
    assert counts == dict.fromkeys(counts, 0), counts


def test_the_counter_sees_constructions(settings: Settings) -> None:
    """The hooks do count (so the zeros above mean something): building the services once builds the store's
    engine, and on PostgreSQL the live bus's listener engine (one LISTEN connection per process) besides."""
    from assistant.services import Services

    with Constructions() as built:
        services = Services.build(settings, warm=False)
        services.close()
    on_postgres = settings.sqlalchemy_url.startswith("postgresql")
    assert built.snapshot()["sqlalchemy_engine"] == (2 if on_postgres else 1)
    assert built.snapshot()["chat_model"] == 1  # the fake provider's model
