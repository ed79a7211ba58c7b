"""Handoff summaries: the model-written path (structured output, checked field by field), the extractive
fallback, ROUGE-L, the TweetSumm reader and the summaries benchmark. The chat model is the only thing
faked (it is outside our process): the deterministic fake, or tiny models that return what a weak or
broken model returns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel

from assistant.errors import ModelUnavailableError
from assistant.handoff.summary import (
    HANDOFF_TEXT,
    ModelSummary,
    Summarizer,
    acceptable,
    extractive_summary,
    transcript_for_summary,
)
from assistant.llm import ChatGateway, FakeSupportChatModel, parse_json_reply
from assistant.models import Citation, CustomerContext, Message, utcnow
from assistant.settings import HandoffSettings
from evals.bench.summaries import run_summaries, scored_text
from evals.datasets import clean_tweet, tweetsumm_dialogues
from evals.rouge import lcs_length, rouge_l, rouge_l_multi, rouge_tokens
from tests.conftest import make_settings
from tests.fakes import FakeChatModel


def conversation(*turns: tuple[str, str]) -> list[Message]:
    now = utcnow()
    return [
        Message(id=str(i), conversation_id="c", seq=i, role=role, text=text, created_at=now)  # type: ignore[arg-type]
        for i, (role, text) in enumerate(turns)
    ]


SOFA = conversation(
    ("customer", "My sofa arrived with a torn cushion cover."),
    ("assistant", "You can report damaged items within 14 days for a free repair or replacement."),
    ("customer", "I want a replacement cover, not a repair."),
)


def summarizer(model: BaseChatModel, **settings: Any) -> Summarizer:
    return Summarizer(ChatGateway(model, "custom", "test"), HandoffSettings(**settings), "Larkspur Home")


def test_the_model_writes_the_prose_and_the_code_keeps_the_facts() -> None:
    written = {
        "issue": "The sofa arrived with a torn cushion cover.",
        "customer_goal": "Wants a replacement cushion cover.",
        "attempted": "The assistant explained damaged items can be repaired or replaced within 14 days.",
        "suggested_next_step": "Send a replacement cushion cover for the sofa.",
    }
    model = FakeChatModel(reply="Here you go: " + json.dumps(written))
    summary, source = summarizer(model).summarize(SOFA, CustomerContext(), "customer_request")
    assert source == "model"
    assert summary.issue == written["issue"] and summary.customer_goal == written["customer_goal"]
    assert summary.suggested_next_step == written["suggested_next_step"]
    # the model's line first, then what the assistant actually said (the code's record, with sources)
    assert summary.attempted[0] == written["attempted"]
    assert summary.attempted[1].startswith("You can report damaged items")
    assert summary.sentiment == "neutral" and summary.effort == 1.5
    # asked for structured output: the schema of the fields, and a token limit
    options = model.calls[-1].options
    assert options["json_schema"]["required"] == list(ModelSummary.model_fields)
    assert options["max_tokens"] == HandoffSettings().summary_max_tokens


@pytest.mark.parametrize(
    "reply",
    [
        "I'm sorry, I can't help with that.",  # no JSON
        '{"issue": "sofa"',  # cut off
        '{"issue": "The sofa cover is torn."}',  # fields missing
        json.dumps(  # placeholders and loops for the fields that report the conversation
            {
                "issue": "The customer's problem.",
                "customer_goal": "refund refund refund now refund refund refund now refund refund refund now",
                "attempted": "<insert>",
                "suggested_next_step": "Apologise.",
            }
        ),
        json.dumps(  # fluent but not about this conversation
            {
                "issue": "Customer's new blender stopped working after two days.",
                "customer_goal": "Wants a refund for the blender from the store.",
                "attempted": "Agent asked where the blender was bought.",
                "suggested_next_step": "Arrange a blender refund.",
            }
        ),
    ],
)
def test_a_weak_or_broken_model_falls_back_to_the_extractive_summary(reply: str) -> None:
    summary, source = summarizer(FakeChatModel(reply=reply)).summarize(SOFA, CustomerContext(), "low_confidence")
    assert source == "extractive"
    assert summary == extractive_summary(SOFA, CustomerContext(), "low_confidence")


def test_fields_are_checked_one_by_one() -> None:
    said = {"sofa", "arrive", "torn", "cushi", "cover", "repla", "repai"}
    assert acceptable("issue", "The sofa arrived with a torn cushion cover.", said)
    assert not acceptable("issue", "The customer's problem", said)
    assert not acceptable("issue", "Blender broke after two days.", said)
    assert not acceptable("issue", "torn cover", said), "too short"
    assert acceptable("suggested_next_step", "Send a replacement cover by courier today.", said)
    assert not acceptable("suggested_next_step", "Arrange a blender refund by email.", said)


def test_no_model_call_when_the_model_is_what_failed_or_it_is_switched_off() -> None:
    model = FakeChatModel(reply="{}")
    assert summarizer(model).summarize(SOFA, CustomerContext(), "error")[1] == "extractive"
    assert summarizer(model, summary="extractive").summarize(SOFA, CustomerContext(), "low_confidence")[1] == (
        "extractive"
    )
    assert model.calls == []


def test_a_provider_failure_falls_back() -> None:
    failing = FakeChatModel(reply=TimeoutError("read timed out"))
    summary, source = summarizer(failing).summarize(SOFA, CustomerContext(), "low_confidence")
    assert source == "extractive" and summary.issue == "My sofa arrived with a torn cushion cover."


def test_the_fake_model_answers_structured_requests_from_the_transcript() -> None:
    summary, source = summarizer(FakeSupportChatModel()).summarize(SOFA, CustomerContext(), "low_confidence")
    assert source == "model"
    assert summary.issue == "My sofa arrived with a torn cushion cover."
    assert summary.customer_goal == "I want a replacement cover, not a repair."


def test_transcript_keeps_the_newest_messages_within_the_budget() -> None:
    messages = conversation(
        ("customer", "old " * 30),
        ("assistant", HANDOFF_TEXT),
        ("agent", "Agent here, how can I help?"),
        ("customer", "new question about my order"),
    )
    text = transcript_for_summary(messages, max_words=12)
    assert text == "Agent: Agent here, how can I help?\nCustomer: new question about my order"


def test_extractive_summary_lists_agent_replies_and_cited_answers() -> None:
    cite = Citation(chunk_id="k", doc_id="d", source_id="s", title="Damaged items", url=None, snippet="x", score=0.7)
    messages = conversation(("customer", "Torn cover"), ("assistant", "Report it within 14 days."), ("agent", "Sent."))
    messages[1].citations = [cite]
    summary = extractive_summary(messages, CustomerContext(), "low_confidence")
    assert summary.attempted == ["Report it within 14 days. (sources: Damaged items)", "Agent: Sent."]


def test_parse_json_reply_takes_the_first_object() -> None:
    got = parse_json_reply(
        'Sure! {"issue": "a", "customer_goal": "b", "attempted": "c", "suggested_next_step": "d"} ok', ModelSummary
    )
    assert got.issue == "a"
    with pytest.raises(ModelUnavailableError):
        parse_json_reply("[]", ModelSummary)


# -- ROUGE-L --------------------------------------------------------------------------------------


def test_rouge_l_by_hand() -> None:
    assert rouge_tokens("Customer's iPhone-X, late!") == ["customer", "s", "iphone", "x", "late"]
    assert lcs_length(["a", "b", "c", "d"], ["a", "c", "b", "d"]) == 3
    s = rouge_l("the cat sat on the mat", "the cat was on the mat")  # LCS = the cat on the mat = 5 of 6
    assert s.precision == pytest.approx(5 / 6) and s.recall == pytest.approx(5 / 6) and s.f1 == pytest.approx(5 / 6)
    s = rouge_l("refund delayed", "the refund for my order was delayed by a week")  # 2 of 2, 2 of 10
    assert s.precision == 1.0 and s.recall == pytest.approx(0.2) and s.f1 == pytest.approx(2 * 0.2 / 1.2)
    assert rouge_l("", "anything").f1 == 0.0
    assert rouge_l_multi("refund delayed", ["nothing alike", "refund delayed"]).f1 == 1.0


# -- TweetSumm and the benchmark -----------------------------------------------------------------


def test_clean_tweet() -> None:
    assert clean_tweet("@AmazonHelp @115821 Wow, only 2 showed up. https://t.co/x") == "Wow, only 2 showed up."
    assert clean_tweet("@258930 Sorry about that, please DM us. ^MG") == "Sorry about that, please DM us."
    assert clean_tweet("@Delta We are looking into it -JD") == "We are looking into it"


@pytest.fixture
def tweetsumm(tmp_path: Path) -> Path:
    rows = [
        {
            "conversation_id": "d1",
            "turns": [
                {"speaker": "customer", "text": "@Shop my parcel never arrived and tracking is stuck"},
                {"speaker": "agent", "text": "@123 Sorry! Please DM us your order number ^AB"},
                {"speaker": "customer", "text": "@Shop done, I just want my parcel"},
            ],
            "abstractive_summaries": ["Customer's parcel never arrived. Agent asked for the order number."],
        },
        {"conversation_id": "d2", "turns": [{"speaker": "customer", "text": "hi"}], "abstractive_summaries": []},
    ]
    folder = tmp_path / "data" / "tweetsumm"
    folder.mkdir(parents=True)
    (folder / "dialogues_dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return tmp_path / "data"


def test_tweetsumm_reader_skips_dialogues_without_summaries(tweetsumm: Path) -> None:
    [d] = tweetsumm_dialogues(tweetsumm)
    assert d.turns[1] == ("agent", "Sorry! Please DM us your order number")


def test_summaries_benchmark_reports_rouge_for_model_and_fallback(tweetsumm: Path, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "cxa")
    steps: list[int] = []
    result = run_summaries(settings, tweetsumm, progress=lambda _s, i, _n: steps.append(i))
    assert result.dialogues == 1 and steps == [1]
    assert result.model_written == 1.0 and result.model == "fake:fake-support"
    # fake model: issue = first customer line, goal = last, attempted = the agent's line
    text = (
        "my parcel never arrived and tracking is stuck done, I just want my parcel "
        "Sorry! Please DM us your order number"
    )
    expected = rouge_l(text, "Customer's parcel never arrived. Agent asked for the order number.").f1
    assert result.summary.rouge_l_f1 == pytest.approx(expected)
    assert 0 < result.extractive.rouge_l_f1 <= 1 and result.supported_words == 1.0


def test_scored_text_is_what_the_agent_reads_first() -> None:
    summary = extractive_summary(SOFA, CustomerContext(), "low_confidence")
    assert scored_text(summary).startswith("My sofa arrived with a torn cushion cover. I want a replacement cover")


def test_a_summary_slower_than_its_timeout_falls_back() -> None:
    slow = FakeChatModel(reply='{"issue": "The sofa cover is torn."}' * 4, token_delay_s=0.05)
    summary, source = summarizer(slow, summary_timeout_s=0.12).summarize(SOFA, CustomerContext(), "low_confidence")
    assert source == "extractive" and summary.issue == "My sofa arrived with a torn cushion cover."
