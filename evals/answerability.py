"""Training and measuring the answerability model (`assistant.turn.answerability`) on the dev splits.

Examples, each with the features the engine computes for a turn and a label known by construction:

- doc2dial dev: every turn asked twice through the engine's own retrieval and extractive answerer, once with
  its gold page in the index (answerable, 1) and once with it removed (retrieval excludes it, which is what
  deleting it does; 0). Group = the page: a page's dialogues and both versions of each turn stay in one fold, so
  out-of-fold figures are on pages (and dialogues) the model never saw, like the held-out split.
- Other-domain questions put to the doc2dial pages (CLINC150 queries: `cross_domain_examples`), not answerable;
  training-only.
- CLINC150 dev: the 15,000 in-scope training queries are the knowledge (one entry per query, titled by its
  intent); the in-scope validation queries are answerable, the out-of-scope ones not. Group = the intent (OOS
  queries are spread over the folds); `oos_train` joins the training folds as extra negatives but is never
  scored, so the OOS figures are on `oos_val` as before.

`cross_validate` refits the model per fold (GroupKFold) and returns out-of-fold probabilities; `fit` trains the
shipped artifact on every example. Each dataset weighs the same in training (doc2dial has ~3.4k examples, CLINC
~3.2k with 97% positives), so neither one's base rate decides for the other.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from assistant.llm import ChatGateway, FakeSupportChatModel
from assistant.models import CustomerContext, IntentEvidence, utcnow
from assistant.services import build_index, build_retriever
from assistant.settings import Settings
from assistant.turn.answer import Answerer
from assistant.turn.answerability import (
    FEATURES,
    POOL,
    AnswerabilityArtifact,
    DatasetFigures,
    TurnEvidence,
    corpus_term_weights,
    earlier_context,
    turn_features,
)
from assistant.turn.confidence import decide_before_answer
from assistant.turn.grounding import SentenceVectors
from assistant.turn.intent import PolicyRules, frustration, wants_human
from evals.bench.retrieval import bench_index, context_for, standalone_for
from evals.datasets import DatasetMissingError, doc2dial_turns
from evals.reliability import auroc, expected_calibration_error, recall_at_kept, reliability_table
from knowledge.index import KnowledgeIndex
from knowledge.retriever import Retriever
from knowledge.types import Document, SearchContext, SearchHit

Progress = Callable[[str, int, int], None]
Dataset = Literal["doc2dial", "clinc150"]
CLINC_COLLECTION = "bench_clinc150"
FOLDS = 5
C = 0.1  # L2 strength (sklearn C); 0.1-3 measured alike out of fold, the stronger one kept for held-out pages


@dataclass
class Example:
    dataset: Dataset
    id: str
    group: str
    label: int
    features: dict[str, float]
    scored: bool = True  # False: a training-only example (CLINC's oos_train)
    intent_handoff: bool = False  # intent alone would hand it off (a request for a person, a policy topic)
    evidence: dict[str, Any] | None = None  # the TurnEvidence the features came from (to recompute them)


def _answerer(settings: Settings, retriever: Retriever) -> Answerer:
    chat = ChatGateway(FakeSupportChatModel(), "fake", "unused")  # extractive mode never calls it
    answer = settings.answer.model_copy(update={"mode": "extractive"})
    return Answerer(chat, retriever.index.embedder, answer, settings.company_name)


def _retriever(settings: Settings, index: KnowledgeIndex) -> Retriever:
    """The engine's retriever (`assistant.services.build_retriever`): the features are read from what it returns."""
    return build_retriever(settings, index)


class _Pipeline:
    """The engine's retrieval -> extractive answer -> features, without a database."""

    def __init__(self, settings: Settings, retriever: Retriever) -> None:
        self.settings = settings
        self.retriever = retriever
        self.answerer = _answerer(settings, retriever)
        self.vectors = self.answerer.vectors
        self.weights = corpus_term_weights(retriever)
        self.last: TurnEvidence | None = None  # the evidence of the last call (kept with the example)

    def features(
        self,
        message: str,
        query: str,
        exclude: list[str] | None = None,
        earlier_turns: int = 0,
        frustration_score: float = 0.0,
        context: SearchContext | None = None,
        earlier: str = "",
    ) -> dict[str, float]:
        """As the engine's turn: the message searched with the conversation as `context` (what
        `TurnEngine.search_request` gives it), `query` the standalone question the features read, `earlier` the
        customer's earlier messages (`TurnEvidence.context`)."""
        n = max(POOL, self.settings.retrieval.top_k)
        if context is not None:
            pool = self.retriever.search(message, n, exclude_sources=exclude, context=context)
        else:
            pool = self.retriever.search(query, n, exclude_sources=exclude)
        hits = pool[: self.settings.retrieval.top_k]  # what a search for the top-k returns (same ranking)
        gen = self.answerer.stream(message, hits, CustomerContext(), [], search_query=query)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                evidence = stop.value.evidence
                break
        turn = TurnEvidence(
            message=message,
            query=query,
            hits=hits,
            pool=pool,
            mode=evidence.mode,
            shown_relevance=evidence.answer_relevance,
            earlier_turns=earlier_turns,
            frustration=frustration_score,
            context=earlier,
        )
        self.last = turn
        weights = corpus_term_weights(self.retriever, exclude) if exclude else self.weights
        return turn_features(turn, self.vectors, weights)

    def saved(self) -> dict[str, Any] | None:
        """The last call's evidence as JSON-ready data."""
        ev = self.last
        if ev is None:
            return None
        return {
            **{
                k: getattr(ev, k)
                for k in ("message", "query", "mode", "shown_relevance", "earlier_turns", "frustration", "context")
            },
            "hits": len(ev.hits),
            "pool": [h.model_dump(mode="json") for h in ev.pool],
        }


def doc2dial_examples(
    settings: Settings, data_dir: Path, limit: int | None = None, seed: int = 0, progress: Progress | None = None
) -> list[Example]:
    index, _ = bench_index(settings, data_dir, progress=progress)
    pipe = _Pipeline(settings, _retriever(settings, index))
    rules = PolicyRules(settings.policy.rules)
    turns = doc2dial_turns(data_dir)
    if limit is not None and limit < len(turns):
        turns = random.Random(seed).sample(turns, limit)
    out: list[Example] = []
    for i, t in enumerate(turns, 1):
        earlier = [u for role, u in t.history if role == "user"]
        fr = frustration(
            t.utterance,
            earlier[-5:],
            pipe.vectors.embed_one(t.utterance),
            pipe.vectors.embed(earlier[-5:]) if earlier else None,
            settings.policy.repeat_similarity,
        )
        intent = IntentEvidence(
            wants_human=wants_human(t.utterance), policy_topics=rules.topics(t.utterance), frustration_score=fr.score
        )
        pre = decide_before_answer(intent, settings.policy) is not None
        query = standalone_for(t)
        context = context_for(t, settings)
        for label, exclude in ((1, None), (0, [t.doc_id])):
            feats = pipe.features(
                t.utterance, query, exclude, len(earlier), fr.score, context, earlier_context(earlier)
            )
            out.append(
                Example(
                    "doc2dial", f"{t.id}/{label}", t.doc_id, label, feats, intent_handoff=pre, evidence=pipe.saved()
                )
            )
        if progress:
            progress("doc2dial turns", i, len(turns))
    return out + cross_domain_examples(settings, data_dir, pipe, seed, progress)


CROSS_IN_SCOPE = 200


def cross_domain_examples(
    settings: Settings, data_dir: Path, pipe: _Pipeline, seed: int = 0, progress: Progress | None = None
) -> list[Example]:
    """Questions from another domain put to the doc2dial help center: CLINC150's out-of-scope queries and a sample
    of its in-scope ones (banking, travel, small talk), none of which government help pages answer. Without them
    the article half of the model only ever sees a page missing among its neighbours, never a question from
    nowhere ("what is the boiling point of tungsten?"). Training-only (not scored): the doc2dial figures stay on
    present vs removed pages."""
    rows = clinc_rows(data_dir)
    queries = [q for q, _ in random.Random(seed).sample(rows["val"], CROSS_IN_SCOPE)]
    queries += [q for q, _ in [*rows["oos_val"], *rows.get("oos_train", [])]]
    out = []
    for i, q in enumerate(queries, 1):
        feats = pipe.features(q, q)
        out.append(
            Example("doc2dial", f"cross/{i}", f"cross/{i % FOLDS}", 0, feats, scored=False, evidence=pipe.saved())
        )
        if progress:
            progress("other-domain questions", i, len(queries))
    return out


def clinc_rows(data_dir: Path) -> dict[str, list[list[str]]]:
    path = data_dir / "clinc150" / "dev.json"
    if not path.is_file():
        raise DatasetMissingError(f"dataset file not found: {path} (set CXA_SHARED_DATA_DIR or --data)")
    rows: dict[str, list[list[str]]] = json.loads(path.read_text(encoding="utf-8"))
    return rows


def clinc_examples(
    settings: Settings,
    data_dir: Path,
    limit: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    with_oos_train: bool = True,
) -> list[Example]:
    rows = clinc_rows(data_dir)
    index = build_index(settings.model_copy(update={"collection": CLINC_COLLECTION}))
    docs = [
        Document(
            source_id=f"{intent}/{i}",
            title=intent.replace("_", " "),
            text=text,
            format="text",
            metadata={"intent": intent},
        )
        for i, (text, intent) in enumerate(rows["train"])
    ]
    index.ingest(
        docs, origin="clinc150", prune=True, progress=(lambda d, t: progress("ingest", d, t)) if progress else None
    )
    pipe = _Pipeline(settings, _retriever(settings, index))
    in_scope = [(q, intent) for q, intent in rows["val"]]
    if limit is not None and limit < len(in_scope):
        in_scope = random.Random(seed).sample(in_scope, limit)
    items: list[tuple[str, str, int, bool]] = [(q, intent, 1, True) for q, intent in in_scope]
    items += [(q, f"oos/{i % FOLDS}", 0, True) for i, (q, _) in enumerate(rows["oos_val"])]
    if with_oos_train:
        items += [(q, f"oos/{i % FOLDS}", 0, False) for i, (q, _) in enumerate(rows.get("oos_train", []))]
    out = []
    for i, (q, group, label, scored) in enumerate(items, 1):
        feats = pipe.features(q, q)
        out.append(Example("clinc150", f"clinc/{i}", group, label, feats, scored=scored, evidence=pipe.saved()))
        if progress:
            progress("CLINC150 queries", i, len(items))
    return out


# -- fitting ----------------------------------------------------------------------------------------------------


def _matrix(examples: list[Example]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([[e.features.get(f, 0.0) for f in FEATURES] for e in examples], dtype=float)
    y = np.array([e.label for e in examples], dtype=int)
    return x, y


def _weights(examples: list[Example]) -> np.ndarray:
    """Each dataset weighs the same in total."""
    counts: dict[str, int] = {}
    for e in examples:
        counts[e.dataset] = counts.get(e.dataset, 0) + 1
    mean = len(examples) / max(1, len(counts))
    return np.array([mean / counts[e.dataset] for e in examples], dtype=float)


@dataclass
class Fitted:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40, 40))))


def fit_logistic(examples: list[Example], c: float = C) -> Fitted:
    x, y = _matrix(examples)
    w = _weights(examples)
    mean = np.average(x, axis=0, weights=w)
    # Interaction terms are scaled but not centred: for a turn of article chunks (short_entries 0) they are 0 and
    # contribute nothing, so an explanation never blames a "for short entries" feature for an article's turn.
    mean[[i for i, name in enumerate(FEATURES) if name.endswith("|short")]] = 0.0
    scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
    scale[scale < 1e-9] = 1.0
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit((x - mean) / scale, y, sample_weight=w)
    return Fitted(mean, scale, model.coef_[0].copy(), float(model.intercept_[0]))


def cross_validate(examples: list[Example], folds: int = FOLDS, c: float = C) -> np.ndarray:
    """Out-of-fold probabilities: folds grouped by page (doc2dial) and intent (CLINC150)."""
    groups = [f"{e.dataset}:{e.group}" for e in examples]
    oof = np.zeros(len(examples))
    n_groups = len(set(groups))
    for train, test in GroupKFold(n_splits=min(folds, n_groups)).split(np.zeros(len(examples)), groups=groups):
        fitted = fit_logistic([examples[i] for i in train], c)
        x, _ = _matrix([examples[i] for i in test])
        oof[test] = fitted.predict(x)
    return oof


def figures(examples: list[Example], p: np.ndarray, dataset: Dataset) -> DatasetFigures | None:
    idx = [i for i, e in enumerate(examples) if e.dataset == dataset and e.scored]
    if not idx:
        return None
    probs = p[idx]
    labels = np.array([examples[i].label for i in idx])
    pos, neg = probs[labels == 1], probs[labels == 0]
    return DatasetFigures(
        rows=len(idx),
        positives=int(labels.sum()),
        auroc=round(auroc(pos, neg), 4),
        ece=round(expected_calibration_error(probs, labels), 4),
        reliability=reliability_table(probs, labels),
        oos_recall_at_95=round(recall_at_kept(pos, neg)[1], 4) if dataset == "clinc150" else None,
    )


class TrainingRun(BaseModel):
    artifact: AnswerabilityArtifact
    written_to: str | None = None


def train(
    examples: list[Example], folds: int = FOLDS, c: float = C, notes: list[str] | None = None
) -> AnswerabilityArtifact:
    """Out-of-fold figures, then the model fitted on every example, as the artifact the engine loads."""
    oof = cross_validate(examples, folds, c)
    fitted = fit_logistic(examples, c)
    figs = {d: f for d in ("doc2dial", "clinc150") if (f := figures(examples, oof, d)) is not None}  # type: ignore[arg-type]
    payload = json.dumps([list(FEATURES), fitted.coef.round(6).tolist(), round(fitted.intercept, 6)])
    digest = hashlib.sha256(payload.encode()).hexdigest()[:8]
    now = utcnow()
    counts: dict[str, int] = {}
    for e in examples:
        counts[e.dataset] = counts.get(e.dataset, 0) + 1
    return AnswerabilityArtifact(
        version=f"answerability-{now:%Y%m%d}-{digest}",
        trained_at=now,
        features=list(FEATURES),
        mean=[round(float(v), 6) for v in fitted.mean],
        scale=[round(float(v), 6) for v in fitted.scale],
        coef=[round(float(v), 6) for v in fitted.coef],
        intercept=round(fitted.intercept, 6),
        regularisation_c=c,
        folds=folds,
        training_rows=counts,
        figures=figs,
        notes=notes or [],
    )


def write_artifact(artifact: AnswerabilityArtifact, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(artifact.model_dump_json(indent=1) + "\n", encoding="utf-8")
    return path


def write_examples(examples: list[Example], path: Path) -> Path:
    """The collected examples as JSONL (features and labels), for inspecting a model's inputs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for e in examples:
            row = {
                "dataset": e.dataset,
                "id": e.id,
                "group": e.group,
                "label": e.label,
                "scored": e.scored,
                "intent_handoff": e.intent_handoff,
                "features": e.features,
                "evidence": e.evidence,
            }
            fh.write(json.dumps(row) + "\n")
    return path


def read_examples(path: Path) -> list[Example]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            out.append(
                Example(
                    r["dataset"],
                    r["id"],
                    r["group"],
                    r["label"],
                    r["features"],
                    r["scored"],
                    r["intent_handoff"],
                    r.get("evidence"),
                )
            )
    return out


def evidence_of(saved: dict[str, Any]) -> TurnEvidence:
    """A `TurnEvidence` back from `_Pipeline.saved()` data."""
    pool = [SearchHit.model_validate(h) for h in saved["pool"]]
    return TurnEvidence(
        message=saved["message"],
        query=saved["query"],
        hits=pool[: saved["hits"]],
        pool=pool,
        mode=saved["mode"],
        shown_relevance=saved["shown_relevance"],
        earlier_turns=saved["earlier_turns"],
        frustration=saved["frustration"],
        context=saved.get("context", ""),
    )


def recompute(examples: list[Example], vectors: SentenceVectors, retrievers: dict[str, Retriever]) -> None:
    """Features again from the saved evidence (after a change of features, not of retrieval): doc2dial's
    removed-page examples with that page left out of the term weights, as when they were collected."""
    plain = {name: corpus_term_weights(r) for name, r in retrievers.items()}
    for e in examples:
        if e.evidence is None:
            continue
        removed = e.dataset == "doc2dial" and e.label == 0
        weights = corpus_term_weights(retrievers[e.dataset], [e.group]) if removed else plain[e.dataset]
        e.features = turn_features(evidence_of(e.evidence), vectors, weights)
