"""Heading-aware chunking with exact character offsets."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest

from knowledge.chunking import chunk_document, sentence_spans, split_sentences
from knowledge.types import Chunk, Document

_HEADING_LINE = re.compile(r"^#{1,6}\s+.*$", re.M)


def make_doc(text: str, title: str = "Returns", source_id: str = "returns/start-a-return") -> Document:
    return Document(source_id=source_id, title=title, url="https://help.example/r", text=text)


def sentences(n: int, words_each: int = 8, prefix: str = "Fact") -> list[str]:
    """n distinct sentences of exactly `words_each` words."""
    fill = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    return [f"{prefix}{i} " + " ".join(fill[: words_each - 2]) + f" end{i}." for i in range(n)]


def words(text: str) -> int:
    return len(text.split())


def assert_offsets_exact(doc: Document, chunks: list[Chunk]) -> None:
    for c in chunks:
        assert 0 <= c.start < c.end <= len(doc.text)
        assert c.text == doc.text[c.start : c.end]


def assert_body_covered(doc: Document, chunks: list[Chunk]) -> None:
    """Every non-space character outside heading lines lies inside some chunk."""
    covered = bytearray(len(doc.text))
    for c in chunks:
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
    headings = bytearray(len(doc.text))
    for m in _HEADING_LINE.finditer(doc.text):
        headings[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
    missing = [i for i, ch in enumerate(doc.text) if not ch.isspace() and not covered[i] and not headings[i]]
    assert missing == [], f"uncovered text: {doc.text[missing[0] : missing[0] + 40]!r}"


STRUCTURED = (
    "# Returns\n"
    "\n"
    "You can return most items within 30 days.\n"
    "\n"
    "## Start a return\n"
    "\n"
    "Go to Account > Orders and choose Return.\n"
    "\n"
    "### By post\n"
    "\n"
    "Print the label and drop the parcel at a post office.\n"
    "\n"
    "## Refunds\n"
    "\n"
    "Refunds reach your card in 3 to 5 working days.\n"
)


def test_headings_path_and_title_not_duplicated() -> None:
    doc = make_doc(STRUCTURED)
    chunks = chunk_document(doc)
    assert [c.headings for c in chunks] == [[], ["Start a return"], ["Start a return", "By post"], ["Refunds"]]
    assert chunks[0].text == "You can return most items within 30 days."
    assert chunks[2].text.startswith("Print the label")
    # heading lines themselves are not part of any chunk's text
    assert all("#" not in c.text for c in chunks)
    assert_offsets_exact(doc, chunks)


def test_h1_different_from_title_is_kept_in_heading_path() -> None:
    doc = make_doc("# Sending things back\n\nPack it well.\n\n## Labels\n\nPrint one.\n", title="Returns")
    chunks = chunk_document(doc)
    assert [c.headings for c in chunks] == [["Sending things back"], ["Sending things back", "Labels"]]


def test_context_text_starts_with_title_then_heading_path() -> None:
    chunks = chunk_document(make_doc(STRUCTURED))
    assert chunks[0].context_text == "Returns\nYou can return most items within 30 days."
    assert chunks[2].context_text.startswith("Returns > Start a return > By post\nPrint the label")
    assert all(c.context_text.startswith("Returns") for c in chunks)


def test_chunk_fields_ids_and_positions() -> None:
    doc = make_doc(STRUCTURED)
    chunks = chunk_document(doc)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert [c.chunk_id for c in chunks] == [f"{doc.source_id}::{i}" for i in range(len(chunks))]
    assert all(c.source_id == doc.source_id and c.title == doc.title and c.url == doc.url for c in chunks)
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


@pytest.mark.parametrize(("max_words", "overlap"), [(10, 0), (25, 5), (40, 15), (160, 30)])
def test_offsets_exact_size_bounded_and_body_covered(max_words: int, overlap: int) -> None:
    long_section = " ".join(sentences(12, 9))
    text = (
        "# Delivery\n\nIntro paragraph about delivery options and costs.\n\n"
        "## Standard\n\n" + long_section + "\n\n"
        "- Item one\n- Item two is here\n- Item three\n\n"
        "## Express (next day)\n\nShort one.\n\n" + "\n\n".join(sentences(6, 7, "Para")) + "\n"
    )
    doc = make_doc(text, title="Delivery")
    chunks = chunk_document(doc, max_words=max_words, overlap_words=overlap)
    assert len(chunks) >= 3
    assert_offsets_exact(doc, chunks)
    assert_body_covered(doc, chunks)
    assert max(words(c.text) for c in chunks) <= max_words
    assert all(not c.text[0].isspace() for c in chunks)  # chunks start at text, not at blank lines


def test_single_unbreakable_unit_is_cut_at_words_and_one_long_word_kept_whole() -> None:
    one_sentence = "Step " + " ".join(f"w{i}" for i in range(45))  # no sentence end: cut at words
    huge_token = "https://help.example/" + "x" * 3000  # one 'word': cannot be cut
    doc = make_doc(f"{one_sentence}\n\n{huge_token}\n", title="Edge")
    chunks = chunk_document(doc, max_words=20, overlap_words=0)
    assert_offsets_exact(doc, chunks)
    assert_body_covered(doc, chunks)
    assert all(words(c.text) <= 20 for c in chunks)
    # 46 words cut 20/20/6; the 6-word tail and the one-word URL paragraph share the last chunk
    assert [words(c.text) for c in chunks] == [20, 20, 7]
    assert chunks[-1].text.rstrip().endswith("\n\n" + huge_token)  # kept whole, not dropped or split mid-token


def test_overlap_between_consecutive_chunks_of_one_long_section() -> None:
    sents = sentences(20, 8)
    doc = make_doc("## Policy\n\n" + "\n\n".join(sents) + "\n", title="Policy doc")
    chunks = chunk_document(doc, max_words=40, overlap_words=16)
    assert len(chunks) >= 4
    assert all(c.headings == ["Policy"] for c in chunks)
    for prev, nxt in pairwise(chunks):
        assert nxt.start < prev.end, "consecutive chunks of one section must overlap"
        assert nxt.start > prev.start, "each chunk must move forward"
        shared = doc.text[nxt.start : prev.end]
        assert 0 < words(shared) <= 16
        assert shared.startswith("Fact")  # overlap is made of whole units (paragraphs/sentences)
    # every sentence is whole in at least one chunk
    for s in sents:
        assert any(s in c.text for c in chunks)


def test_no_overlap_across_sections_and_none_when_overlap_zero() -> None:
    sents = sentences(10, 8)
    doc = make_doc("## A\n\n" + "\n\n".join(sents[:5]) + "\n\n## B\n\n" + "\n\n".join(sents[5:]) + "\n", title="T")
    chunks = chunk_document(doc, max_words=20, overlap_words=0)
    for prev, nxt in pairwise(chunks):
        assert nxt.start >= prev.end
    chunks = chunk_document(doc, max_words=20, overlap_words=10)
    boundary = [(p, n) for p, n in pairwise(chunks) if p.headings != n.headings]
    assert len(boundary) == 1
    prev, nxt = boundary[0]
    assert nxt.start >= prev.end  # a new section starts fresh


def test_deterministic() -> None:
    doc = make_doc(STRUCTURED + "\n" + " ".join(sentences(30, 9)) + "\n")
    a = [c.model_dump() for c in chunk_document(doc, max_words=30, overlap_words=10)]
    b = [c.model_dump() for c in chunk_document(doc.model_copy(), max_words=30, overlap_words=10)]
    assert a == b
    assert len(a) > 3


def test_long_paragraph_without_blank_lines_is_split_at_sentences() -> None:
    sents = sentences(15, 10)  # 150 words, one paragraph
    doc = make_doc("## Refund timelines\n\n" + " ".join(sents) + "\n", title="Refunds")
    chunks = chunk_document(doc, max_words=35, overlap_words=0)
    assert len(chunks) >= 5
    for c in chunks:
        assert words(c.text) <= 35
        assert c.text.rstrip().endswith("."), c.text  # ends at a sentence end
        assert re.match(r"Fact\d+ ", c.text), c.text  # starts at a sentence start
        assert any(c.text.startswith(s) for s in sents)
    assert_body_covered(doc, chunks)


def test_empty_sections_produce_no_chunks() -> None:
    doc = make_doc("# Returns\n\n## Empty\n\n## Also empty\n\n### Real\n\nContent here.\n")
    chunks = chunk_document(doc)
    assert len(chunks) == 1
    assert chunks[0].headings == ["Also empty", "Real"]
    assert chunks[0].text.strip() == "Content here."


# -- sentences ----------------------------------------------------------------------------------------


def test_sentence_spans_offsets_and_trimming() -> None:
    text = "  First one. Second? Third!  4 items left.\nNew line here  "
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["First one.", "Second?", "Third!", "4 items left.", "New line here"]
    assert spans[0] == (2, 12)
    shifted = sentence_spans(text, offset=100)
    assert shifted == [(s + 100, e + 100) for s, e in spans]


def test_sentence_spans_no_split_before_lowercase_or_inside_numbers() -> None:
    text = "Costs are £3.95 per parcel. e.g. small ones cost less. Done."
    assert split_sentences(text) == ["Costs are £3.95 per parcel. e.g. small ones cost less.", "Done."]


def test_sentence_spans_keep_closing_quotes_and_brackets() -> None:
    text = 'See the FAQ (section 2.) Then call us. She said "Thanks!" And left.'
    spans = sentence_spans(text, offset=5)
    assert [text[s - 5 : e - 5] for s, e in spans] == [
        "See the FAQ (section 2.)",
        "Then call us.",
        'She said "Thanks!"',
        "And left.",
    ]


def test_sentence_spans_empty_and_blank() -> None:
    assert sentence_spans("") == []
    assert sentence_spans("   \n\n ") == []
    assert split_sentences("One sentence without end") == ["One sentence without end"]
