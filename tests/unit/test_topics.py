"""Conversation topics: the classifier (real MiniLM embedder, real scikit-learn), its file format, the
help center's own topics, which message a conversation's topic comes from, the BANKING77 reader and the
cross-validation benchmark on a tiny made-up file in BANKING77's format."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from assistant.services import build_index
from assistant.telemetry.topics import (
    OTHER,
    TopicClassifier,
    is_substantive,
    source_topic,
    topic_text,
    topics_for,
)
from evals.bench.topics import run_topics, stratified_sample
from evals.datasets import DatasetMissingError, banking77_rows
from tests.conftest import make_settings

TRAIN = {
    "delivery": [
        "Where is my parcel?",
        "My package has not arrived yet",
        "When will my order be delivered?",
        "The courier never showed up with my delivery",
        "How long does shipping take?",
        "Can you tell me the tracking status of my shipment?",
    ],
    "refunds": [
        "I want my money back",
        "When will I get my refund?",
        "How long do refunds take to reach my bank?",
        "I returned the item but was not refunded",
        "Can I get a refund for this purchase?",
        "The refund has still not shown up on my card",
    ],
    "password": [
        "I forgot my password",
        "How do I reset my password?",
        "I cannot log in to my account",
        "The password reset email never came",
        "My login keeps saying the password is wrong",
        "How can I change my account password?",
    ],
}
TEXTS = [t for texts in TRAIN.values() for t in texts]
LABELS = [label for label, texts in TRAIN.items() for _ in texts]


@pytest.fixture(scope="module")
def classifier() -> TopicClassifier:
    return TopicClassifier(min_probability=0.0).fit(TEXTS, LABELS)


def test_fit_and_predict_on_unseen_queries(classifier: TopicClassifier) -> None:
    found = classifier.predict(["has my box been shipped yet?", "please return my money", "locked out, forgot login"])
    assert [p.label for p in found] == ["delivery", "refunds", "password"]
    assert all(1 / 3 < p.probability <= 1 for p in found)
    assert classifier.labels == ["delivery", "password", "refunds"]
    assert classifier.predict([]) == []


def test_below_min_probability_the_topic_is_other(classifier: TopicClassifier, tmp_path: Path) -> None:
    [sure] = classifier.predict(["what is the weather like on mars"])
    strict = TopicClassifier.load(classifier.save(tmp_path / "topics.npz"), min_probability=0.99)
    [other] = strict.predict(["what is the weather like on mars"])
    assert sure.label != OTHER
    assert other.label == OTHER
    assert other.probability == pytest.approx(sure.probability, rel=1e-5)  # the best topic's probability is kept


def test_save_and_load_roundtrip(classifier: TopicClassifier, tmp_path: Path) -> None:
    path = classifier.save(tmp_path / "models" / "topics.npz", note="test")
    assert path.is_file() and not list(path.parent.glob(".*tmp"))
    with np.load(path, allow_pickle=False) as data:  # no pickle inside
        assert set(data.files) == {"header", "labels", "weights", "bias"}
    loaded = TopicClassifier.load(path, min_probability=0.2)
    queries = ["where is my parcel", "reset my password please"]
    before = classifier.probabilities(classifier.embedder.embed(queries))
    after = loaded.probabilities(loaded.embedder.embed(queries))
    assert loaded.labels == classifier.labels and loaded.C == classifier.C
    assert loaded.min_probability == 0.2 and loaded.meta["note"] == "test"
    np.testing.assert_allclose(after, before, rtol=1e-5)


def test_load_refuses_another_embedding_model(classifier: TopicClassifier, tmp_path: Path) -> None:
    path = classifier.save(tmp_path / "topics.npz", embedding_model="some-other-model")
    with pytest.raises(ValueError, match="train it again"):
        TopicClassifier.load(path)


@pytest.mark.parametrize("classes", [2, 3])
def test_probabilities_match_scikit_learn(classes: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    y = np.asarray([f"t{i % classes}" for i in range(60)])
    x[:, 0] += np.asarray([i % classes for i in range(60)])  # something to learn
    clf = TopicClassifier(min_probability=0.0, C=3.0).fit_vectors(x, y)
    reference = LogisticRegression(C=3.0, max_iter=1000).fit(x, y)
    np.testing.assert_allclose(clf.probabilities(x), reference.predict_proba(x), atol=1e-4)
    assert [p.label for p in clf.predict_vectors(x)] == reference.predict(x).tolist()


def test_one_topic_and_no_topics() -> None:
    x = np.eye(3, dtype=np.float32)
    one = TopicClassifier().fit_vectors(x, ["orders"] * 3)
    assert [(p.label, p.probability) for p in one.predict_vectors(x[:1])] == [("orders", 1.0)]
    empty = TopicClassifier()
    assert [(p.label, p.probability) for p in empty.predict(["anything"])] == [(OTHER, 0.0)]
    with pytest.raises(ValueError):
        TopicClassifier().fit_vectors(x, ["a", "b"])


def test_the_topic_comes_from_the_first_substantive_message(classifier: TopicClassifier) -> None:
    assert not is_substantive("Hi there!") and not is_substantive("hello, can you help me?")
    assert is_substantive("hi, my parcel never arrived")
    assert topic_text(["hello", "  ", "I forgot my password", "where is my parcel?"]) == "I forgot my password"
    assert topic_text(["hi", "hello?"]) == "hi hello?"  # nothing substantive: the first two together
    assert topic_text([]) is None
    assert classifier.topic_of(["hey", "I cannot log in, I forgot my password", "and my parcel?"]).label == "password"
    assert classifier.topic_of([]).label == OTHER
    assert classifier.topic_fn(["hello"]) is None  # not known yet
    label, probability = classifier.topic_fn(["hello", "my refund has not arrived"])  # type: ignore[misc]
    assert label == "refunds" and 0 < probability <= 1


def test_source_topic() -> None:
    assert source_topic("orders/change-or-cancel-an-order", "Change or cancel an order") == "orders"
    assert source_topic("faq-shipping", "Shipping & Delivery FAQ") == "shipping-delivery-faq"
    assert source_topic("x", "!!!") == "general"


def test_help_center_topics_are_the_sample_categories(sample_data_dir: Path) -> None:
    settings = make_settings(sample_data_dir)
    index = build_index(settings)
    clf = topics_for(settings, index)  # help_center_topics(index), then cached under the data dir
    assert clf.labels == sorted(
        ["account", "billing", "orders", "returns-refunds", "shipping", "subscriptions", "troubleshooting"]
    )
    assert clf.meta["documents"] == 34 and clf.min_probability == 0.3
    found = clf.predict(["I forgot my password", "my card was declined", "how do I pause my membership?"])
    assert [p.label for p in found] == ["account", "billing", "subscriptions"]

    cache = settings.data_dir / "topics" / "helpcenter.npz"
    assert cache.is_file()
    again = topics_for(settings, index)  # read back, not trained again: the index has not changed
    assert again.meta["index_revision"] == index.revision() and again.labels == clf.labels
    chosen = make_settings(sample_data_dir, topics={"model_path": cache, "min_probability": 0.5})
    assert topics_for(chosen, index).min_probability == 0.5


def _banking77(folder: Path, rows: list[tuple[str, str]]) -> Path:
    (folder / "banking77").mkdir(parents=True)
    with (folder / "banking77" / "train.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "category"])
        w.writerows(rows)
    return folder


def test_banking77_reader(tmp_path: Path) -> None:
    data = _banking77(tmp_path / "data", [("Where is my parcel?", "delivery"), ("  ", "delivery"), ("x, y", "z")])
    assert banking77_rows(data) == [("Where is my parcel?", "delivery"), ("x, y", "z")]
    with pytest.raises(DatasetMissingError):
        banking77_rows(tmp_path / "nowhere")


def test_stratified_sample_is_even_and_fixed() -> None:
    rows = [(f"{label} {i}", label) for label in "abc" for i in range(10 if label == "a" else 3)]
    sample = stratified_sample(rows, 9, seed=1)
    assert sorted(label for _, label in sample) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    assert sample == stratified_sample(rows, 9, seed=1)
    assert len(stratified_sample(rows, 100, seed=1)) == len(rows)


def test_topics_benchmark_cross_validates(tmp_path: Path) -> None:
    data = _banking77(tmp_path / "data", list(zip(TEXTS, LABELS, strict=True)))
    steps: list[str] = []
    result = run_topics(
        make_settings(tmp_path / "cxa"),
        data,
        folds=3,
        c_grid=(1.0, 10.0),
        latency_queries=5,
        progress=lambda stage, _i, _n: steps.append(stage),
    )
    assert (result.queries, result.labels, result.folds) == (18, 3, 3)
    assert [f.test for f in result.per_fold] == [6, 6, 6]
    assert all(f.C in (1.0, 10.0) for f in result.per_fold)
    assert result.accuracy >= 0.8 and 0 < result.macro_f1 <= 1
    assert result.latency_queries == 5 and 0 < result.latency_ms_p50 <= result.latency_ms_p95
    assert result.embedding_texts_per_second > 0 and result.min_probability == 0.3
    assert {"embedding", "folds", "latency"} <= set(steps)
    with pytest.raises(ValueError):
        run_topics(make_settings(tmp_path / "cxa"), data, folds=1)
