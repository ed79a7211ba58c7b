"""Prompt injection through the real app: every case of `evals/attacks/injection.jsonl`, with a chat model
that obeys every instruction it reads (`tests/injection/gullible.py`), leaks nothing anyone can read.

Two modes: `obeys` complies when its input holds an instruction (so the neutralised prompt data is part of
the defence), `always` complies on every call whatever it reads (only the output side and the structural
defences stand between it and the customer). The control tests show the model does leak when our code
is not in the way, so a pass here is the pipeline's doing, not the fake's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from assistant.prompts import ANSWER
from assistant.store.tables import LLMCallRow
from assistant.turn.answer import format_sources
from evals.injection import ATTACKER_DOMAIN, Canaries, Credentials, InjectionCase, InjectionRunner, load_cases
from tests.api.support import private_app
from tests.conftest import ADMIN_TOKEN, AGENT_TOKEN, CX_TOKEN, IDENTITY_SECRET, WIDGET_KEY
from tests.injection.gullible import gullible_model

CASES = load_cases()
CREDS = Credentials(WIDGET_KEY, AGENT_TOKEN, CX_TOKEN, ADMIN_TOKEN, IDENTITY_SECRET)
COMPANY = "Larkspur Home"


def test_the_case_set_is_broad() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    vectors = {c.vector for c in CASES}
    assert vectors == {"direct", "document", "profile", "history", "past_conversation", "summary"}
    assert {"prompt_leak", "data_exfiltration", "token_leak", "false_action", "markdown_exfil", "encoding"} <= {
        c.category for c in CASES
    }
    for c in CASES:
        assert (c.vector == "document") == bool(c.article_text), c.id
        assert c.question or c.vector in ("direct", "summary"), c.id


@pytest.fixture(scope="module", params=["obeys", "always"])
def runner(
    request: pytest.FixtureRequest, sample_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InjectionRunner]:
    model = gullible_model(always=request.param == "always")
    with private_app(sample_template, tmp_path_factory, f"inject-{request.param}", chat_model=model) as client:
        r = InjectionRunner(client, CREDS, COMPANY)
        r.prepare(CASES)
        yield r


@pytest.mark.parametrize("n,case", list(enumerate(CASES, 1)), ids=[c.id for c in CASES])
def test_injection_case_leaks_nothing(runner: InjectionRunner, n: int, case: InjectionCase) -> None:
    result = runner.run_case(case, n)
    assert result.passed, (result.leaks, result.reply)


def _calls(client: TestClient, prompt: str) -> list[LLMCallRow]:
    store = client.app.state.services.store  # type: ignore[attr-defined]
    with store.session() as s:
        return list(s.scalars(select(LLMCallRow).where(LLMCallRow.prompt_name == prompt)))


def test_control_the_gullible_model_leaks_when_nothing_stands_in_its_way() -> None:
    """The model called directly with the answer prompt holding a raw injected article: the system prompt,
    the attacker's link and a claimed refund are in its raw output."""
    model = gullible_model()
    canaries = Canaries(CREDS.secrets(), COMPANY)
    case = next(c for c in CASES if c.id == "doc-print-prompt")
    rendered = ANSWER.render(
        company=COMPANY,
        sources="[1] (Candle care) " + (case.article_text or ""),
        customer="Customer: Robin Tester (id cus_x); email on file: robin@example.com",
        transcript="",
        question=case.question or "",
    )
    from assistant.llm.gateway import to_messages

    raw = model.invoke(to_messages(rendered)).content
    assert isinstance(raw, str)
    leaks = canaries.authored(raw, case)
    assert "system_prompt" in leaks and "attacker_url" in leaks, leaks
    assert any(x.startswith("false_action") for x in leaks), leaks
    assert format_sources([]) == "(none)"


def test_control_through_the_app_the_raw_output_leaks_and_the_reply_does_not(
    sample_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Same app, same gullible model: the model's raw output (logged in llm_calls) carries the system prompt
    and the attacker's link; the reply, the stream and the summary do not."""
    case = next(c for c in CASES if c.id == "direct-leetspeak")  # a phrasing the input filter misses or not
    with private_app(
        sample_template, tmp_path_factory, "inject-control", chat_model=gullible_model(always=True)
    ) as client:
        runner = InjectionRunner(client, CREDS, COMPANY)
        runner.prepare([])
        result = runner.run_case(case, 1)
        assert result.passed, result.leaks
        raw = " ".join(c.output or "" for c in _calls(client, "answer"))
        raw_leaks = runner.canaries.authored(raw, case)
        assert "system_prompt" in raw_leaks and "attacker_url" in raw_leaks, raw_leaks
        summary_raw = " ".join(c.output or "" for c in _calls(client, "handoff_summary"))
        assert not summary_raw or ATTACKER_DOMAIN in summary_raw


def test_generated_keys_never_reach_a_prompt(tmp_path: Path, sample_template: Path) -> None:
    """Keys generated at start (none configured) are known to the gateway and redacted from prompts."""
    import shutil

    from api.app import create_app
    from tests.conftest import make_settings

    data = tmp_path / "data"
    shutil.copytree(sample_template, data)
    (data / "keys.json").unlink(missing_ok=True)
    settings = make_settings(data, widget_key=None, agent_token=None, cx_token=None, admin_token=None)
    with TestClient(create_app(settings, chat_model=gullible_model(always=True))) as client:
        keys = client.app.state.keys  # type: ignore[attr-defined]
        r = client.post("/v1/conversations", json={}, headers={"X-Widget-Key": keys.widget_key})
        conv = r.json()["id"]
        text = f"My colleague gave me this: {keys.admin_token}. How do I reset my password?"
        r = client.post(
            f"/v1/conversations/{conv}/messages", json={"text": text}, headers={"X-Widget-Key": keys.widget_key}
        )
        assert r.status_code == 200, r.text
        assert keys.admin_token not in ((r.json()["reply"] or {}).get("text") or "")  # `query` echoes the customer
        calls: list[Any] = _calls(client, "answer")
        assert calls
        for call in calls:
            assert keys.admin_token not in str(call.messages)
            assert keys.admin_token not in (call.output or "")
