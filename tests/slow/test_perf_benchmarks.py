"""The performance benchmarks run end to end on tiny settings (slow: real embedding model, a server process,
llama.cpp). Only their bookkeeping is checked: the figures themselves come from `cxa bench ...`."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from assistant.llm import LlamaCppChatModel, default_gguf_path
from evals.perf.ingest import run_ingest_bench
from evals.perf.stream import run_stream_bench
from tests.conftest import make_settings

pytestmark = pytest.mark.slow


def test_ingest_bench_embeds_every_chunk_on_both_sides(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    if not (settings.shared_data_dir / "doc2dial" / "documents.jsonl").is_file():
        pytest.skip("the shared doc2dial data is not here")
    r = run_ingest_bench(settings, settings.shared_data_dir, docs=2, rounds=2, raw_batching=(8, None))
    assert r.doc2dial_documents == 2 and r.helpcenter_documents > 0
    assert sum(x.chunks for x in r.rounds) == r.chunks and sum(x.tokens for x in r.rounds) == r.tokens
    assert [x.first for x in r.rounds] == ["ingest", "raw"]  # the order alternates
    assert {"chunking", "hashing", "embedding", "writing"} <= set(r.stage_seconds)
    assert r.ratio.ratio == pytest.approx(r.ingest.chunks_per_s / r.raw.chunks_per_s, rel=1e-6)
    assert not (settings.data_dir / "chroma").exists()  # a temporary index, never the configured one


def test_stream_bench_audits_every_run() -> None:
    r = run_stream_bench(concurrency=4, duration_s=3.0, workers=(1,), delays_ms=(5.0,))
    (run,) = r.runs
    assert r.clean and run.turns > 0 and run.first_token.n > 0 and run.turn.n >= run.first_token.n
    assert run.server_cpu_ms_per_turn is not None and run.server_cpu_ms_per_turn > 0


def test_answers_in_a_context_of_their_own_write_the_same_text() -> None:
    messages = [SystemMessage(content="You are a helpful assistant."), HumanMessage(content="Name a colour.")]
    shared = LlamaCppChatModel(model_path=str(default_gguf_path()), max_tokens=12)
    own = LlamaCppChatModel(model_path=str(default_gguf_path()), max_tokens=12, own_contexts=("answer",))

    def text(model: LlamaCppChatModel, prompt: str) -> str:
        return "".join(str(c.content) for c in model.stream(messages, prompt_name=prompt))

    expected = text(shared, "answer")
    assert text(own, "handoff_summary") == text(own, "answer") == text(own, "answer") == expected
