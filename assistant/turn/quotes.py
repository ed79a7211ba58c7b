"""Which source sentence to quote: a small learned scorer over features the turn already has.

Each candidate sentence of the retrieved chunks is described by `QUOTE_FEATURES` (its similarity to the question
and its gap to the best one, shared words plain and weighted by rarity, words in its headings, the rank and score of
its chunk, where it stands in its paragraph, whether the sentence before it matches the question or is a question
itself (an FAQ's answer follows its question), its length and kind). A logistic model over them, trained on
doc2dial dev turns (a sentence is positive when it overlaps the turn's gold span) by `cxa bench quotes --train`,
ranks the candidates; the best one anchors the quote (`assistant.turn.grounding.quote_span`).

The model is a JSON file beside this module (`quote_model.json`: feature names, scaling, coefficients, the figures
it was trained with). Without it, or when its features do not match these, the hand-set weights below rank: 0.7
similarity + 0.3 shared words + 0.1 heading words + 0.1 the chunk's rank prior, minus a little for a sentence about
the page or one leaning on a sentence it is cut from. Measured (`cxa bench quotes`, 5 folds by page): a logistic
model over these features finds the gold sentence more often (0.241 vs 0.188 of turns) but its quotes score the
same token-F1 (0.296 vs 0.298), so none is shipped; the hand weights rank.
"""

from __future__ import annotations

import json
import logging
import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from assistant.models import SearchHit

logger = logging.getLogger(__name__)

MODEL_PATH = Path(__file__).with_name("quote_model.json")

QUOTE_FEATURES: tuple[str, ...] = (
    "similarity",  # cosine of the sentence and the question
    "similarity_gap",  # similarity minus the best candidate's (0 for the best)
    "overlap",  # share of the question's words in the sentence (a list's lead-in: with its items)
    "rare_overlap",  # the same, each word weighted by its rarity among this turn's sentences
    "heading_overlap",  # share of the question's words only in the sentence's headings
    "chunk_rank",  # 1 / (1 + the chunk's retrieval rank)
    "chunk_score",  # the chunk's retrieval score
    "first_in_block",  # the sentence opens its paragraph or list
    "previous_similarity",  # similarity of the sentence before it (same chunk), 0 when none
    "after_question",  # the sentence before it is a question
    "is_question",
    "length",  # words / 40, at most 1
    "list_item",
    "lead_in",  # ends with ":" (introduces a list)
    "about_the_page",  # speaks of the page, not the answer ("This article also explains...")
    "leans_back_alone",  # opens its paragraph yet leans on a sentence before ("They can tell you why...")
    "answer_type",  # the question asks for an amount or a duration and the sentence, on the best page, states one
)

HAND_WEIGHTS = {
    "similarity": 0.7,
    "overlap": 0.3,
    "heading_overlap": 0.1,
    "chunk_rank": 0.1,
    "about_the_page": -0.15,
    "leans_back_alone": -0.1,
    "answer_type": 0.25,
}

# What kind of fact a question asks for, and how a sentence states it: "how much is Plus?" wants an amount ("£7.99
# a month"), "how long do refunds take?" a duration ("3-5 business days"). A sentence with the right kind of fact
# is a likelier answer than one that only shares the question's words ("You can use up to 5 gift cards on a single
# order" for "what's the most I can put on a single gift card?").
_ASKS = {
    "amount": re.compile(
        r"\b(how much|cost\w*|price\w*|pay|charge\w*|fees?|amounts?|expensive|cheap\w*|values?|worth|the most|"
        r"maximum|max|minimum|min|limit)\b",
        re.I,
    ),
    "duration": re.compile(
        r"\b(how long|how many (business |working )?(days|weeks|months|hours|years)|how soon|how quickly|"
        r"when will|by when|within)\b",
        re.I,
    ),
}
_STATES = {
    "amount": re.compile(r"[£€$]\s?\d|\b\d+(?:[.,]\d+)?\s?(?:pounds|euros?|dollars|gbp|eur|usd)\b", re.I),
    "duration": re.compile(
        r"\b\d+(?:\s?(?:-|–|to)\s?\d+)?\s(?:business |working |calendar )?"
        r"(?:days?|weeks?|months?|hours?|years?|minutes?)\b",
        re.I,
    ),
}


def answer_types(question: str) -> frozenset[str]:
    """The kinds of fact (`amount`, `duration`) the question asks for."""
    return frozenset(k for k, pattern in _ASKS.items() if pattern.search(question))


def states_type(sentence: str, kinds: frozenset[str]) -> bool:
    """The sentence states a fact of one of `kinds`."""
    return any(_STATES[k].search(sentence) for k in kinds)


def with_stated_fact(hits: list[SearchHit], pool: list[SearchHit], question: str) -> list[SearchHit]:
    """The chunks an answer is written or quoted from: `hits`, and when the question asks for a kind of fact (an
    amount, a duration), the chunk of the top hit's page that is closest to the question among those stating
    one, when the fused ranking left it out ("how much is Plus?": the page's introduction and joining
    instructions rank above its price table, whose words are only numbers). Nothing added otherwise."""
    kinds = answer_types(question)
    if not kinds or not hits:
        return hits
    page = hits[0].chunk.source_id
    stating = [h for h in pool if h.chunk.source_id == page and states_type(h.chunk.text, kinds)]
    best = max(stating, key=lambda h: h.score, default=None)
    if best is None or any(h.chunk.chunk_id == best.chunk.chunk_id for h in hits):
        return hits
    return [*hits, best]


class QuoteModel(BaseModel):
    """A logistic scorer: sigmoid(intercept + coef . (x - mean) / scale)."""

    version: str
    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    trained_on: str = ""
    figures: dict[str, float] = {}

    def scores(self, x: np.ndarray) -> np.ndarray:
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        logits = z @ np.asarray(self.coef) + self.intercept
        out: np.ndarray = 1.0 / (1.0 + np.exp(-logits))
        return out


def hand_scores(x: np.ndarray) -> np.ndarray:
    """The hand-set scorer over the same features (used when no trained model matches)."""
    w = np.asarray([HAND_WEIGHTS.get(name, 0.0) for name in QUOTE_FEATURES])
    out: np.ndarray = x @ w
    return out


@lru_cache(maxsize=1)
def load_model(path: Path = MODEL_PATH) -> QuoteModel | None:
    """The shipped model, or None (hand weights) when it is missing or was trained on other features."""
    if not path.is_file():
        return None
    try:
        model = QuoteModel.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, OSError) as exc:
        logger.warning("quote model %s unreadable (%s): hand-set weights rank the sentences", path, exc)
        return None
    if tuple(model.features) != QUOTE_FEATURES:
        logger.warning("quote model %s has other features: hand-set weights rank the sentences", path)
        return None
    return model


def score_candidates(x: np.ndarray, model: QuoteModel | None = None) -> np.ndarray:
    """A score per row of `x` (rows = candidates, columns = `QUOTE_FEATURES`); higher is a better quote."""
    if not len(x):
        return np.zeros(0)
    m = model if model is not None else load_model()
    return m.scores(x) if m is not None else hand_scores(x)


def rarity(df: int, n: int) -> float:
    return math.log(1 + n / (1 + df))
