"""The answerability model behind the turn confidence: the shipped artifact, the features, the cost-derived
threshold, the engine's use of it, training on hand-made examples, and the calibration figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.llm import FakeSupportChatModel
from assistant.models import Chunk, SearchHit, TurnTrace
from assistant.services import Services
from assistant.settings import PolicySettings
from assistant.turn.answerability import (
    FEATURES,
    SHIPPED,
    AnswerabilityArtifact,
    AnswerabilityModel,
    TurnEvidence,
    corpus_term_weights,
    load_artifact,
    turn_features,
)
from assistant.turn.confidence import decide_after_answer
from assistant.turn.grounding import SentenceVectors
from evals.answerability import Example, cross_validate, train, write_artifact
from evals.reliability import auroc, expected_calibration_error, recall_at_kept, reliability_table
from tests.conftest import make_settings

# -- the shipped artifact ----------------------------------------------------------------------------------------


def test_the_shipped_artifact_loads_and_predicts_probabilities() -> None:
    artifact = load_artifact(SHIPPED)
    assert artifact.features == list(FEATURES)
    assert len(artifact.coef) == len(artifact.mean) == len(artifact.scale) == len(FEATURES)
    model = AnswerabilityModel(artifact)
    rng = np.random.default_rng(0)
    for _ in range(50):
        features = {name: float(rng.uniform(-0.5, 1.5)) for name in FEATURES}
        p, parts = model.predict(features)
        assert 0.0 <= p <= 1.0
        z = artifact.intercept + sum(parts.values())
        assert p == pytest.approx(1 / (1 + math.exp(-z)))
    assert {"doc2dial", "clinc150"} <= set(artifact.figures), "the artifact carries its out-of-fold figures"
    for figures in artifact.figures.values():
        assert 0.0 <= figures.ece <= 1.0 and len(figures.reliability) == 10


# -- the threshold from costs ------------------------------------------------------------------------------------


def test_the_handoff_threshold_follows_from_the_costs() -> None:
    even = {"answerable_share": 0.5}  # the training mix's own odds: the costs alone decide
    assert PolicySettings(cost_wrong_answer=1, cost_false_handoff=1, **even).handoff_threshold == pytest.approx(0.5)
    policy = PolicySettings(cost_wrong_answer=3, cost_false_handoff=1, **even)
    assert policy.handoff_threshold == pytest.approx(0.75)  # answer when 1 * p >= 3 * (1 - p)
    assert decide_after_answer(0.74, "extractive", policy).action == "handoff"
    assert decide_after_answer(0.76, "extractive", policy).action != "handoff"
    override = PolicySettings(cost_wrong_answer=3, cost_false_handoff=1, handoff_below=0.2)
    assert override.handoff_threshold == 0.2
    assert decide_after_answer(0.3, "extractive", override).action == "answer_and_offer"


def test_the_share_of_questions_the_knowledge_covers_moves_the_threshold() -> None:
    # default costs (1, 2) and 80% of questions covered: odds (1/2) * (0.2 / 0.8) = 1/8, p = 1/9
    assert PolicySettings().handoff_threshold == pytest.approx(1 / 9, abs=1e-3)
    assert PolicySettings(answerable_share=0.5).handoff_threshold == pytest.approx(1 / 3, abs=1e-3)
    assert PolicySettings(answerable_share=0.95).handoff_threshold < PolicySettings().handoff_threshold


# -- features ----------------------------------------------------------------------------------------------------


class BagOfWords:
    """A deterministic stand-in for the embedder: hashed word counts, L2-normalised."""

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, sum(map(ord, w.strip(".,?!"))) % 64] += 1
            out[i] /= max(1e-9, float(np.linalg.norm(out[i])))
        return out

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def recent(self, text: str) -> None:
        return None


def hit(page: str, text: str, score: float, lexical: float | None = None, n: int = 0) -> SearchHit:
    chunk = Chunk(
        chunk_id=f"{page}#{n}",
        source_id=page,
        title=page.replace("-", " "),
        text=text,
        start=0,
        end=len(text),
        position=n,
    )
    return SearchHit(chunk=chunk, score=score, vector_score=score, lexical_score=lexical)


def features(hits: list[SearchHit], query: str, weights: Any = None, **kw: Any) -> dict[str, float]:
    ev = TurnEvidence(message=query, query=query, hits=hits, mode="extractive", **kw)
    return turn_features(ev, SentenceVectors(BagOfWords()), weights)  # type: ignore[arg-type]


def test_features_see_whether_the_top_chunks_agree_on_one_page() -> None:
    q = "how long do refunds take to reach my card"
    agree = [
        hit("refunds", f"Refunds reach your card in 5 to 10 days. Part {i}.", 0.7 - i * 0.02, 1.0, i) for i in range(4)
    ]
    scattered = [hit(p, "Some other text about things here.", 0.5) for p in ("orders", "returns", "shipping", "fees")]
    a, s = features(agree, q), features(scattered, q)
    assert set(a) == set(FEATURES)
    assert a["pages_k"] == 0.0 and a["top_page_share"] == 1.0 and a["page_gap"] == pytest.approx(0.3)
    assert s["pages_k"] == 1.0 and s["top_page_share"] == 0.25 and s["page_gap"] == 0.0
    assert a["coverage_page"] > s["coverage_page"] and a["best_sentence"] > s["best_sentence"]
    assert a["lexical_share"] == 1.0 and s["lexical_share"] == 0.0


def test_rare_words_weigh_more_and_unknown_words_count() -> None:
    q = "refund zorblax card"
    weights = lambda terms: {t: {"refund": 0.2, "card": 0.3}[t] for t in terms if t in ("refund", "card")}  # noqa: E731
    f = features([hit("refunds", "Your refund goes to the card you paid with.", 0.6)], q, weights)
    assert f["unknown_terms"] == pytest.approx(1 / 3)  # "zorblax" is nowhere in the knowledge
    assert f["rarest_covered"] == 0.0 and f["specificity"] == 1.0
    assert 0.0 < f["coverage_top"] < 2 / 3  # the two known words are found, the rarest one is not


def test_a_vague_follow_up_is_also_read_with_what_the_customer_said_before() -> None:
    page = [hit("insurance-lapses", "If your insurance lapses, your registration is suspended for the lapse.", 0.4)]
    vague = "where can I find more information"
    alone = features(page, vague)
    # a first message: the context readings are the plain ones
    assert alone["context_best_sentence"] == alone["best_sentence"]
    assert alone["context_coverage_page"] == alone["coverage_page"]
    assert alone["context_title_sim"] == alone["title_sim"]
    read = features(page, vague, context="my insurance lapses next week, what happens to my registration?")
    assert read["best_sentence"] == alone["best_sentence"]  # the message alone is read as before
    assert read["context_best_sentence"] > alone["best_sentence"]
    assert read["context_coverage_page"] > alone["coverage_page"]


def test_no_hits_still_gives_every_feature() -> None:
    f = features([], "what is the boiling point of tungsten", earlier_turns=2, frustration=0.4)
    assert set(f) == set(FEATURES) and f["top1"] == 0.0
    assert f["earlier_turns"] == pytest.approx(math.log(3)) and f["frustration"] == 0.4


# -- training on hand-made examples ----------------------------------------------------------------------------


def _examples(n: int = 120) -> list[Example]:
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        label = i % 2
        f = dict.fromkeys(FEATURES, 0.0)
        f["top1"] = float(rng.normal(0.6 if label else 0.4, 0.1))
        f["coverage_page"] = float(rng.uniform(0, 1))
        dataset = "doc2dial" if i < n // 2 else "clinc150"
        out.append(Example(dataset, f"e{i}", f"g{i // 4}", label, f))  # type: ignore[arg-type]
    return out


def test_training_recovers_the_separating_feature_out_of_fold(tmp_path: Path) -> None:
    examples = _examples()
    oof = cross_validate(examples, folds=4)
    labels = np.array([e.label for e in examples])
    assert auroc(oof[labels == 1], oof[labels == 0]) > 0.8
    artifact = train(examples, folds=4)
    coef = dict(zip(artifact.features, artifact.coef, strict=True))
    assert coef["top1"] > 1.0 and abs(coef["coverage_page"]) < coef["top1"]
    assert (
        set(artifact.figures) == {"doc2dial", "clinc150"} and artifact.figures["clinc150"].oos_recall_at_95 is not None
    )
    path = write_artifact(artifact, tmp_path / "model.json")
    again = AnswerabilityArtifact.model_validate_json(path.read_text())
    assert again.version == artifact.version and again.coef == artifact.coef


# -- the engine ------------------------------------------------------------------------------------------------


def _artifact_with_intercept(tmp_path: Path, intercept: float) -> Path:
    artifact = load_artifact(SHIPPED).model_copy(
        update={"coef": [0.0] * len(FEATURES), "intercept": intercept, "version": f"test-{intercept}"}
    )
    return write_artifact(artifact, tmp_path / f"model-{intercept}.json")


def _services(data_dir: Path, model: Path, **policy: Any) -> Services:
    settings = make_settings(data_dir, policy={"answerability_model": str(model), **policy})
    return Services.build(settings, chat_model=FakeSupportChatModel())


def test_the_engine_hands_off_when_answerability_is_low_and_records_why(sample_data_dir: Path, tmp_path: Path) -> None:
    sv = _services(sample_data_dir, _artifact_with_intercept(tmp_path, -3.0))
    conv = sv.engine.start_conversation(None, False)
    turn = sv.engine.run_turn(conv.id, "How do I turn on two-factor authentication?")
    assert turn.action == "handoff" and turn.handoff is not None and turn.handoff.reason == "low_confidence"
    assert turn.confidence == pytest.approx(1 / (1 + math.exp(3.0)), abs=1e-3)
    record = sv.store.get_turn(turn.turn_id)
    assert record is not None and record.evidence is not None
    a = record.evidence.answerability
    assert a is not None and a.model_version == "test--3.0" and a.threshold == pytest.approx(1 / 9, abs=1e-3)
    assert set(a.contributions) == set(FEATURES) == set(a.features)
    assert a.features["top1"] > 0.3  # the evidence itself is recorded as it was seen
    assert TurnTrace.of(record).answerability == a  # the console's turn trace shows it


def test_the_engine_answers_when_answerability_clears_the_cost_threshold(sample_data_dir: Path, tmp_path: Path) -> None:
    model = _artifact_with_intercept(tmp_path, 1.0)  # p = 0.73
    answered = _services(sample_data_dir, model)
    conv = answered.engine.start_conversation(None, False)
    turn = answered.engine.run_turn(conv.id, "How do I turn on two-factor authentication?")
    assert turn.action != "handoff" and turn.confidence == pytest.approx(0.7311, abs=1e-3)
    careful = _services(  # needs p >= 0.8
        sample_data_dir, model, cost_wrong_answer=4.0, cost_false_handoff=1.0, answerable_share=0.5
    )
    conv = careful.engine.start_conversation(None, False)
    assert careful.engine.run_turn(conv.id, "How do I turn on two-factor authentication?").action == "handoff"


# -- calibration figures -----------------------------------------------------------------------------------------


def test_reliability_and_ece_on_hand_made_predictions() -> None:
    p = [0.1, 0.1, 0.9, 0.9, 1.0]
    y = [0, 1, 1, 1, 1]
    table = reliability_table(p, y, bins=10)
    assert len(table) == 10 and sum(b.n for b in table) == 5
    assert (table[1].mean_predicted, table[1].observed, table[1].n) == (0.1, 0.5, 2)
    assert (table[9].n, table[9].observed) == (3, 1.0)  # 1.0 falls in the last bin
    assert table[5].n == 0 and table[5].mean_predicted is None
    # bins: |0.5 - 0.1| * 2/5 + |1.0 - 0.9333| * 3/5
    assert expected_calibration_error(p, y) == pytest.approx(0.4 * 0.4 + (1 - 2.8 / 3) * 0.6, abs=1e-3)
    assert expected_calibration_error([0.0, 1.0], [0, 1]) == 0.0


def test_auroc_and_recall_at_kept_positives() -> None:
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.5], [0.5]) == 0.5
    threshold, recall = recall_at_kept([0.5, 0.6, 0.7, 0.8, 0.9] * 4, [0.1, 0.55, 0.95], kept=0.95)
    assert threshold <= 0.5 + 1e-9 and recall == pytest.approx(1 / 3)


def test_term_weights_can_leave_a_page_out_as_if_deleted(sample_data_dir: Path) -> None:
    sv = Services.build(make_settings(sample_data_dir), chat_model=FakeSupportChatModel())
    bm25 = sv.retriever.warm()
    assert bm25 is not None
    # a word of one page only, and the page it is on
    word, idx = next(
        (t, p[0]) for t, p in sorted(bm25.postings.items()) if len({bm25.chunks[i].source_id for i in p[0]}) == 1
    )
    page = bm25.chunks[int(idx[0])].source_id
    everything = corpus_term_weights(sv.retriever)([word, "zzzunknownzzz"])
    assert set(everything) == {word} and 0.0 < everything[word] <= 1.0  # unknown words have no weight
    assert corpus_term_weights(sv.retriever, [page])([word]) == {}  # with its page gone, the word is unknown
