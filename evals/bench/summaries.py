"""Handoff summaries on TweetSumm dev: ROUGE-L against the human abstractive summaries.

Each dialogue (customer <-> agent on Twitter, mentions/links/signatures removed) is summarised as
a handoff would be: `Summarizer.summarize` with the configured chat model (the embedded SmolLM2 by
default), its checks and its per-field extractive fallback. The text scored is what an agent reads
first: issue, customer goal and the first "what was tried" line. The same figures are computed for
the extractive summary alone (no model), the floor the model has to beat. Also reported: the share
of summaries the model wrote (not fallen back), the share of the model's words found in the
dialogue (a faithfulness proxy), and the summary latency.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from assistant.handoff.summary import Summarizer, extractive_summary, supported_share
from assistant.llm import ChatGateway
from assistant.models import CustomerContext, HandoffSummary, Message, utcnow
from assistant.settings import Settings
from evals.datasets import TweetSummDialogue, tweetsumm_dialogues
from evals.rouge import rouge_l_multi
from evals.suite import Metric

Progress = Callable[[str, int, int], None]


class SummaryFigures(BaseModel):
    rouge_l_f1: float
    rouge_l_precision: float
    rouge_l_recall: float
    words: float  # mean length of the scored text


class SummariesResult(BaseModel):
    benchmark: str = "summaries/tweetsumm-rouge-l"
    dialogues: int
    model: str
    summary: SummaryFigures  # as configured (model-written with fallback)
    extractive: SummaryFigures  # no model
    model_written: float  # share of summaries with summary_source == "model"
    supported_words: float  # share of the scored text's content words found in the dialogue
    latency_ms_p50: float
    latency_ms_p95: float
    seconds: float

    def suite_metrics(self) -> list[Metric]:
        return [
            Metric("rouge_l_f1", round(self.summary.rouge_l_f1, 4)),
            Metric("rouge_l_f1_extractive", round(self.extractive.rouge_l_f1, 4)),
            Metric("model_written", round(self.model_written, 4)),
            Metric("supported_words", round(self.supported_words, 4)),
            Metric("latency_ms_p50", round(self.latency_ms_p50, 4), higher_is_better=False, kind="info"),
        ]

    def summary_rows(self) -> list[tuple[str, object]]:
        s, e = self.summary, self.extractive
        return [
            ("dialogues", self.dialogues),
            ("chat model", self.model),
            (
                "ROUGE-L F1 / P / R (as configured)",
                f"{s.rouge_l_f1:.3f} / {s.rouge_l_precision:.3f} / {s.rouge_l_recall:.3f}",
            ),
            (
                "ROUGE-L F1 / P / R (extractive, no model)",
                f"{e.rouge_l_f1:.3f} / {e.rouge_l_precision:.3f} / {e.rouge_l_recall:.3f}",
            ),
            ("words scored (as configured / extractive)", f"{s.words:.0f} / {e.words:.0f}"),
            ("summaries written by the model (not fallen back)", f"{self.model_written:.3f}"),
            ("content words found in the dialogue", f"{self.supported_words:.3f}"),
            ("summary latency p50 / p95 (ms)", f"{self.latency_ms_p50:.0f} / {self.latency_ms_p95:.0f}"),
            ("wall time (s)", f"{self.seconds:.0f}"),
        ]


def scored_text(summary: HandoffSummary) -> str:
    """The part of the packet an agent reads first, as one text."""
    parts = [summary.issue, summary.customer_goal, *summary.attempted[:1]]
    return " ".join(p.removeprefix("Agent: ") for p in parts if p)


def dialogue_messages(dialogue: TweetSummDialogue) -> list[Message]:
    now = utcnow()
    return [
        Message(id=str(i), conversation_id=dialogue.id, seq=i, role=speaker, text=text, created_at=now)  # type: ignore[arg-type]
        for i, (speaker, text) in enumerate(dialogue.turns)
    ]


def _figures(texts: list[str], refs: list[list[str]]) -> SummaryFigures:
    scores = [rouge_l_multi(t, r) for t, r in zip(texts, refs, strict=True)]
    n = max(1, len(scores))
    return SummaryFigures(
        rouge_l_f1=sum(s.f1 for s in scores) / n,
        rouge_l_precision=sum(s.precision for s in scores) / n,
        rouge_l_recall=sum(s.recall for s in scores) / n,
        words=sum(len(t.split()) for t in texts) / n,
    )


def run_summaries(
    settings: Settings,
    data_dir: Path,
    limit: int | None = None,
    progress: Progress | None = None,
    chat: ChatGateway | None = None,
) -> SummariesResult:
    dialogues = tweetsumm_dialogues(data_dir, limit)
    gateway = chat or ChatGateway.from_settings(settings)
    gateway.warm()
    summarizer = Summarizer(gateway, settings.handoff, settings.company_name)
    context = CustomerContext()
    started = time.perf_counter()
    texts, base_texts, refs, latencies, sources, supported = [], [], [], [], [], []
    for i, dialogue in enumerate(dialogues):
        messages = dialogue_messages(dialogue)
        t0 = time.perf_counter()
        summary, source = summarizer.summarize(messages, context, "low_confidence", dialogue.id)
        latencies.append((time.perf_counter() - t0) * 1000)
        text = scored_text(summary)
        texts.append(text)
        base_texts.append(scored_text(extractive_summary(messages, context, "low_confidence")))
        refs.append(dialogue.summaries)
        sources.append(source)
        supported.append(supported_share(text, " ".join(t for _, t in dialogue.turns)))
        if progress:
            progress("summaries", i + 1, len(dialogues))
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    return SummariesResult(
        dialogues=len(dialogues),
        model=f"{gateway.provider}:{gateway.model_name}",
        summary=_figures(texts, refs),
        extractive=_figures(base_texts, refs),
        model_written=sources.count("model") / max(1, len(sources)),
        supported_words=sum(supported) / max(1, len(supported)),
        latency_ms_p50=statistics.median(latencies) if latencies else 0.0,
        latency_ms_p95=q[18] if q else 0.0,
        seconds=time.perf_counter() - started,
    )
