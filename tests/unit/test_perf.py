"""The performance benchmarks' own logic (no timings asserted: `cxa bench ingest|ttft|stream` print them)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from assistant.turn.grounding import clean_sentence
from evals.perf.ingest import RawEmbedder, _rounds
from evals.perf.stream import _cpu_seconds, _descendants
from evals.perf.ttft import Written, questions, shown_at, write_all
from evals.simulate import QUESTIONS
from knowledge.embeddings import MiniLMEmbedder
from knowledge.types import Document


def _pieces(*parts: str) -> Iterator[str]:
    yield from parts


def test_write_all_notes_each_sentence_where_the_answer_guard_cuts_it() -> None:
    written = write_all(_pieces("Refunds take ", "5 days [1]. ", "Cards are ", "charged once.", " Then"))
    assert written.complete and written.text == "Refunds take 5 days [1]. Cards are charged once. Then"
    sentences = [s for s, _ in written.sentence_ends_s]
    assert sentences == ["Refunds take 5 days [1].", "Cards are charged once.", "Then"]
    times = [t for _, t in written.sentence_ends_s]
    assert times == sorted(times) and written.ttft_s <= times[0] <= written.total_s


def test_write_all_stops_after_the_sentence_looked_for() -> None:
    closed: list[bool] = []

    def pieces() -> Iterator[str]:
        try:
            yield from ("Hello there. ", "Refunds take 5 days [1]. ", "More text that is never needed. ")
        finally:
            closed.append(True)

    written = write_all(pieces(), until=clean_sentence("Refunds take 5 days [1]."))  # as the guard shows it
    assert not written.complete and closed == [True]
    assert written.text == "Hello there. Refunds take 5 days [1]. "


def test_shown_at_is_the_shown_sentence_for_a_generated_reply_and_the_end_otherwise() -> None:
    w = Written(
        ttft_s=0.1,
        total_s=3.0,
        text="",
        complete=True,
        sentence_ends_s=[("Hi.", 0.5), ("Refunds take 5 days [1].", 1.2), ("Bye.", 2.0)],
    )
    shown = clean_sentence("Refunds take 5 days [1].")  # the first `token` event's text
    assert shown_at(w, shown, "generated") == 1.2
    assert shown_at(w, shown, "extractive") == 3.0  # the guard saw the whole reply first
    assert shown_at(w, "Something else entirely.", "generated") == 3.0


def test_questions_take_each_topic_in_turn() -> None:
    qs = questions(len(QUESTIONS) + 1)
    assert len(qs) == len(set(qs)) == len(QUESTIONS) + 1
    assert {q for q in qs[: len(QUESTIONS)]} == {v[0] for v in QUESTIONS.values()}


def test_rounds_share_out_every_document_once() -> None:
    docs = [Document(source_id=f"d{i}", title=f"D{i}", text="x") for i in range(7)]
    parts = _rounds(docs, 3)
    assert len(parts) == 3 and sorted(d.source_id for p in parts for d in p) == sorted(d.source_id for d in docs)
    assert len(_rounds(docs, 20)) == 7


def test_the_raw_limit_embeds_like_the_embedder() -> None:
    texts = ["How do I reset my password?", " ".join(["Refunds reach your card in five days."] * 20), "Hi"]
    raw = RawEmbedder()
    expected = MiniLMEmbedder().embed(texts)
    for batch_size, max_tokens in ((1, None), (8, None), (64, 64)):
        np.testing.assert_allclose(raw.embed(texts, batch_size, max_tokens), expected, atol=1e-4)


def test_cpu_seconds_of_processes() -> None:
    assert _cpu_seconds([os.getpid()]) > 0
    assert _cpu_seconds([2**31 - 1]) == 0  # gone: counted as nothing
    assert os.getpid() not in _descendants(os.getpid())
