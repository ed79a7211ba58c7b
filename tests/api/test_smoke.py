from fastapi.testclient import TestClient

from tests.conftest import widget_headers


def test_a_turn_through_the_api_cites_the_matching_article(client: TestClient) -> None:
    conv = client.post("/v1/conversations", json={}, headers=widget_headers())
    assert conv.status_code == 201, conv.text
    cid = conv.json()["id"]
    r = client.post(
        f"/v1/conversations/{cid}/messages",
        json={"text": "How do I turn on two-factor authentication for my account?"},
        headers=widget_headers(),
    )
    assert r.status_code == 200, r.text
    turn = r.json()
    assert turn["reply"]["citations"], turn
    assert turn["reply"]["citations"][0]["source_id"] == "account/two-factor-authentication"
    assert {"retrieve", "generate", "total"} <= set(turn["timings_ms"])
