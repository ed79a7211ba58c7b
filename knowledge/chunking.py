"""Heading-aware chunking with exact character offsets.

A document is cut into sections at Markdown headings; each section is packed into chunks of about
`max_words` words from whole paragraphs (a paragraph too long on its own is cut at sentences, a
sentence too long at words). Every chunk keeps its heading path (embedded with it, see
`Chunk.context_text`) and its `[start, end)` offsets into `Document.text`, so a benchmark can tell
whether a chunk overlaps a gold span and a citation can point into the source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge.types import Chunk, Document

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
_PARAGRAPH = re.compile(r"\S(?:.|\n(?!\s*\n))*", re.M)  # runs of text separated by blank lines
# group 1: closing quotes/brackets after the stop, which belong to the sentence they close
_SENTENCE_END = re.compile(r"(?<=[.!?])([\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    words: int


def sentence_spans(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """Sentence boundaries of `text` as `(start, end)` offsets (shifted by `offset`), whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        _append_trimmed(text, pos, m.end(1) if m.start(1) >= 0 else m.start(), spans, offset)
        pos = m.end()
    _append_trimmed(text, pos, len(text), spans, offset)
    return spans


def split_sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


def _append_trimmed(text: str, s: int, e: int, out: list[tuple[int, int]], offset: int) -> None:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if e > s:
        out.append((s + offset, e + offset))


def _units(text: str, start: int, end: int, max_words: int) -> list[Span]:
    """Paragraphs of text[start:end], each cut further when longer than `max_words`."""
    units: list[Span] = []
    for p in _PARAGRAPH.finditer(text, start, end):
        words = len(p.group().split())
        if words <= max_words:
            units.append(Span(p.start(), p.end(), words))
            continue
        for s, e in sentence_spans(p.group(), p.start()):
            sw = len(text[s:e].split())
            if sw <= max_words:
                units.append(Span(s, e, sw))
                continue
            ws = list(_WORD.finditer(text, s, e))
            for i in range(0, len(ws), max_words):
                part = ws[i : i + max_words]
                units.append(Span(part[0].start(), part[-1].end(), len(part)))
    return units


def _pack(units: list[Span], max_words: int, overlap_words: int) -> list[tuple[int, int]]:
    """Greedy packing of consecutive units into windows; a new window repeats the previous one's tail
    units up to `overlap_words` words so that a fact on a boundary is whole in at least one chunk."""
    windows: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j, words = i, 0
        while j < len(units) and (j == i or words + units[j].words <= max_words):
            words += units[j].words
            j += 1
        windows.append((units[i].start, units[j - 1].end))
        if j >= len(units):
            break
        k, back = j, 0
        while k - 1 > i and back + units[k - 1].words <= overlap_words:
            k -= 1
            back += units[k].words
        i = k
    return windows


def chunk_document(doc: Document, max_words: int = 160, overlap_words: int = 30) -> list[Chunk]:
    """Cut `doc` into chunks; deterministic for the same text and parameters."""
    text = doc.text
    # Sections: (heading path, body start, body end)
    sections: list[tuple[list[str], int, int]] = []
    stack: list[tuple[int, str]] = []
    body_start = 0
    for m in _HEADING.finditer(text):
        sections.append(([h for _, h in stack], body_start, m.start()))
        level = len(m.group(1))
        stack = [(lvl, h) for lvl, h in stack if lvl < level]
        if not (level == 1 and m.group(2).strip() == doc.title):  # the title is already in every chunk
            stack.append((level, m.group(2).strip()))
        body_start = m.end()
    sections.append(([h for _, h in stack], body_start, len(text)))

    chunks: list[Chunk] = []
    for headings, s, e in sections:
        units = _units(text, s, e, max_words)
        for ws, we in _pack(units, max_words, overlap_words):
            pos = len(chunks)
            chunks.append(
                Chunk(
                    chunk_id=f"{doc.source_id}::{pos}",
                    source_id=doc.source_id,
                    title=doc.title,
                    url=doc.url,
                    headings=headings,
                    text=text[ws:we],
                    start=ws,
                    end=we,
                    position=pos,
                )
            )
    return chunks
