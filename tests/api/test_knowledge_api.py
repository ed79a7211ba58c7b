"""Admin knowledge routes: add/replace documents (JSON or a file), search, and what a turn then cites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assistant.turn.grounding import chunk_texts
from tests.api.support import assert_error, private_app, say, start
from tests.conftest import ADMIN_TOKEN, AGENT_TOKEN, CX_TOKEN, bearer, widget_headers

ADMIN = bearer(ADMIN_TOKEN)
WARRANTY_V1 = {
    "source_id": "policies/furniture-warranty",
    "title": "Furniture warranty",
    "url": "https://help.larkspurhome.example/policies/furniture-warranty",
    "text": "# Furniture warranty\n\nEvery Larkspur sofa frame is covered by a ten year frame warranty. "
    "Cushions and fabric are covered for two years against manufacturing faults.\n",
}
WARRANTY_V2 = {
    **WARRANTY_V1,
    "text": "# Furniture warranty\n\nEvery Larkspur sofa frame is covered by a lifetime frame warranty. "
    "To claim, send a photo of the fault and your order number to the warranty desk.\n",
}


@pytest.fixture(scope="module")
def shared(sample_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the checks that must not change anything."""
    with private_app(sample_template, tmp_path_factory, "knowledge") as c:
        yield c


def search(client: TestClient, q: str, k: int = 3) -> list[dict[str, Any]]:
    r = client.get("/v1/knowledge/search", params={"q": q, "k": k}, headers=ADMIN)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) <= k
    for it in items:
        assert {"source_id", "title", "snippet", "score"} <= set(it), it
        assert isinstance(it["snippet"], str) and it["snippet"]
        assert 0.0 <= it["score"] <= 1.0
    return items  # type: ignore[no-any-return]


def post_doc(client: TestClient, doc: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/v1/knowledge/documents", json=doc, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_search_finds_the_sample_article(shared: TestClient) -> None:
    items = search(shared, "turn on two-factor authentication", k=3)
    assert items and items[0]["source_id"] == "account/two-factor-authentication"
    assert items[0]["title"] == "Two-factor authentication"


def test_a_json_document_is_added_updated_and_left_unchanged(client: TestClient) -> None:
    added = post_doc(client, WARRANTY_V1)
    assert added["status"] == "added"
    assert added["source_id"] == WARRANTY_V1["source_id"]
    assert added["title"] == "Furniture warranty"
    assert added["chunks"] >= 1
    items = search(client, "how long is the sofa frame warranty", k=3)
    assert items[0]["source_id"] == WARRANTY_V1["source_id"]
    assert "ten year frame warranty" in items[0]["snippet"]

    updated = post_doc(client, WARRANTY_V2)
    assert updated["status"] == "updated"
    items = search(client, "how long is the sofa frame warranty", k=3)
    mine = [it for it in items if it["source_id"] == WARRANTY_V1["source_id"]]
    assert len(mine) == 1, items  # replaced, not duplicated
    assert "lifetime frame warranty" in mine[0]["snippet"]
    assert all("ten year" not in it["snippet"] for it in search(client, "ten year frame warranty", k=10))

    again = post_doc(client, WARRANTY_V2)
    assert again["status"] == "unchanged"
    assert again["chunks"] == updated["chunks"]


def test_an_uploaded_document_has_its_sentence_vectors_stored_in_the_background(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    assert services.warmer is not None and services.warmer.wait_idle(60)
    # the copied data dir was warmed by its ingest: nothing embedded at start (in servers mode the collection is a
    # copy under another name, so it is walked, and every text is found stored)
    last = services.warmer.last
    assert last is None or (last.complete and last.embedded == 0)
    post_doc(client, WARRANTY_V1)
    assert services.warmer.wait_idle(60)
    texts = [t for c in services.index.get_document_chunks(WARRANTY_V1["source_id"]) for t in chunk_texts(c)]
    assert texts and services.text_vectors.missing(texts) == []


def test_an_uploaded_markdown_file_is_searchable(client: TestClient) -> None:
    md = (
        b"---\ntitle: Caring for oak furniture\n---\n# Caring for oak furniture\n\n"
        b"Wipe oak tables with a damp cloth and re-oil them with Danish oil every six months.\n"
    )
    r = client.post(
        "/v1/knowledge/documents",
        files={"file": ("oak-care.md", md, "text/markdown")},
        data={"source_id": "care/oak"},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "added" and r.json()["source_id"] == "care/oak"
    items = search(client, "how often should I re-oil my oak table", k=3)
    assert items[0]["source_id"] == "care/oak"
    assert "Danish oil" in items[0]["snippet"]


def test_an_uploaded_file_without_a_source_id_is_named_after_the_file(client: TestClient) -> None:
    r = client.post(
        "/v1/knowledge/documents",
        files={"file": ("gift-wrap.txt", b"Gift wrapping costs 4 pounds per item and includes a card.", "text/plain")},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    assert r.json()["source_id"] == "gift-wrap"
    assert search(client, "how much is gift wrapping", k=3)[0]["source_id"] == "gift-wrap"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("manual.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"),
        ("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00"),
        ("notes.docx", b"PK\x03\x04"),
    ],
)
def test_an_unsupported_file_type_is_415(shared: TestClient, name: str, data: bytes) -> None:
    r = shared.post("/v1/knowledge/documents", files={"file": (name, data, "application/octet-stream")}, headers=ADMIN)
    body = assert_error(r, 415, "unsupported_document")
    assert ".md" in body["error"]["message"]  # says what is supported


@pytest.mark.parametrize(
    ("payload", "what"),
    [
        ({"source_id": "x/no-text", "title": "No text"}, "text"),
        ({"title": "No id", "text": "Some text here."}, "source_id"),
        ({"source_id": "x/bad", "title": "Bad", "text": 42}, "text"),
    ],
)
def test_an_incomplete_json_document_is_rejected(shared: TestClient, payload: dict[str, Any], what: str) -> None:
    r = shared.post("/v1/knowledge/documents", json=payload, headers=ADMIN)
    assert r.status_code in (400, 422)
    body = assert_error(r, r.status_code)
    assert what in body["error"]["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b""])
def test_a_malformed_json_document_is_400(shared: TestClient, raw: bytes) -> None:
    r = shared.post("/v1/knowledge/documents", content=raw, headers={**ADMIN, "Content-Type": "application/json"})
    assert_error(r, 400)


def test_an_empty_or_undecodable_file_is_400(shared: TestClient) -> None:
    for data in (b"", b"   \n", b"\xff\xfe\xfa broken"):
        r = shared.post("/v1/knowledge/documents", files={"file": ("empty.md", data, "text/markdown")}, headers=ADMIN)
        assert_error(r, 400, "invalid_document")


def test_a_multipart_upload_without_a_file_is_rejected(shared: TestClient) -> None:
    r = shared.post(
        "/v1/knowledge/documents",
        data={"source_id": "x"},
        files={"attachment": ("a.md", b"# A\n\ntext", "text/markdown")},
        headers=ADMIN,
    )
    assert_error(r, 422, "invalid_request")


def test_another_content_type_is_415(shared: TestClient) -> None:
    r = shared.post("/v1/knowledge/documents", content=b"plain words", headers={**ADMIN, "Content-Type": "text/plain"})
    assert_error(r, 415)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (widget_headers(), 401),
        (bearer("wrong-token"), 401),
        (bearer(AGENT_TOKEN), 403),
        (bearer(CX_TOKEN), 403),
    ],
)
def test_knowledge_routes_are_for_admins(shared: TestClient, headers: dict[str, str], status: int) -> None:
    r = shared.post("/v1/knowledge/documents", json=WARRANTY_V1, headers=headers)
    assert_error(r, status)
    r = shared.get("/v1/knowledge/search", params={"q": "refund", "k": 3}, headers=headers)
    assert_error(r, status)
    # nothing was written by the rejected upload
    assert all(it["source_id"] != WARRANTY_V1["source_id"] for it in search(shared, "sofa frame warranty", k=10))


@pytest.mark.parametrize(
    "params",
    [
        {"q": "", "k": 3},
        {"q": "   ", "k": 3},
        {"k": 3},
        {"q": "refund", "k": 0},
        {"q": "refund", "k": -1},
        {"q": "refund", "k": 51},
        {"q": "refund", "k": "many"},
        {"q": "x" * 1001},
    ],
    ids=["empty-q", "blank-q", "no-q", "k0", "k-neg", "k51", "k-str", "long-q"],
)
def test_bad_search_parameters_are_422(shared: TestClient, params: dict[str, Any]) -> None:
    r = shared.get("/v1/knowledge/search", params=params, headers=ADMIN)
    assert_error(r, 422, "invalid_request")


def test_search_on_an_empty_index_returns_no_items(empty_client: TestClient) -> None:
    r = empty_client.get("/v1/knowledge/search", params={"q": "refund", "k": 3}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json() == {"items": []}


def test_a_chat_turn_cites_an_uploaded_document(client: TestClient) -> None:
    question = "How long is the frame warranty on a Larkspur sofa?"
    before = say(client, start(client)["id"], question)
    assert all(c["source_id"] != WARRANTY_V1["source_id"] for c in (before["reply"] or {}).get("citations", []))

    post_doc(client, WARRANTY_V1)
    turn = say(client, start(client)["id"], question)
    assert turn["reply"] is not None, turn
    cited = [c["source_id"] for c in turn["reply"]["citations"]]
    assert WARRANTY_V1["source_id"] in cited, turn
    assert "ten year" in turn["reply"]["text"]
    c = next(c for c in turn["reply"]["citations"] if c["source_id"] == WARRANTY_V1["source_id"])
    assert c["title"] == "Furniture warranty" and c["url"] == WARRANTY_V1["url"]

    # and after a replacement, the new version is what is cited
    post_doc(client, WARRANTY_V2)
    turn = say(client, start(client)["id"], question)
    assert "lifetime" in turn["reply"]["text"] and "ten year" not in turn["reply"]["text"], turn


def test_an_upload_into_an_empty_index_makes_the_assistant_answer(empty_client: TestClient) -> None:
    question = "How long is the frame warranty on a Larkspur sofa?"
    cid = start(empty_client)["id"]
    assert say(empty_client, cid, question)["handoff"]["reason"] == "low_confidence"  # nothing to answer from
    r = empty_client.post("/v1/knowledge/documents", json=WARRANTY_V1, headers=ADMIN)
    assert r.status_code == 201 and r.json()["status"] == "added"
    turn = say(empty_client, start(empty_client)["id"], question)
    assert [c["source_id"] for c in turn["reply"]["citations"]] == [WARRANTY_V1["source_id"]]
