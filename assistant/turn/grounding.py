"""Grounding: is a generated sentence supported by the retrieved passages (or the customer's own
history)? And, when nothing generated is, the extractive answer that quotes the best passage.

This check does not trust the generator: it compares each sentence with the source sentences
using the offline embedding model (meaning) and content-word precision (the sentence's words must
be in the source), and it requires every number in the sentence (prices, days, dates) to appear
in the supporting source. Citations are attributed here, from the supporting chunk, not from the
`[n]` marks a small model writes (often wrong).
"""

from __future__ import annotations

import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from assistant.models import Chunk, Citation, SearchHit
from assistant.turn.quotes import QUOTE_FEATURES, answer_types, rarity, score_candidates, states_type
from knowledge.chunking import sentence_spans, split_sentences
from knowledge.embeddings import MiniLMEmbedder
from knowledge.retriever import tokenize
from knowledge.textvectors import TextVectorStore

MIN_NOVEL_WORDS = 2  # a shown sentence must say at least this many things the question did not
MIN_WORDS = 3  # a source sentence or list item shorter than this is neither support nor quoted, nor embedded
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_MARKERS = re.compile(r"\[\s*\d+(?:\s*,\s*\d+)*\s*\]|^\s*(?:[-*•]|\d+[.)])\s+")
_ABSTAIN = re.compile(
    r"\b(i (?:do not|don't|dont) know|i(?: am|'m) not sure|(?:cannot|can't|could not|couldn't) (?:find|answer|help)"
    r"|no information|not (?:mentioned|covered) in|sources? (?:do|does) not)\b",
    re.I,
)


_BRACKETED = re.compile(r"\[([^\]\d][^\]]*)\](?!\()")


def clean_sentence(text: str) -> str:
    """Drop citation marks and list bullets a model writes, unwrap "[Larkspur Home]"-style brackets
    (a link without its address); collapse spaces."""
    return " ".join(_BRACKETED.sub(r"\1", _MARKERS.sub(" ", text)).split()).strip()


def is_abstention(text: str) -> bool:
    return bool(_ABSTAIN.search(text))


@dataclass
class SentenceSupport:
    sentence: str
    support: float
    relevance: float
    source: int | None  # index into Passages.hits; None = supported by the customer's history
    source_sentence: str
    numbers_ok: bool

    @property
    def from_history(self) -> bool:
        return self.source is None


class SentenceVectors:
    """Embeds sentences through a bounded cache: the same help-center sentences come back turn after turn, and
    embedding them again was most of a turn's own (non-model) time.

    Texts of the knowledge (`persist=True`: the sentences, list items and titles of retrieved chunks, see
    `chunk_texts`) are also looked up in `store`, the vectors kept on disk for every worker of the machine
    (`knowledge.textvectors`, filled after ingest by `assistant.turn.warming`), with one read for all the texts the
    cache misses; what had to be embedded is written back there off the turn's path. Other texts (a customer's
    messages, their record, a generated answer) stay in this process's memory only."""

    def __init__(self, embedder: MiniLMEmbedder, max_items: int = 50_000, store: TextVectorStore | None = None) -> None:
        self.embedder = embedder
        self.max_items = max_items
        self.store = store
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        # texts asked for, by where their vectors came from: memory, store, embedded (knowledge: then stored),
        # "embedded (in memory only)" (everything else)
        self.counts: Counter[str] = Counter()

    def embed(self, texts: list[str], persist: bool = False) -> np.ndarray:
        """Unit vectors of `texts` in order. `persist`: the texts come from the knowledge and may be read from and
        written to the persistent store."""
        unique = dict.fromkeys(texts)
        where = "embedded" if persist else "embedded (in memory only)"
        with self._lock:
            missing = [t for t in unique if t not in self._cache]
        # what the embedder has just embedded (the customer's earlier messages, this turn's question) is not
        # embedded again
        known = {t: v for t in missing if (v := self.embedder.recent(t)) is not None}
        in_memory = len(unique) - len(missing) + len(known)
        missing = [t for t in missing if t not in known]
        stored: dict[str, np.ndarray] = {}
        if missing and persist and self.store is not None:
            stored = self.store.get(missing)
            known.update(stored)
            missing = [t for t in missing if t not in stored]
        if missing:
            fresh = dict(zip(missing, self.embedder.embed(missing), strict=True))
            known.update(fresh)
            if persist and self.store is not None:
                self.store.put_later(fresh)
        with self._lock:
            self.counts.update({"memory": in_memory, "store": len(stored), where: len(missing)})
            if known:
                self._cache.update(known)
                while len(self._cache) > self.max_items:
                    self._cache.popitem(last=False)
        with self._lock:
            out = []
            for t in texts:
                v = self._cache.get(t)
                if v is None:  # evicted between the two locks by a concurrent turn: embed it again
                    v = self.embedder.embed_one(t)
                else:
                    self._cache.move_to_end(t)
                out.append(v)
        return np.stack(out) if out else np.zeros((0, 384), dtype=np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        """From the cache when the text is there (a model quoting a source sentence), else the embedder's
        own (which keeps a turn's question from being embedded once per step)."""
        with self._lock:
            v = self._cache.get(text)
        return v if v is not None else self.embedder.embed_one(text)


@dataclass
class Passages:
    """The sources of one turn, split into sentences and embedded once."""

    hits: list[SearchHit]
    history: str
    embedder: SentenceVectors
    question: str
    message: str | None = None  # the customer's own words, when `question` is a search query built with context
    facts: list[str] = field(default_factory=list)  # history lines that may be quoted (account events)
    exclude: Callable[[str], bool] | None = (
        None  # sentences that are neither support nor quotable (assistant.safety.guard)
    )
    sentences: list[str] = field(default_factory=list)
    owners: list[int | None] = field(default_factory=list)
    _vectors: np.ndarray | None = None
    _qvec: np.ndarray | None = None
    extractive_relevance: float = 0.0  # similarity of the last extractive quote's lead sentence to the question
    _sentence_tokens: list[set[str]] = field(default_factory=list)
    _question_tokens: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._units: list[list[_Unit]] = []  # per hit: its sentences and list items in order (for quoting)
        self._unit_of: dict[int, tuple[int, int]] = {}  # sentence index -> (hit, unit index)
        for i, h in enumerate(self.hits):
            units = _units(h.chunk.text)
            self._units.append(units)
            for u, unit in enumerate(units):
                s = unit.text
                if _embedded(s) and not (self.exclude is not None and self.exclude(s)):
                    self._unit_of[len(self.sentences)] = (i, u)
                    self.sentences.append(s)
                    self.owners.append(i)
                elif self.exclude is not None and self.exclude(s):
                    unit.refused = True
        self._from_hits = len(self.sentences)  # the sources' sentences come first, then the customer's history lines
        self._quotable: set[int] = set()
        facts = {f.strip(" -") for f in self.facts}
        for line in self.history.splitlines():
            line = line.strip(" -")
            if self.exclude is not None and self.exclude(line):
                continue
            if len(line.split()) >= 3 and not line.endswith(":"):  # section headers are not facts
                if line in facts:
                    self._quotable.add(len(self.sentences))
                self.sentences.append(line)
                self.owners.append(None)
        self._sentence_tokens = [set(tokenize(t)) | _numbers(t) for t in self.sentences]
        self._question_tokens = set(tokenize(self.question))

    @property
    def vectors(self) -> np.ndarray:
        if self._vectors is None:
            self._qvec = self.embedder.embed_one(self.question)
            n = self._from_hits
            sources = self.embedder.embed(self.sentences[:n], persist=True)  # the knowledge's: stored after ingest
            rest = self.sentences[n:]
            self._vectors = np.vstack([sources, self.embedder.embed(rest)]) if rest else sources
        return self._vectors

    @property
    def question_vector(self) -> np.ndarray:
        _ = self.vectors
        assert self._qvec is not None
        return self._qvec

    def support(self, sentence: str, vector: np.ndarray | None = None) -> SentenceSupport:
        """How well one source supports `sentence` (0..1): half meaning (cosine with the closest source
        sentence), half precision of the sentence's *new* words (those not already in the question) within
        that sentence and its neighbours. A sentence that only restates the question ("I can return it as a
        Plus member") adds nothing and scores 0; a figure absent from the source caps the score at 0.3."""
        s = clean_sentence(sentence)
        vec = self.embedder.embed_one(s) if vector is None else vector
        relevance = float(np.dot(vec, self.question_vector))
        nums = _numbers(s)
        novel = set(tokenize(s)) - self._question_tokens
        if not self.sentences or len(novel) < MIN_NOVEL_WORDS:
            return SentenceSupport(s, 0.0, relevance, None, "", not nums)
        sims = self.vectors @ vec
        best: SentenceSupport | None = None
        for j in np.argsort(-sims)[:8]:
            j = int(j)
            owner = self.owners[j]
            window = [i for i in (j - 1, j, j + 1) if 0 <= i < len(self.sentences) and self.owners[i] == owner]
            pool: set[str] = set()
            for i in window:
                pool |= self._sentence_tokens[i]
            precision = len(novel & pool) / len(novel)
            numbers_ok = nums <= pool
            score = 0.5 * max(0.0, float(sims[j])) + 0.5 * precision
            if not numbers_ok:
                score = min(score, 0.3)  # an invented figure is never supported
            if best is None or score > best.support:
                best = SentenceSupport(s, score, relevance, owner, self.sentences[j], numbers_ok)
        assert best is not None
        return best

    def focused(self, max_words: int, n_hits: int) -> list[str]:
        """For each of the first `n_hits` chunks, its sentences most similar to the question within
        `max_words`, in their original order: a short prompt that keeps what matters."""
        sims = self.vectors @ self.question_vector if self.sentences else np.zeros(0)
        out = []
        for h in range(min(n_hits, len(self.hits))):
            idx = [i for i, o in enumerate(self.owners) if o == h]
            chosen: list[int] = []
            words = 0
            for i in sorted(idx, key=lambda i: -sims[i]):
                n = len(self.sentences[i].split())
                if words + n > max_words and chosen:
                    continue
                chosen.append(i)
                words += n
            out.append(" ".join(self.sentences[i] for i in sorted(chosen)) or self.hits[h].chunk.text)
        return out

    def extractive(
        self,
        max_sentences: int = 2,
        said: list[str] | None = None,
        scorer: Callable[[np.ndarray], np.ndarray] = score_candidates,
    ) -> tuple[str, list[int]]:
        """Quote what best answers the question, as a person would: the help-center sentence the quote scorer
        ranks first (`assistant.turn.quotes`: meaning, shared and rare words, headings, the chunk's rank, where
        the sentence stands), widened to a clean, contiguous span (`quote_span`): whole sentences, a sentence
        that starts mid-thought ("This reverses the change") with the one before it, a list item with its whole
        list and the line that introduces it. A line of the customer's own records wins when it matches better
        ("where is my order?"); it is quoted as such, without citation. Returns the text and the indexes of the
        cited hits. `scorer` ranks the candidates' feature rows (the shipped model; benchmarks pass others)."""
        if not self.sentences:
            return "", []
        qwords = self._question_tokens
        sims = self.vectors @ self.question_vector

        def plain(i: int) -> float:  # meaning and shared words: how a record line competes with a source sentence
            return 0.7 * float(sims[i]) + 0.3 * len(self._quote_tokens(i) & qwords) / max(1, len(qwords))

        already = " ".join(said or [])
        # An identifier in the question (an order number, a ticket id) decides which records can answer it.
        ids = {t for t in qwords if len(t) >= 4 and any(ch.isdigit() for ch in t)}
        # A record line is quoted only for a question that names it (an order number): "how long do refunds take
        # to reach my card?" is the help center's to answer (the customer's own record: `assistant.account`).
        records = [i for i in self._quotable if self.sentences[i] not in already and ids & self._sentence_tokens[i]]
        candidates, features = self.quote_candidates(said)
        best: int | None = None
        scored: dict[int, float] = {}
        if candidates:
            scores = scorer(features)
            best = candidates[int(np.argmax(scores))]
            hit = self._unit_of[best][0]
            scored = {
                self._unit_of[i][1]: float(v)
                for i, v in zip(candidates, scores, strict=True)
                if self._unit_of[i][0] == hit
            }
        record = max(records, key=plain) if records else None
        if record is not None and (best is None or plain(record) > plain(best)):
            self.extractive_relevance = float(sims[record])
            return "From your account: " + self.sentences[record].lstrip("- "), []
        if best is None:
            return "", []
        self.extractive_relevance = float(sims[best])
        hit, unit = self._unit_of[best]
        return quote_span(self._units[hit], unit, max_sentences, scored, _heading(self.hits[hit].chunk)), [hit]

    def extractive_each(self, max_sentences: int = 2, said: list[str] | None = None) -> tuple[str, list[int]]:
        """`extractive`, for each question of a message that asks two ("can a friend collect it, and how long
        do I have?"): a quote per question, in the order asked, when they differ (one quote otherwise)."""
        parts = split_questions(self.message or self.question)  # the questions the customer asked, not the context
        text, owners = self.extractive(max_sentences, said)
        if len(parts) < 2 or not text:
            return text, owners
        quotes: list[str] = []
        cited: list[int] = []
        for part in parts:
            sub = Passages(hits=self.hits, history="", embedder=self.embedder, question=part, exclude=self.exclude)
            q, o = sub.extractive(max_sentences, said)
            if q and not any(q in other or other in q for other in quotes):
                quotes.append(q)
                cited += [i for i in o if i not in cited]
        if len(quotes) < 2:
            return text, owners
        return "\n\n".join(quotes), cited

    def quote_candidates(self, said: list[str] | None = None) -> tuple[list[int], np.ndarray]:
        """The help-center sentences that may anchor a quote (not a title line, not already said in this
        conversation) and their `QUOTE_FEATURES`, a row each."""
        already = " ".join(said or [])
        candidates = [i for i in self._unit_of if self.sentences[i] not in already and not self._is_title(i)]
        if not candidates:
            return [], np.zeros((0, len(QUOTE_FEATURES)))
        sims = self.vectors @ self.question_vector
        qwords = self._question_tokens
        n = len(self.sentences)
        df: dict[str, int] = {}
        for toks in self._sentence_tokens:
            for t in toks & qwords:
                df[t] = df.get(t, 0) + 1
        weight = {t: rarity(df.get(t, 0), n) for t in qwords}
        total = sum(weight.values()) or 1.0
        # A list item means what its lead-in says of it ("Time after we issue the refund, by payment method:" +
        # "- PayPal: 3-5 business days."): it is compared with the question together with that line too.
        leads: dict[int, str] = {}
        for i in candidates:
            hit, u = self._unit_of[i]
            lead = _lead_in(self._units[hit], u, page_title(self.hits[hit].chunk))
            if lead is not None:
                leads[i] = lead
        sims = sims.astype(np.float64, copy=True)
        if leads:
            in_context = self.embedder.embed(list(leads.values()), persist=True) @ self.question_vector
            for (i, _), v in zip(leads.items(), in_context, strict=True):
                sims[i] = max(float(sims[i]), float(v))
        top = max(float(sims[i]) for i in candidates)
        index_of = {where: i for i, where in self._unit_of.items()}
        kinds = answer_types(self.question)
        rows = []
        for i in candidates:
            hit, u = self._unit_of[i]
            unit = self._units[hit][u]
            words = self._quote_tokens(i) & qwords
            prev = index_of.get((hit, u - 1)) if u > 0 else None
            before = self._units[hit][u - 1] if u > 0 else None
            first = before is None or before.block != unit.block or before.heading
            rows.append(
                [
                    float(sims[i]),
                    float(sims[i]) - top,
                    len(words) / max(1, len(qwords)),
                    sum(weight[t] for t in words) / total,
                    len((self._context_tokens(i) - self._sentence_tokens[i]) & qwords) / max(1, len(qwords)),
                    1.0 / (1 + hit),
                    float(self.hits[hit].score),
                    float(first),
                    float(sims[prev]) if prev is not None else 0.0,
                    float(before is not None and before.text.rstrip().endswith("?")),
                    float(unit.text.rstrip().endswith("?")),
                    min(1.0, len(unit.text.split()) / 40),
                    float(unit.item),
                    float(unit.text.rstrip().endswith(":")),
                    float(bool(_META.search(unit.text))),
                    float(first and bool(_LEANS_BACK.match(unit.text))),
                    # within the page retrieval ranked first: choosing the page is retrieval's (and the
                    # conversation's) call, not this feature's
                    float(
                        bool(kinds)
                        and self.hits[hit].chunk.source_id == self.hits[0].chunk.source_id
                        and states_type(self._quoted_with(i, leads.get(i, unit.text)), kinds)
                    ),
                ]
            )
        return candidates, np.asarray(rows, dtype=np.float64)

    def unit_span(self, i: int) -> tuple[int, int, int]:
        """(hit, start, end) of sentence `i` in its chunk's document (offsets into `Document.text`)."""
        hit, u = self._unit_of[i]
        unit, chunk = self._units[hit][u], self.hits[hit].chunk
        return hit, chunk.start + unit.start, chunk.start + unit.end

    def _quote_tokens(self, i: int) -> set[str]:
        """The words sentence `i` would be quoted with: a line introducing a list ("While the order is still
        Processing you can:") stands for its items too."""
        items = self._quoted_items(i)
        return self._sentence_tokens[i] | set(tokenize(items)) if items else self._sentence_tokens[i]

    def _quoted_with(self, i: int, text: str) -> str:
        """`text` (sentence `i`, or a list item with its lead-in) with what a quote anchored on it brings along: the
        list it introduces, or the next sentence of its paragraph."""
        items = self._quoted_items(i)
        if items:
            return f"{text} {items}"
        hit, u = self._unit_of[i]
        units = self._units[hit]
        after = units[u + 1] if u + 1 < len(units) else None
        if after is not None and after.block == units[u].block and not after.heading and not after.item:
            return f"{text} {after.text}"
        return text

    def _quoted_items(self, i: int) -> str:
        """The items of the list sentence `i` introduces (it is quoted with them), else ""."""
        where = self._unit_of.get(i)
        if where is None or not self.sentences[i].rstrip().endswith(":"):
            return ""
        hit, u = where
        block = self._units[hit][u].block
        return " ".join(x.text for x in self._units[hit] if x.block == block and x.item)

    def _is_title(self, i: int) -> bool:
        where = self._unit_of.get(i)
        return where is not None and self._units[where[0]][where[1]].heading

    def _context_tokens(self, i: int) -> set[str]:
        """The words of the headings above sentence `i`: its chunk's heading path and a title line in its block."""
        where = self._unit_of.get(i)
        if where is None:
            return set()
        hit, u = where
        units = self._units[hit]
        titles = [x.text for x in units if x.heading and x.block == units[u].block]
        return set(tokenize(" ".join([*self.hits[hit].chunk.headings, *titles])))


@dataclass
class _Unit:
    """One sentence or list item of a chunk, as written (list marker and Markdown kept)."""

    text: str
    item: bool  # a list item ("- ...", "1. ...")
    block: int  # paragraphs and lists are blocks; a line ending in ":" belongs to the list that follows it
    start: int = 0  # [start, end) in the chunk's text
    end: int = 0
    refused: bool = False  # the output guard refuses it: never quoted
    heading: bool = False  # a title line inside the text ("1. Forgetting to Update Address"): context, not an answer


_BARE_NUMBER = re.compile(r"^\s*\d{1,2}[.)]$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+\S")
# Openers that lean on the sentence before: "This reverses the change", "It's valid for 24 hours".
_LEANS_BACK = re.compile(
    r"^(?:this|that|these|those|it|its|it's|they|them|their|there|he|she|such|however|but|also|and|so|then"
    r"|otherwise|instead|if so|if not|in that case|in this case|once (?:that|this|it)|after that|as a result)\b",
    re.I,
)
# A sentence about the page rather than the answer: "This article also explains...", "the steps below".
_META = re.compile(
    r"\b(?:this|the following) (?:article|page|guide|section)\b|\b(?:see|read) our (?:article|guide|page)\b"
    r"|\bthe (?:steps|table|options|list) below\b|\bexplained below\b|\bhere(?:'s| is) (?:how|what|when|where)\b",
    re.I,
)
_NUMBERED = re.compile(r"^\s*\d{1,2}[.)]\s")
MAX_QUOTE_WORDS = 90
MAX_LIST_ITEMS = 8
ITEM_MARGIN = 0.06  # items of a bulleted list scoring within this of the best one are quoted with it


def _units(text: str) -> list[_Unit]:
    """The sentences and list items of `text` in order, grouped into blocks (paragraphs; lists with the line that
    introduces them). A short line without a stop, standing above prose ("1. Forgetting to Update Address"), is a
    title: it opens a block and is never quoted as an answer."""
    raw = []  # (text, list item, newlines before it)
    spans: list[tuple[int, int]] = []
    for s, e in sentence_spans(text):  # "2. Choose **Report a problem**" is cut after "2.": joined again
        if spans and _BARE_NUMBER.match(text[spans[-1][0] : spans[-1][1]]) and "\n" not in text[spans[-1][1] : s]:
            spans[-1] = (spans[-1][0], e)
        else:
            spans.append((s, e))
    prev_end = 0
    for s, e in spans:
        raw.append((text[s:e], bool(_LIST_ITEM.match(text[s:e])), text[prev_end:s].count("\n")))
        prev_end = e
    units: list[_Unit] = []
    block = 0
    for n, (sentence, item, newlines) in enumerate(raw):
        if units and units[-1].item and not item and newlines == 0:  # "1. **Free delivery** on... In the UK that's"
            units[-1].text += " " + sentence  # the item's next sentence, on its line: part of the item
            units[-1].end = spans[n][1]
            continue
        nxt = raw[n + 1] if n + 1 < len(raw) else None
        heading = (
            nxt is not None
            and not nxt[1]
            and nxt[2] >= 1
            and (n == 0 or newlines >= 1)
            and not re.search(r"[.!?:;,]\W*$", sentence)
            and len(sentence.split()) <= 10
            and not (item and n > 0 and raw[n - 1][1])  # an item of a list that goes on is not a title
        )
        if units:
            last = units[-1]
            if heading:
                same = False
            elif item:  # a list goes on, or starts under the line that introduces it
                same = (last.item or last.text.rstrip().endswith(":")) and not last.heading
            else:  # prose goes on within a paragraph (a blank line, or the end of a list, starts another)
                same = last.heading or (not last.item and newlines < 2)
            block += not same
        units.append(_Unit(sentence, item and not heading, block, spans[n][0], spans[n][1], heading=heading))
    return units


def _embedded(text: str) -> bool:
    """A source sentence or list item long enough to support, be quoted and be embedded."""
    return len(text.split()) >= MIN_WORDS


def _lead_in(units: list[_Unit], u: int, title: str = "") -> str | None:
    """A list item read with the line that introduces its list ("Time after we issue the refund, by payment method:
    - PayPal: 3-5 business days."), as quoting compares it with the question, under the page's title line
    (`title`: a table's rows name neither the product nor the fact, "- UK: monthly £7.99 a month"); None for
    anything else."""
    if not units[u].item:
        return None
    block = units[u].block
    lead = next((x for x in reversed(units[:u]) if x.block == block and not x.item), None)
    if lead is None:  # a list that opens its section is introduced by the title line (its heading) alone
        first = all(x.block == block for x in units[:u])
        return f"{title}: {tidy(units[u].text)}" if title and first else None
    if not lead.text.rstrip().endswith(":"):
        return None
    return f"{title}: {tidy(lead.text)} {tidy(units[u].text)}" if title else f"{tidy(lead.text)} {tidy(units[u].text)}"


# -- the texts a chunk yields --------------------------------------------------------------------------------
# What a turn embeds for each chunk it retrieves, in one place: grounding and quoting (`Passages`), answerability
# (`assistant.turn.answerability`) and warming (`assistant.turn.warming`, which embeds them all after ingest) read
# them from here, so a warmed store holds exactly what turns ask for. Change what a chunk yields and bump
# `TEXTS_VERSION`: servers then warm their stores again at the next start.
TEXTS_VERSION = "2"


def _heading(chunk: Chunk) -> str:
    """The heading of the section a chunk is cut from ("" when it has none)."""
    return chunk.headings[-1] if chunk.headings else ""


def page_title(chunk: Chunk) -> str:
    """The chunk's title line as answerability compares it with the query: title and heading path."""
    return " > ".join([chunk.title, *chunk.headings]) or chunk.source_id


def chunk_sentences(chunk: Chunk) -> list[str]:
    """The chunk's sentences as answerability reads them (`split_sentences`, at least `MIN_WORDS` words)."""
    return [s for s in split_sentences(chunk.text) if _embedded(s)]


def chunk_texts(chunk: Chunk) -> list[str]:
    """Every text a turn may embed for `chunk` (each once): its sentences and list items (`_units`, grounding and
    quoting), each list item with its lead-in line (quoting), its sentences (answerability) and its title line."""
    units = _units(chunk.text)
    texts = [u.text for u in units if _embedded(u.text)]
    title = page_title(chunk)
    texts += [lead for u, unit in enumerate(units) if _embedded(unit.text) and (lead := _lead_in(units, u, title))]
    texts += chunk_sentences(chunk)
    texts.append(page_title(chunk))
    return list(dict.fromkeys(texts))


def quote_span(
    units: list[_Unit],
    anchor: int,
    max_sentences: int = 2,
    scores: dict[int, float] | None = None,
    heading: str = "",
) -> str:
    """The contiguous span of a chunk to quote around `units[anchor]`, within the anchor's block, whole sentences
    only. A list item (or the line introducing a list) quotes the list: its lead-in line and its items (up to
    `MAX_LIST_ITEMS`), one a line; from a longer bulleted list of alternatives (a table's rows) only the items
    scoring close to the best one (`scores`, by unit), when few do. Numbered steps are always quoted whole.
    A list that opens its section with no line of its own to introduce it is introduced by the section's
    `heading` ("What isn't included:"): its items alone could read as the opposite of what the page says.
    Prose is the anchor, the sentence before when the anchor leans on it ("This reverses the change"), and the
    sentences after up to `max_sentences` (and `MAX_QUOTE_WORDS` words)."""
    block = units[anchor].block
    members = [i for i, u in enumerate(units) if u.block == block and not u.refused and not u.heading]
    items = [i for i in members if units[i].item]
    if items and (units[anchor].item or units[anchor].text.rstrip().endswith(":")):
        lead = [i for i in members if not units[i].item and i < items[0]][-1:]
        first = items.index(anchor) if anchor in items else 0
        shown = items[max(0, min(first - 2, len(items) - MAX_LIST_ITEMS)) :][:MAX_LIST_ITEMS]
        if scores and units[anchor].item and len(items) > 3 and not _NUMBERED.match(units[anchor].text):
            # a bulleted list of alternatives (a table's rows): the items that answer, when few stand out
            best = scores.get(anchor, 0.0)
            close = [i for i in items if scores.get(i, -1.0) >= best - ITEM_MARGIN][:3]
            if len(close) <= len(items) // 2:
                shown = close
        lines = [tidy(units[i].text) for i in [*lead, *shown]]
        if not lead and heading and all(u.block == block for u in units[: items[0]]):
            lines.insert(0, f"{tidy(heading).rstrip(':')}:")
        return _within_words("\n".join(lines))
    prose = [i for i in members if not units[i].item] or [anchor]
    pos = prose.index(anchor) if anchor in prose else 0
    picked = [prose[pos]]
    if pos > 0 and _LEANS_BACK.match(units[prose[pos]].text):
        picked.insert(0, prose[pos - 1])
    words = sum(len(units[i].text.split()) for i in picked)
    for i in prose[pos + 1 :]:
        n = len(units[i].text.split())
        if words + n > MAX_QUOTE_WORDS or (len(picked) >= max_sentences and not _LEANS_BACK.match(units[i].text)):
            break
        picked.append(i)
        words += n
    text = " ".join(tidy(units[i].text) for i in picked)
    if items and units[picked[-1]].text.rstrip().endswith(":") and picked[-1] < items[0]:
        # the quote ends by introducing a list ("To change the delivery address on an order:"): the list follows
        return _within_words("\n".join([text, *(tidy(units[i].text) for i in items[:MAX_LIST_ITEMS])]))
    return text


_CITE_MARK = re.compile(r"\s*\[\s*\d+\s*\]")


def tidy(text: str) -> str:
    """A source line as a customer should read it: one line, no "[1 ]" reference marks, no space before a
    comma or stop ("statute , you" -> "statute, you")."""
    text = _CITE_MARK.sub("", " ".join(text.split()))
    return re.sub(r"(?<=\w)\s+([,.;:!?])(?=\s|$)", r"\1", text).strip()


def _within_words(text: str, limit: int = MAX_QUOTE_WORDS + 30) -> str:
    """Whole lines of `text` within `limit` words (a list longer than that keeps its first items)."""
    out: list[str] = []
    words = 0
    for line in text.splitlines():
        n = len(line.split())
        if out and words + n > limit:
            break
        out.append(line)
        words += n
    return "\n".join(out)


_QUESTION_WORD = r"(?:how|what|when|where|why|which|who|can|could|do|does|did|is|are|will|would|should|may)\b"
_SECOND_QUESTION = re.compile(r"\?\s+(?=\S)|,?\s+(?:and|also|plus|but)\s+(?=" + _QUESTION_WORD + ")", re.I)


def split_questions(text: str) -> list[str]:
    """The questions of a message that asks more than one ("can someone else grab it, and how long before you
    send it back?"), at most three; a part needs two words that say something (a bare "and why?" stays with the
    one before)."""
    parts = [p.strip(" ,") for p in _SECOND_QUESTION.split(text) if p and p.strip(" ,")]
    kept: list[str] = []
    for p in parts:
        if kept and len(tokenize(p)) < 2:
            kept[-1] = f"{kept[-1]} {p}"
        else:
            kept.append(p)
    return kept[:3] if len(kept) >= 2 and all(len(tokenize(p)) >= 2 for p in kept) else [text]


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def citation_for(hit: SearchHit, snippet: str | None = None, limit: int = 240) -> Citation:
    text = snippet or hit.chunk.text
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    return Citation(
        source_id=hit.chunk.source_id,
        title=hit.chunk.title,
        url=hit.chunk.url,
        snippet=text,
        score=round(hit.score, 4),
        chunk_id=hit.chunk.chunk_id,
    )
