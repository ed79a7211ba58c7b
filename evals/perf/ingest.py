"""Ingest throughput against its limit, the raw embedding model (`cxa bench ingest`).

Ours is the real ingest path, `KnowledgeIndex.ingest` (chunk -> hash -> embed -> write to Chroma) into a
fresh persistent Chroma directory, after loading the documents as `cxa ingest` does. The limit is the bare
ONNX session of the same model file, with the same tokenizer and `max_length`, on exactly the chunk texts
the ingest embedded, with the best batching for it: every text of a round sorted by token length (least
padding), and the batching (texts per run, or a budget of padded tokens per run) and thread setting
(onnxruntime's spinning worker threads on or off) that a short calibration finds fastest. Mean pooling and
normalisation are part of the limit (they make the model's output an embedding); Chroma, chunking and hashing are not.

The corpus (the sample help center and the first N doc2dial dev pages) is cut into rounds; each round is
ingested and embedded raw one after the other, the order alternating, so that a change in the machine's
load (other processes on 2 cores) hits both sides alike. Figures: chunks/s and tokens/s of each side, their
ratio (target: ingest at least 80% of the raw model), the ratio per round, and where the ingest's time went.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from assistant.services import build_index
from assistant.settings import Settings
from evals.datasets import doc2dial_documents
from evals.perf.stats import Machine, Ratio
from knowledge.chunking import chunk_document
from knowledge.embeddings import DIMENSIONS, default_model_path, default_tokenizer_path
from knowledge.index import WRITE_BATCH
from knowledge.loaders import SAMPLE_HELPCENTER, iter_folder
from knowledge.types import Document

Progress = Callable[[str, int, int], None]
TARGET = 0.80
# (texts, padded tokens) per ONNX run, at most: fixed sizes, and token budgets (long texts few at a time)
Batching = tuple[int, int | None]
CALIBRATION: tuple[Batching, ...] = ((4, None), (8, None), (16, None), (32, None), (64, 512), (64, 1024), (64, 2048))


class RawEmbedder:
    """The limit: one bare onnxruntime session and tokenizer, nothing else (no lock, no Chroma)."""

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        max_length: int = 256,
        spinning: bool = True,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_path or default_tokenizer_path()))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_length)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if not spinning:  # onnxruntime's default is on; MiniLMEmbedder turns it off (see knowledge.embeddings)
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.spinning = spinning
        self.session = ort.InferenceSession(
            str(model_path or default_model_path()), opts, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}

    def token_counts(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts)]

    def embed(
        self, texts: list[str], batch_size: int, max_tokens: int | None = None, stages: dict[str, float] | None = None
    ) -> np.ndarray:
        """Unit vectors for `texts` (in their order): all of them sorted by length, then cut into batches of
        at most `batch_size` texts and (with `max_tokens`) at most that many padded tokens."""
        stages = stages if stages is not None else {}
        t0 = time.perf_counter()
        encodings = self.tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        order = np.argsort(lengths, kind="stable")
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        batches: list[np.ndarray] = []
        b = 0
        while b < len(order):
            n = min(batch_size, len(order) - b)
            if max_tokens is not None:  # sorted ascending: the last text of a batch is its widest
                while n > 1 and n * lengths[order[b + n - 1]] > max_tokens:
                    n -= 1
            batches.append(order[b : b + n])
            b += n
        t1 = time.perf_counter()
        stages["tokenizing"] = stages.get("tokenizing", 0.0) + (t1 - t0)
        for idx in batches:
            t1 = time.perf_counter()
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            t2 = time.perf_counter()
            hidden = self.session.run(None, feeds)[0]
            t3 = time.perf_counter()
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            out[idx] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            t4 = time.perf_counter()
            stages["tokenizing"] += t2 - t1
            stages["model"] = stages.get("model", 0.0) + (t3 - t2)
            stages["pooling"] = stages.get("pooling", 0.0) + (t4 - t3)
        return out


class Throughput(BaseModel):
    seconds: float
    chunks_per_s: float
    tokens_per_s: float

    @classmethod
    def of(cls, seconds: float, chunks: int, tokens: int) -> Throughput:
        return cls(
            seconds=round(seconds, 3),
            chunks_per_s=round(chunks / seconds, 2) if seconds else 0.0,
            tokens_per_s=round(tokens / seconds, 1) if seconds else 0.0,
        )


class IngestRound(BaseModel):
    documents: int
    chunks: int
    tokens: int
    first: Literal["ingest", "raw"]
    ingest_s: float
    raw_s: float
    ingest_cpu_s: float = Field(description="CPU time of this process (all threads) during the ingest")
    raw_cpu_s: float
    ratio: float = Field(description="ingest throughput / raw throughput in this round (wall clock)")


class IngestBenchResult(BaseModel):
    benchmark: str = "perf/ingest"
    documents: int
    helpcenter_documents: int
    doc2dial_documents: int
    chunks: int
    tokens: int = Field(description="model tokens embedded (special tokens included, truncated to max_length)")
    mean_tokens_per_chunk: float
    ingest: Throughput = Field(description="ours: loading + KnowledgeIndex.ingest, summed over the rounds")
    raw: Throughput = Field(description="the limit: the bare ONNX session on the same texts, best batching")
    ratio: Ratio = Field(description="chunks/s of the ingest over chunks/s of the raw model (tokens/s: the same)")
    ratio_per_round_median: float
    ratio_per_round_min: float
    ratio_per_round_max: float
    cpu_ratio: float = Field(
        description="raw CPU seconds / ingest CPU seconds: the same ratio in CPU time, which other processes on "
        "the machine disturb less than the wall clock"
    )
    meets_target: bool
    stage_seconds: dict[str, float] = Field(description="where the ingest's time went, summed over the rounds")
    raw_stage_seconds: dict[str, float] = Field(description="the raw side: tokenizing, model, pooling")
    raw_batching: str = Field(description="texts per run, or texts/padded-token budget, fastest in the calibration")
    calibration_texts_per_s: dict[str, float] = Field(description="raw model texts/s per batching (calibration)")
    raw_spinning: bool = Field(description="the raw session kept onnxruntime's spinning threads (faster here)")
    embedding_batching: str = Field(description="what the ingest used: CXA_EMBEDDING__BATCH_SIZE / __BATCH_TOKENS")
    write_batch: int
    max_length: int
    rounds: list[IngestRound]
    wall_s: float
    machine: Machine
    load_after: float = Field(description="1-minute load average at the end")


def bench_corpus(data_dir: Path, docs: int) -> tuple[list[Document], int, float]:
    """The sample help center and the first `docs` doc2dial dev pages, loaded as `cxa ingest` loads them:
    (documents, how many are help-center articles, seconds spent loading)."""
    t0 = time.perf_counter()
    helpcenter = [d for _, d in iter_folder(SAMPLE_HELPCENTER) if isinstance(d, Document)]
    pages = list(itertools.islice(doc2dial_documents(data_dir), docs))
    return helpcenter + pages, len(helpcenter), time.perf_counter() - t0


def _rounds(documents: list[Document], n: int) -> list[list[Document]]:
    """`n` slices of about the same number of documents, interleaving help-center articles and pages."""
    n = max(1, min(n, len(documents)))
    return [documents[i::n] for i in range(n)]


def batching_name(b: Batching) -> str:
    return f"{b[0]}" if b[1] is None else f"{b[0]}/{b[1]}tok"


def calibrate(
    raw: RawEmbedder, texts: list[str], candidates: tuple[Batching, ...] = CALIBRATION
) -> dict[Batching, float]:
    """Texts/s of the raw model per batching on `texts`: each twice, in alternating order; the best run counts
    (another process taking the CPU only ever makes a run slower)."""
    runs: dict[Batching, list[float]] = {c: [] for c in candidates}
    for rep in range(2):
        for c in candidates if rep % 2 == 0 else tuple(reversed(candidates)):
            t0 = time.perf_counter()
            raw.embed(texts, c[0], c[1])
            runs[c].append(len(texts) / (time.perf_counter() - t0))
    return {c: max(v) for c, v in runs.items()}


def run_ingest_bench(
    settings: Settings,
    data_dir: Path,
    docs: int = 60,
    rounds: int = 6,
    raw_batching: Batching | None = None,
    calibration_texts: int = 24,
    progress: Progress | None = None,
) -> IngestBenchResult:
    started = time.perf_counter()
    machine = Machine()
    documents, helpcenter, load_s = bench_corpus(data_dir, docs)
    e, ch = settings.embedding, settings.chunking
    raw = RawEmbedder(e.model_path, e.tokenizer_path, e.max_length, spinning=False)
    slices = _rounds(documents, rounds)
    texts_per_round = [
        [c.context_text for d in part for c in chunk_document(d, ch.max_words, ch.overlap_words)] for part in slices
    ]
    all_texts = [t for ts in texts_per_round for t in ts]
    lengths = raw.token_counts(all_texts)
    tokens_per_round = [sum(raw.token_counts(ts)) for ts in texts_per_round]

    with tempfile.TemporaryDirectory(prefix="cxa-bench-ingest-") as tmp:
        st = settings.model_copy(
            update={"chroma_path": Path(tmp) / "chroma", "chroma_url": None, "collection": "bench_ingest"}
        )
        index = build_index(st, bulk=True)  # as `cxa ingest` opens it
        index.collection  # noqa: B018 - created before the clock starts, as an existing index would be
        # A sample across the length distribution; its first texts warm both sessions up (first runs allocate).
        by_length = [all_texts[i] for i in np.argsort(lengths, kind="stable")]
        sample = by_length[:: max(1, len(by_length) // calibration_texts)][:calibration_texts]
        index.embedder.embed(sample)
        raw.embed(sample, 8)
        calibration: dict[str, float] = {}
        if raw_batching is None:
            if progress:
                progress("calibrating the raw batching", 0, 1)
            by_batching = calibrate(raw, sample)
            raw_batching = max(by_batching, key=lambda c: by_batching[c])
            calibration = {batching_name(c): round(v, 1) for c, v in by_batching.items()}
            # onnxruntime's own default (threads spinning between runs) may suit the bare model better
            spinning = RawEmbedder(e.model_path, e.tokenizer_path, e.max_length, spinning=True)
            spinning.embed(sample, 8)
            both = calibrate(spinning, sample, (raw_batching,)), calibrate(raw, sample, (raw_batching,))
            calibration[f"{batching_name(raw_batching)} spinning"] = round(both[0][raw_batching], 1)
            if both[0][raw_batching] > both[1][raw_batching]:
                raw = spinning
            if progress:
                progress("calibrating the raw batching", 1, 1)

        stage_seconds: dict[str, float] = {"loading": load_s}
        raw_stages: dict[str, float] = {}
        results: list[IngestRound] = []
        done = 0
        for r, (part, texts, tokens) in enumerate(zip(slices, texts_per_round, tokens_per_round, strict=True)):
            first: Literal["ingest", "raw"] = "ingest" if r % 2 == 0 else "raw"
            wall: dict[str, float] = {}
            cpu: dict[str, float] = {}
            for side in ("ingest", "raw") if first == "ingest" else ("raw", "ingest"):
                t0, c0 = time.perf_counter(), time.process_time()
                if side == "ingest":
                    report = index.ingest(part, origin="bench")
                    if report.chunks_embedded != len(texts):
                        raise RuntimeError(f"the ingest embedded {report.chunks_embedded} chunks, not {len(texts)}")
                    for k, v in report.stage_seconds.items():
                        stage_seconds[k] = stage_seconds.get(k, 0.0) + v
                else:
                    raw.embed(texts, raw_batching[0], raw_batching[1], raw_stages)
                wall[side], cpu[side] = time.perf_counter() - t0, time.process_time() - c0
            results.append(
                IngestRound(
                    documents=len(part),
                    chunks=len(texts),
                    tokens=tokens,
                    first=first,
                    ingest_s=round(wall["ingest"], 3),
                    raw_s=round(wall["raw"], 3),
                    ingest_cpu_s=round(cpu["ingest"], 3),
                    raw_cpu_s=round(cpu["raw"], 3),
                    ratio=round(wall["raw"] / wall["ingest"], 4),
                )
            )
            done += len(texts)
            if progress:
                progress("ingest and raw, in turn", done, len(all_texts))

    tokens = sum(tokens_per_round)
    ours = Throughput.of(load_s + sum(x.ingest_s for x in results), len(all_texts), tokens)
    limit = Throughput.of(sum(x.raw_s for x in results), len(all_texts), tokens)
    ratios = [x.ratio for x in results]
    ratio = Ratio.of(ours.chunks_per_s, limit.chunks_per_s, target=f">= {TARGET:.2f}")
    return IngestBenchResult(
        documents=len(documents),
        helpcenter_documents=helpcenter,
        doc2dial_documents=len(documents) - helpcenter,
        chunks=len(all_texts),
        tokens=tokens,
        mean_tokens_per_chunk=round(tokens / len(all_texts), 1) if all_texts else 0.0,
        ingest=ours,
        raw=limit,
        ratio=ratio,
        ratio_per_round_median=round(statistics.median(ratios), 4),
        ratio_per_round_min=round(min(ratios), 4),
        ratio_per_round_max=round(max(ratios), 4),
        cpu_ratio=round(sum(x.raw_cpu_s for x in results) / sum(x.ingest_cpu_s for x in results), 4),
        meets_target=ratio.ratio >= TARGET,
        stage_seconds={k: round(v, 3) for k, v in sorted(stage_seconds.items(), key=lambda kv: -kv[1])},
        raw_stage_seconds={k: round(v, 3) for k, v in raw_stages.items()},
        raw_batching=batching_name(raw_batching),
        calibration_texts_per_s=calibration,
        raw_spinning=raw.spinning,
        embedding_batching=batching_name((e.batch_size, e.batch_tokens)),
        write_batch=WRITE_BATCH,
        max_length=e.max_length,
        rounds=results,
        wall_s=round(time.perf_counter() - started, 1),
        machine=machine,
        load_after=round(Machine().load_1m, 2),
    )


def summary_rows(r: IngestBenchResult) -> list[tuple[str, Any]]:
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in r.stage_seconds.items())
    raw_stages = ", ".join(f"{k} {v:.1f}s" for k, v in r.raw_stage_seconds.items())
    calibration = ", ".join(f"{k}: {v}/s" for k, v in r.calibration_texts_per_s.items())
    return [
        ("documents (help center + doc2dial)", f"{r.documents} ({r.helpcenter_documents} + {r.doc2dial_documents})"),
        ("chunks / model tokens (mean per chunk)", f"{r.chunks} / {r.tokens} ({r.mean_tokens_per_chunk})"),
        ("ingest: chunks/s / tokens/s", f"{r.ingest.chunks_per_s:.1f} / {r.ingest.tokens_per_s:.0f}"),
        ("raw model (limit): chunks/s / tokens/s", f"{r.raw.chunks_per_s:.1f} / {r.raw.tokens_per_s:.0f}"),
        ("ratio ingest / raw (target >= 0.80)", f"{r.ratio.ratio:.3f}" + ("" if r.meets_target else "  BELOW TARGET")),
        (
            f"ratio per round, median (min..max, {len(r.rounds)} rounds)",
            f"{r.ratio_per_round_median:.3f} ({r.ratio_per_round_min:.3f}..{r.ratio_per_round_max:.3f})",
        ),
        ("ratio in CPU time (raw / ingest)", f"{r.cpu_ratio:.3f}"),
        ("ingest time by stage", stages),
        ("raw time by stage", raw_stages),
        (
            "batching: ingest / raw",
            f"{r.embedding_batching} / {r.raw_batching}" + (", threads spinning" if r.raw_spinning else ""),
        ),
        ("raw calibration", calibration or "- (given)"),
        (
            "wall time (s) / load average before -> after",
            f"{r.wall_s:.0f} / {r.machine.load_1m:.2f} -> {r.load_after:.2f}",
        ),
    ]
