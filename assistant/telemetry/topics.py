"""The topic of a conversation, for telemetry: MiniLM sentence vectors + multinomial logistic regression.

**Which text is classified.** A conversation's topic is the topic of the customer's *first substantive
message*: the first one with at least two content words once greetings, pleasantries and pronouns are
set aside ("hi there" and "hello, can you help me?" are not substantive; "hi, my parcel never arrived"
is). The first real message is where customers state their issue; what follows answers the assistant's
questions ("yes", an order number) and would only add noise; and the classifier is validated on single
queries (BANKING77, `cxa bench topics`), which is what that message is. When no message is substantive,
the first two are classified together. The topic is fixed once found, so the figures do not move as a
conversation goes on.

**The model.** Texts are embedded with the offline MiniLM embedder (unit-length vectors) and classified
by a multinomial logistic regression (scikit-learn, lbfgs). The most likely topic under
`min_probability` is reported as `"other"` (with its probability, so a CX team can see how close it was).
Prediction is a matrix product and a softmax in numpy: a saved model (one `.npz` file, arrays and a JSON
header, no pickle) loads and predicts without scikit-learn.

**The product's default topics** (`help_center_topics`) are learned from the knowledge index itself:
every chunk, plus every document title and heading path (short, query-like texts), labelled by the first
segment of the document's `source_id` ("orders/change-or-cancel-an-order" -> "orders"); a document
without a "/" in its id is labelled by its title (as a slug), or "general". Chunk vectors are read
back from the index, so only the titles are embedded: the 34-article sample help center trains in well
under a second. `topics_for(settings, index)` loads `CXA_TOPICS__MODEL_PATH` when set, else trains from
the help center and caches the model under the data dir, retrained when the index revision changes.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from assistant.settings import Settings
from knowledge.embeddings import MODEL_NAME, MODEL_VERSION, MiniLMEmbedder, shared_embedder
from knowledge.index import KnowledgeIndex

logger = logging.getLogger(__name__)

OTHER = "other"
DEFAULT_C = 10.0  # inverse regularisation; the value the nested check of `cxa bench topics` picks on BANKING77
FORMAT = "cxa-topics/1"
MAX_LABEL_CHARS = 100  # conversations store their topic in a String(100) column

# Words that do not make a message substantive: greetings, pleasantries, pronouns, auxiliaries.
_FILLER = frozenset(
    """hi hello hey hiya heya yo hallo bonjour hola good morning afternoon evening day there all team folks
    thanks thank thx ty cheers please pls plz ok okay k yes yeah yep no nope sure right hmm um uh oh ah
    i i'm im i've ive me my mine we us our you your u it its it's this that a an the and or but so just
    can could would will do does did is are am be been was were have has had get got need want wondering
    help assist support question query quick hoping some someone somebody anyone anybody with for to of
    on in at about if there's here bot assistant""".split()  # noqa: SIM905 - a list literal of 120 words
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class TopicPrediction(BaseModel):
    label: str = Field(description='the topic, or "other" when the most likely one is under min_probability')
    probability: float = Field(description="probability of the most likely topic (also when label is 'other')")


def is_substantive(text: str) -> bool:
    """At least two content words once greetings, pleasantries and pronouns are set aside."""
    words = _WORD.findall(text.lower())
    return sum(w not in _FILLER for w in words) >= 2


def topic_text(customer_messages: Sequence[str]) -> str | None:
    """The text a conversation's topic is taken from (see the module docstring); None when there is none."""
    messages = [m.strip() for m in customer_messages if m and m.strip()]
    for m in messages:
        if is_substantive(m):
            return m
    return " ".join(messages[:2]) or None


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    probabilities: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return probabilities


class TopicClassifier:
    """Embeds with MiniLM, classifies with multinomial logistic regression. Fit once, share, predict from any
    thread (prediction only reads the weights)."""

    def __init__(
        self,
        embedder: MiniLMEmbedder | None = None,
        min_probability: float = 0.3,
        C: float = DEFAULT_C,  # scikit-learn's name for it
    ) -> None:
        if not 0 <= min_probability <= 1:
            raise ValueError("min_probability must be between 0 and 1")
        if C <= 0:
            raise ValueError("C must be positive")
        self._embedder = embedder
        self.min_probability = min_probability
        self.C = C
        self.labels: list[str] = []
        self.weights = np.zeros((0, 0), dtype=np.float32)  # (topics, dimensions)
        self.bias = np.zeros(0, dtype=np.float32)
        self.meta: dict[str, object] = {}

    @property
    def embedder(self) -> MiniLMEmbedder:
        if self._embedder is None:
            self._embedder = shared_embedder()
        return self._embedder

    @property
    def fitted(self) -> bool:
        return bool(self.labels)

    # -- training -----------------------------------------------------------------------------------

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> TopicClassifier:
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        return self.fit_vectors(self.embedder.embed(list(texts)), labels)

    def fit_vectors(self, vectors: np.ndarray, labels: Sequence[str]) -> TopicClassifier:
        """Train on precomputed embeddings (unit-length MiniLM vectors, one row per label)."""
        x = np.asarray(vectors, dtype=np.float32)
        y = np.asarray([str(label) for label in labels])
        if x.ndim != 2 or len(x) != len(y):
            raise ValueError(f"expected one vector per label, got {x.shape} for {len(y)} labels")
        if not len(y):
            raise ValueError("nothing to train on")
        classes = sorted(set(y.tolist()))
        if len(classes) == 1:  # one topic: it is always the answer
            self.labels = classes
            self.weights = np.zeros((1, x.shape[1]), dtype=np.float32)
            self.bias = np.zeros(1, dtype=np.float32)
        else:
            from sklearn.linear_model import LogisticRegression
            from threadpoolctl import threadpool_limits

            # One BLAS thread: with numpy's and scipy's OpenBLAS both threading, lbfgs runs ~5x slower on 2 cores.
            with threadpool_limits(1):
                model = LogisticRegression(C=self.C, max_iter=1000).fit(x, y)
            coef = np.asarray(model.coef_, dtype=np.float32)
            intercept = np.asarray(model.intercept_, dtype=np.float32)
            if len(model.classes_) == 2:  # binary: one logit z; softmax([-z/2, z/2]) = [1 - sigmoid(z), sigmoid(z)]
                coef = np.vstack([-coef[0] / 2, coef[0] / 2])
                intercept = np.array([-intercept[0] / 2, intercept[0] / 2], dtype=np.float32)
            self.labels = [str(c) for c in model.classes_]
            self.weights, self.bias = coef, intercept
        self.meta = {"trained_on": len(y)}
        return self

    # -- prediction ---------------------------------------------------------------------------------

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Topic probabilities, shape (len(vectors), len(self.labels)), columns in `self.labels` order."""
        x = np.asarray(vectors, dtype=np.float32)
        if not self.fitted:
            return np.zeros((len(x), 0), dtype=np.float32)
        return _softmax(x @ self.weights.T + self.bias)

    def predict_vectors(self, vectors: np.ndarray) -> list[TopicPrediction]:
        probs = self.probabilities(vectors)
        if not self.fitted:  # no topics known (an empty help center): everything is "other"
            return [TopicPrediction(label=OTHER, probability=0.0) for _ in range(len(probs))]
        best = probs.argmax(axis=1)
        out = []
        for row, i in zip(probs, best, strict=True):
            p = float(row[i])
            out.append(TopicPrediction(label=self.labels[i] if p >= self.min_probability else OTHER, probability=p))
        return out

    def predict(self, texts: Sequence[str]) -> list[TopicPrediction]:
        if not texts:
            return []
        if not self.fitted:
            return [TopicPrediction(label=OTHER, probability=0.0) for _ in texts]
        if len(texts) == 1:  # one conversation's message: usually embedded already in this turn (cached)
            return self.predict_vectors(self.embedder.embed_one(texts[0])[None, :])
        return self.predict_vectors(self.embedder.embed(list(texts)))

    def topic_of(self, customer_messages: Sequence[str]) -> TopicPrediction:
        """The conversation's topic from its customer messages, oldest first (see the module docstring)."""
        text = topic_text(customer_messages)
        if text is None:
            return TopicPrediction(label=OTHER, probability=0.0)
        return self.predict([text])[0]

    def topic_fn(self, customer_messages: list[str]) -> tuple[str, float] | None:
        """`topic_of` as telemetry's hook: None while the topic cannot be known yet (one message, not substantive)."""
        if not any(is_substantive(m) for m in customer_messages) and len(customer_messages) < 2:
            return None
        found = self.topic_of(customer_messages)
        return found.label, found.probability

    # -- persistence --------------------------------------------------------------------------------

    def save(self, path: Path, **meta: object) -> Path:
        """One `.npz` file: the weights, the topics and a JSON header (no pickle). Written atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "format": FORMAT,
            "embedding_model": MODEL_NAME,
            "embedding_version": MODEL_VERSION,
            "C": self.C,
            "min_probability": self.min_probability,
            **self.meta,
            **meta,
        }
        buf = io.BytesIO()
        np.savez(
            buf,
            header=np.array(json.dumps(header)),
            labels=np.array(self.labels, dtype=str),
            weights=self.weights,
            bias=self.bias,
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)
        return path

    @classmethod
    def load(
        cls, path: Path, embedder: MiniLMEmbedder | None = None, min_probability: float | None = None
    ) -> TopicClassifier:
        """A saved model; `min_probability` overrides the saved one. Refuses a model made with another embedder."""
        with np.load(Path(path), allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            if header.get("format") != FORMAT:
                raise ValueError(f"{path} is not a cx-assistant topic model ({header.get('format')!r})")
            if header.get("embedding_model") != MODEL_NAME or header.get("embedding_version") != MODEL_VERSION:
                raise ValueError(
                    f"{path} was trained on {header.get('embedding_model')!r} v{header.get('embedding_version')} "
                    f"vectors, this is {MODEL_NAME!r} v{MODEL_VERSION}: train it again"
                )
            clf = cls(
                embedder,
                float(header["min_probability"]) if min_probability is None else min_probability,
                float(header["C"]),
            )
            clf.labels = [str(label) for label in data["labels"]]
            clf.weights = np.asarray(data["weights"], dtype=np.float32)
            clf.bias = np.asarray(data["bias"], dtype=np.float32)
        clf.meta = {k: v for k, v in header.items() if k not in {"format", "C", "min_probability"}}
        return clf


# -- the help center's own topics -------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:MAX_LABEL_CHARS].strip("-")


def source_topic(source_id: str, title: str = "") -> str:
    """A document's topic: the first segment of its source_id, else its title as a slug, else "general"."""
    if "/" in source_id:
        head = source_id.split("/", 1)[0].strip()
        if head:
            return head[:MAX_LABEL_CHARS]
    return _slug(title) or "general"


def help_center_topics(
    index: KnowledgeIndex,
    min_probability: float = 0.3,
    C: float = DEFAULT_C,  # scikit-learn's name for it
) -> TopicClassifier:
    """A topic model learned from the index's chunks (stored vectors) and titles/heading paths (embedded here).
    An empty index gives a model with no topics: every conversation is "other"."""
    clf = TopicClassifier(index.embedder, min_probability, C)
    chunks = list(index.iter_chunks())
    if not chunks:
        return clf
    labels = [source_topic(c.source_id, c.title) for c in chunks]
    stored = index.embeddings([c.chunk_id for c in chunks])
    missing = [c for c in chunks if c.chunk_id not in stored]
    if missing:
        fresh = index.embedder.embed([c.context_text for c in missing])
        stored.update(zip([c.chunk_id for c in missing], fresh, strict=True))
    vectors = [stored[c.chunk_id] for c in chunks]
    paths: dict[str, str] = {}  # short, query-like texts: "Track your order", "Track your order > Delivery status"
    for c, label in zip(chunks, labels, strict=True):
        paths.setdefault(" > ".join([c.title, *c.headings]), label)
        paths.setdefault(c.title, label)
    texts = list(paths)
    vectors.extend(index.embedder.embed(texts))
    labels.extend(paths[t] for t in texts)
    clf.fit_vectors(np.vstack(vectors), labels)
    clf.meta["documents"] = len({c.source_id for c in chunks})
    return clf


def topics_for(settings: Settings, index: KnowledgeIndex) -> TopicClassifier:
    """The product's topic model: `CXA_TOPICS__MODEL_PATH` if set, else trained from the help center and cached
    at <data_dir>/topics/helpcenter.npz (trained again when the index has changed since)."""
    t = settings.topics
    if t.model_path is not None:
        return TopicClassifier.load(t.model_path, index.embedder, t.min_probability)
    cache = settings.data_dir / "topics" / "helpcenter.npz"
    revision = index.revision()
    if cache.is_file():
        try:
            clf = TopicClassifier.load(cache, index.embedder, t.min_probability)
            if clf.meta.get("index_revision") == revision and clf.meta.get("collection") == index.collection_name:
                return clf
        except (ValueError, OSError, KeyError) as exc:  # an unreadable or outdated cache is rebuilt
            logger.info("topic model cache %s not used: %s", cache, exc)
    clf = help_center_topics(index, t.min_probability)
    try:
        clf.save(cache, index_revision=revision, collection=index.collection_name)
    except OSError as exc:  # a read-only data dir: the model still works, it is just trained again next time
        logger.warning("cannot cache the topic model at %s: %s", cache, exc)
    return clf
