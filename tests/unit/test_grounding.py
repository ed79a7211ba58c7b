"""The grounding check that decides which generated sentences a customer may see."""

from __future__ import annotations

import pytest

from assistant.models import Chunk, SearchHit
from assistant.turn.grounding import Passages, SentenceVectors, clean_sentence, is_abstention
from knowledge.embeddings import shared_embedder

SOURCE = (
    "Refunds are processed within 2 business days of the return arriving at our warehouse. "
    "Card refunds then take 5-10 business days to appear. PayPal refunds take 3-5 business days."
)


@pytest.fixture(scope="module")
def vectors() -> SentenceVectors:
    return SentenceVectors(shared_embedder())


def passages(vectors: SentenceVectors, question: str) -> Passages:
    chunk = Chunk(
        chunk_id="r::0",
        source_id="refunds",
        title="Refund timelines",
        text=SOURCE,
        start=0,
        end=len(SOURCE),
        position=0,
    )
    return Passages(hits=[SearchHit(chunk=chunk, score=0.7)], history="", embedder=vectors, question=question)


def test_a_paraphrase_of_the_source_is_supported(vectors: SentenceVectors) -> None:
    p = passages(vectors, "How long does a PayPal refund take?")
    s = p.support("A refund to PayPal takes 3-5 business days. [1]")
    assert s.support >= 0.55 and s.source == 0 and s.numbers_ok


def test_an_invented_figure_is_not_supported(vectors: SentenceVectors) -> None:
    p = passages(vectors, "How long does a PayPal refund take?")
    s = p.support("PayPal refunds take 30 business days.")
    assert not s.numbers_ok and s.support <= 0.3


def test_restating_the_question_says_nothing(vectors: SentenceVectors) -> None:
    p = passages(vectors, "How long does a PayPal refund take?")
    assert p.support("How long does a PayPal refund take?").support == 0.0


def test_an_unrelated_claim_is_not_supported(vectors: SentenceVectors) -> None:
    p = passages(vectors, "How long does a PayPal refund take?")
    assert p.support("You can pay with bitcoin at checkout.").support < 0.55


def test_extractive_answer_quotes_the_best_sentence(vectors: SentenceVectors) -> None:
    text, owners = passages(vectors, "how long do paypal refunds take").extractive(max_sentences=1)
    assert text == "PayPal refunds take 3-5 business days." and owners == [0]


def test_an_identifier_in_the_question_picks_the_record(vectors: SentenceVectors) -> None:
    history = (
        "Customer: Ada (id c1)\n"
        "- 2026-09-29 order delivered: order id LH-471205; carrier DPD\n"
        "- 2026-11-17 order shipped: order id LH-482913; carrier Larkspur; delivery slot 2026-11-25 08:00-12:00"
    )
    facts = history.splitlines()[1:]
    p = Passages(
        hits=[], history=history, embedder=vectors, question="When will my order LH-482913 be delivered?", facts=facts
    )
    text, owners = p.extractive()
    assert "LH-482913" in text and "2026-11-25" in text and owners == []
    assert text.startswith("From your account:")


def test_markers_and_abstentions() -> None:
    assert clean_sentence("- Refunds take 5 days [1][2].") == "Refunds take 5 days ."
    assert clean_sentence("Visit the [Larkspur Home] website [2].") == "Visit the Larkspur Home website ."
    assert is_abstention("I'm sorry, I don't know.") and not is_abstention("Refunds take 5 days.")


CANCEL = (
    "You can change or cancel an order yourself while its status is **Received** or **Processing**.\n\n"
    "While the order is still Processing you can:\n\n"
    "- change the delivery address (to another address in the same country)\n"
    "- switch between standard, express and Click & Collect delivery\n"
    "- remove items\n\n"
    "You can't add items to an existing order. If you want to add something, place a new order."
)
EMAIL = (
    "We also send a notification to your old address. This reverses the change and locks the account, "
    "and our account security team will be in touch. You can't reuse an address linked to another account."
)
DMV = (
    "1. Forgetting to Update Address \n"
    "By statute , you must report a change of address to DMV within ten days of moving [1 ] \n\n"
    "2. Leaving the State \n"
    "States communicate with each other."
)


def quote(vectors: SentenceVectors, text: str, question: str, headings: list[str] | None = None) -> str:
    chunk = Chunk(
        chunk_id="d::0",
        source_id="d",
        title="Help",
        headings=headings or [],
        text=text,
        start=0,
        end=len(text),
        position=0,
    )
    p = Passages(hits=[SearchHit(chunk=chunk, score=0.7)], history="", embedder=vectors, question=question)
    return p.extractive()[0]


def test_a_list_is_quoted_whole_with_the_line_that_introduces_it(vectors: SentenceVectors) -> None:
    text = quote(vectors, CANCEL, "can I switch my order to click and collect delivery?")
    assert text.splitlines() == [
        "While the order is still Processing you can:",
        "- change the delivery address (to another address in the same country)",
        "- switch between standard, express and Click & Collect delivery",
        "- remove items",
    ]


def test_prose_is_quoted_in_whole_sentences_of_its_own_paragraph(vectors: SentenceVectors) -> None:
    text = quote(vectors, CANCEL, "can I add an item to my existing order?")
    assert text == "You can't add items to an existing order. If you want to add something, place a new order."


def test_a_sentence_that_leans_on_the_one_before_brings_it(vectors: SentenceVectors) -> None:
    text = quote(vectors, EMAIL, "does the change lock my account and reverse it?")
    assert text.startswith("We also send a notification to your old address. This reverses the change")


def test_title_lines_are_context_never_the_quote_and_reference_marks_go(vectors: SentenceVectors) -> None:
    text = quote(vectors, DMV, "forgetting to update my address with the dmv after moving")
    assert text == "By statute, you must report a change of address to DMV within ten days of moving"


def test_numbered_steps_are_quoted_whole_and_in_order(vectors: SentenceVectors) -> None:
    steps = (
        "You need to tell us within **7 days** of the delivery date.\n\n"
        "1. Go to **Account > Orders** and select the order.\n"
        "2. Choose **Report a problem > Item missing**.\n"
        "3. Select the missing item(s) and add a photo of the packaging if you can."
    )
    text = quote(vectors, steps, "how do I report the missing item with a photo of the packaging?")
    assert text.splitlines() == [
        "1. Go to **Account > Orders** and select the order.",
        "2. Choose **Report a problem > Item missing**.",
        "3. Select the missing item(s) and add a photo of the packaging if you can.",
    ]


def test_two_questions_get_a_quote_each_but_a_follow_up_with_its_context_one(vectors: SentenceVectors) -> None:
    chunk = Chunk(chunk_id="r::0", source_id="r", title="Refunds", text=SOURCE, start=0, end=len(SOURCE), position=0)
    hits = [SearchHit(chunk=chunk, score=0.7)]
    two = Passages(
        hits=hits,
        history="",
        embedder=vectors,
        question="when is my return processed at the warehouse, and how long do PayPal refunds take?",
    )
    assert len(two.extractive_each(1)[0].split("\n\n")) == 2
    follow_up = Passages(
        hits=hits,
        history="",
        embedder=vectors,
        question="and how long for PayPal?\nwhen is my return processed at the warehouse?",
        message="and how long for PayPal?",
    )
    assert "\n\n" not in follow_up.extractive_each(1)[0]


def _chunk(cid: str, text: str, headings: list[str], source: str = "plus") -> Chunk:
    return Chunk(
        chunk_id=cid,
        source_id=source,
        title="Plus membership benefits and prices",
        headings=headings,
        text=text,
        start=0,
        end=len(text),
        position=int(cid.rsplit(":", 1)[-1]),
    )


def test_a_list_that_opens_its_section_is_quoted_under_its_heading(vectors: SentenceVectors) -> None:
    """Items alone could read as the opposite of what the page says: "Large item collection, which remains £29"
    is what Plus does *not* include."""
    text = "- Large item collection for returns, which remains £29.\n- Gift cards can't be used to pay for it."
    chunk = _chunk("plus::3", text, ["What isn't included"])
    p = Passages(hits=[SearchHit(chunk=chunk, score=0.7)], history="", embedder=vectors, question="large item returns")
    quote, _ = p.extractive(max_sentences=2)
    assert quote.splitlines()[0] == "What isn't included:" and "£29" in quote


def test_a_table_row_is_compared_with_its_page_title(vectors: SentenceVectors) -> None:
    """ "How much is Plus?": the price table's rows name neither the product nor the fact; read under the page's
    title line they answer it, ahead of the introduction that shares the question's words."""
    intro = _chunk("plus::0", "Plus is our paid membership for people who shop with us regularly.", [])
    prices = _chunk(
        "plus::1", "Monthly, Annual, by store:\n- UK: monthly £7.99 a month; annual £69 a year.", ["Prices"]
    )
    hits = [SearchHit(chunk=intro, score=0.70), SearchHit(chunk=prices, score=0.76)]
    p = Passages(hits=hits, history="", embedder=vectors, question="How much is Plus?")
    quote, owners = p.extractive(max_sentences=2)
    assert "£7.99" in quote and owners == [1]
