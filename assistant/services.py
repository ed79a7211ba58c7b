"""Wiring: build the engine and its collaborators from `Settings`, once per process.

The API's lifespan, the CLI and the benchmarks all build through here, so a request never loads a
model or opens a database engine of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel

from assistant import doctor
from assistant.account.answer import AccountAnswerer
from assistant.account.calling import ToolCallingPhraser
from assistant.account.records import CustomerRecords
from assistant.account.router import AccountRouter
from assistant.approved.matcher import ApprovedMatcher, ApprovedSearch
from assistant.approved.service import ApprovedAnswerService
from assistant.handoff.desk import AgentDesk
from assistant.handoff.service import HandoffService
from assistant.handoff.summary import Summarizer
from assistant.handoff.webhooks import WebhookNotifier
from assistant.insights.copilot import Copilot
from assistant.insights.drafts import GapDrafter
from assistant.insights.gaps import KnowledgeGaps
from assistant.insights.quality import HandoffReview
from assistant.llm import ChatGateway
from assistant.models import utcnow
from assistant.prompts import instruction_texts
from assistant.safety.guard import OutputGuard
from assistant.settings import Settings
from assistant.store.repo import Store
from assistant.telemetry.observability import TurnObserver
from assistant.telemetry.recorder import Telemetry
from assistant.telemetry.signals import TopicFn
from assistant.telemetry.topics import topics_for
from assistant.turn.answer import Answerer
from assistant.turn.answerability import AnswerabilityModel, corpus_term_weights
from assistant.turn.engine import ConversationEngine
from assistant.turn.grounding import SentenceVectors
from assistant.turn.history import HistoryBuilder
from assistant.turn.warming import BackgroundWarmer, Progress, Warming, WarmReport
from knowledge.base import KnowledgeBase
from knowledge.embeddings import MiniLMEmbedder, shared_embedder
from knowledge.errors import IndexUnavailableError, KnowledgeError
from knowledge.index import KnowledgeIndex, open_client
from knowledge.retriever import Retriever
from knowledge.textvectors import TextVectorStore

logger = logging.getLogger(__name__)


class _UnavailableClient:
    """Stands in for a Chroma client that could not be opened: every use raises `IndexUnavailableError`,
    which the index reports and the engine hands off. A corrupt directory stays so (the original error);
    a Chroma server that was down at start is tried again on each use, and once it answers this client is
    the real one (the API recovers when the server comes up, as it does when the database comes back)."""

    def __init__(self, error: IndexUnavailableError, reopen: Callable[[], Any] | None = None) -> None:
        self._error = error
        self._reopen = reopen
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            if self._reopen is None:
                raise IndexUnavailableError(str(self._error))
            self._client = self._reopen()  # raises IndexUnavailableError while the server is still down
            logger.info("the knowledge index server answers again")
        return getattr(self._client, name)


def build_index(
    settings: Settings,
    embedder: MiniLMEmbedder | None = None,
    *,
    tolerate_unavailable: bool = False,
    bulk: bool = False,
) -> KnowledgeIndex:
    """With `tolerate_unavailable`, an index that cannot be opened still yields a `KnowledgeIndex`
    whose every use raises `IndexUnavailableError` (the server starts, not ready, and degrades), until a
    Chroma server that was down answers. `bulk`: for a process that only ingests (`cxa ingest`): the
    embedding model's threads spin between runs, as onnxruntime does by default (ingest 0.74 -> 0.87 of the
    bare model's throughput in `cxa bench ingest`); a server keeps `CXA_EMBEDDING__SPIN_THREADS`."""
    emb = embedder or shared_embedder(
        settings.embedding.model_path,
        settings.embedding.tokenizer_path,
        settings.embedding.max_length,
        settings.embedding.batch_size,
        settings.embedding.batch_tokens,
        settings.embedding.spin_threads or bulk,
    )
    url = settings.chroma_url
    try:
        client: Any = open_client(None if url else settings.chroma_dir, url)
    except IndexUnavailableError as exc:
        if not tolerate_unavailable:
            raise
        client = _UnavailableClient(exc, (lambda: open_client(None, url)) if url else None)
    return KnowledgeIndex(
        client, emb, settings.collection, settings.chunking.max_words, settings.chunking.overlap_words
    )


def build_retriever(settings: Settings, index: KnowledgeIndex) -> Retriever:
    """The hybrid retriever over `index` with `settings.retrieval`'s weights (the engine's and the benchmarks')."""
    r = settings.retrieval
    return Retriever(
        index,
        candidates=r.candidates,
        lexical_weight=r.lexical_weight,
        page_weight=r.page_weight,
        context_keyword_weight=r.context_keyword_weight,
        source_weight=r.source_weight,
        topic_margin=r.topic_margin,
        topic_min_similarity=r.topic_min_similarity,
    )


def open_text_vectors(settings: Settings, embedder: MiniLMEmbedder) -> TextVectorStore | None:
    """The help center's sentence vectors on disk (`knowledge.textvectors`), or None with
    `CXA_EMBEDDING__SENTENCE_STORE=false`. A file that cannot be used is logged and ignored (turns embed)."""
    if not settings.embedding.sentence_store:
        return None
    return TextVectorStore(settings.sentence_store_file, embedder.fingerprint)


def warm_sentences(
    settings: Settings, index: KnowledgeIndex, progress: Progress | None = None
) -> tuple[WarmReport | None, TextVectorStore | None]:
    """Embed now, flat out, the sentence vectors of `index` that the store lacks (`assistant.turn.warming`): the
    second stage of `cxa ingest`, and what a benchmark's index gets. Returns the report (None: the index was walked
    at this revision already, or another process is walking it) and the store, closed (None when it is off)."""
    store = open_text_vectors(settings, index.embedder)
    if store is None:
        return None, None
    try:
        warming = Warming(store, index.embedder, progress=progress)
        report = warming.index(index.iter_chunks, index.fresh_revision, settings.collection, index.count())
    finally:
        store.close()
    return report, store


def _topic_fn(settings: Settings, index: KnowledgeIndex) -> TopicFn | None:
    """The conversation-topic classifier (trained from the help center, cached), or None without one."""
    try:
        return topics_for(settings, index).topic_fn
    except Exception as exc:  # an empty or unavailable index: conversations get no topic, nothing else changes
        logger.warning("no topic classifier: %s", exc)
        return None


@dataclass
class Services:
    settings: Settings
    store: Store
    index: KnowledgeIndex
    retriever: Retriever
    chat: ChatGateway
    engine: ConversationEngine
    startup_problems: list[str] = field(default_factory=list)
    webhook: WebhookNotifier | None = None
    guard: OutputGuard = field(default_factory=OutputGuard)
    matcher: ApprovedMatcher | None = None
    text_vectors: TextVectorStore | None = None
    warmer: BackgroundWarmer | None = None

    def add_secrets(self, secrets: list[str]) -> None:
        """Credentials known only at start (generated keys): never in a prompt, never in a reply."""
        self.chat.add_secrets(secrets)
        self.guard.add_secrets(secrets)

    @cached_property
    def knowledge(self) -> KnowledgeBase:
        """The help center: put a document (its sentence vectors then warmed in the background), search it."""
        return KnowledgeBase(self.index, self.retriever, self.warmer.submit if self.warmer is not None else None)

    def start_warming(self) -> None:
        """A server's start: the sentence vectors the store is missing, embedded in the background
        (`assistant.turn.warming`); nothing with `CXA_EMBEDDING__WARM=off`."""
        if self.warmer is not None:
            self.warmer.start()

    @cached_property
    def customers(self) -> CustomerRecords:
        """Customer profiles and events, as the admin API keeps them."""
        return CustomerRecords(self.store)

    def readiness(self) -> dict[str, dict[str, Any]]:
        """Each dependency's check: the database, the knowledge index, the chat model (`ok` and a detail)."""
        checks: dict[str, dict[str, Any]] = {}
        try:
            self.store.ping()
            checks["database"] = {"ok": True}
        except Exception as exc:  # any failure means not ready; the message says which
            checks["database"] = {"ok": False, "detail": str(exc)}
        try:
            checks["index"] = {"ok": True, "chunks": self.index.count()}
        except Exception as exc:
            checks["index"] = {"ok": False, "detail": str(exc)}
        ok, detail = self.chat.ready()
        checks["chat_model"] = {"ok": ok, "detail": detail}
        return checks

    @cached_property
    def approved(self) -> ApprovedAnswerService:
        """Approved answers: create, edit, retire, list (served by the engine's approved-answer step)."""
        vectors = self.engine.answerer.vectors
        matcher = self.matcher or ApprovedMatcher(self.store.approved, vectors, self.settings.approved)
        return ApprovedAnswerService(
            self.store,
            matcher,
            self.retriever.search,
            self.index.documents,
            vectors,
            self.settings.approved,
            self.settings.answer.min_retrieval_score,
            has_secret=self.guard.secrets.found_in,
        )

    @cached_property
    def gaps(self) -> KnowledgeGaps:
        """The knowledge-gaps report (the questions the assistant could not answer, grouped)."""
        return KnowledgeGaps(self.store, self.engine.answerer.vectors, self.settings.insights, self.approved.matcher)

    @cached_property
    def drafter(self) -> GapDrafter:
        """Drafts an approved answer or an article outline from a gap (extractive, or by the configured model)."""
        return GapDrafter(
            self.engine.answerer.vectors,
            self.settings.insights,
            self.chat,
            self.settings.chat_provider,
            self.guard,
            self.settings.company_name,
        )

    @cached_property
    def handoff_quality(self) -> HandoffReview:
        """Per handoff: avoidable (an approved answer or a help passage answered it), and re-asked information."""
        return HandoffReview(self.store, self.engine.answerer.vectors, self.retriever.search, self.settings)

    @cached_property
    def copilot(self) -> Copilot:
        """Replies drafted for the agent of a handoff, and what agents did with them."""
        return Copilot(
            self.store,
            self.approved.matcher,
            self.retriever.search,
            self.engine.answerer,
            self.settings,
            account=self.engine.account,
        )

    @cached_property
    def agents(self) -> AgentDesk:
        """The agent side of handoffs (claim, reply, resolve, the packet); each reply decides the copilot's draft."""
        return AgentDesk(
            self.store,
            self.settings.history.max_events,
            self.engine.telemetry,
            on_reply=lambda cid, message, suggestion: self.copilot.on_agent_reply(
                cid, message.text, message.id, suggestion
            ),
        )

    @classmethod
    def build(
        cls,
        settings: Settings,
        chat_model: BaseChatModel | None = None,
        warm: bool = True,
        clock: Callable[[], datetime] = utcnow,
    ) -> Services:
        """`clock`: "now" for answers that compare the customer's record with the time (benchmarks replaying a
        fixed day set it; everything else keeps the real time)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store.from_settings(settings)
        webhook = handoff_webhook(settings, store)
        index = build_index(settings, tolerate_unavailable=True)
        problems: list[str] = []
        try:
            index.collection  # noqa: B018 - opens (and checks) the collection now, not on the first turn
        except KnowledgeError as exc:
            problems.append(str(exc))
            logger.error("knowledge index: %s", exc)
        retriever = build_retriever(settings, index)
        if not problems:
            try:  # the keyword index now, not on the first customer's turn (~1 minute at 100k chunks)
                retriever.warm()
            except KnowledgeError as exc:
                problems.append(str(exc))
                logger.error("keyword index: %s", exc)
        chat = ChatGateway.from_settings(settings, log=store.log_llm_call, model=chat_model)
        if warm:
            ok, detail = chat.ready()
            if not ok:
                problems.append(detail)
                logger.error("chat model: %s (turns will be handed to a person)", detail)
        words, history_tokens, transcript = settings.prompt_budget()
        guard = OutputGuard(settings.secret_values(), instruction_texts(settings.company_name))
        text_vectors = open_text_vectors(settings, index.embedder)
        answerer = Answerer(
            chat,
            index.embedder,
            settings.answer_settings(),
            settings.company_name,
            transcript,
            words,
            history_tokens,
            guard,
            first_token_s=settings.embedded.first_token_s if settings.chat_provider == "embedded" else None,
            text_store=text_vectors,
        )
        h = settings.history
        history = HistoryBuilder(store, h.token_budget, h.max_events, h.max_past_conversations)
        bg = settings.handoff.summary_in_background
        background = bg == "on" or (bg == "auto" and settings.chat_provider == "embedded")
        summarizer = Summarizer(chat, settings.handoff, settings.company_name, guard)
        handoffs = HandoffService(store, summarizer, background=background)
        telemetry = Telemetry(store, settings.telemetry, topic_fn=_topic_fn(settings, index))
        observer = TurnObserver(settings.telemetry.otel_endpoint)
        matcher = ApprovedMatcher(store.approved, answerer.vectors, settings.approved)
        serving = settings.approved.enabled
        search = ApprovedSearch(retriever.search, matcher, settings.approved.source_min_score) if serving else None
        engine = ConversationEngine(
            store,
            search or retriever.search,
            answerer,
            history,
            handoffs,
            chat,
            settings,
            telemetry,
            observer,
            account=account_answerer(settings, store, answerer.vectors, clock, chat, guard),
            approved=matcher if serving else None,
            answerability=AnswerabilityModel.load(settings.policy.answerability_model, corpus_term_weights(retriever)),
        )
        if warm and engine.account is not None:
            engine.account.router.warm()
        e = settings.embedding
        warmer = None
        if text_vectors is not None and e.warm == "background":
            pace = Warming(text_vectors, index.embedder, batch=e.warm_batch, rest=e.warm_rest)
            warmer = BackgroundWarmer(pace, index.iter_chunks, index.fresh_revision, settings.collection, index.count)
        return cls(
            settings,
            store,
            index,
            retriever,
            chat,
            engine,
            problems,
            webhook=webhook,
            guard=guard,
            matcher=matcher,
            text_vectors=text_vectors,
            warmer=warmer,
        )

    def check_consistency(self, fix: bool = True) -> list[doctor.Problem]:
        """`assistant.doctor.check` on this process's store: interrupted turns get an outcome, impossible
        states are repaired or reported (see that module)."""
        telemetry = self.engine.telemetry
        return doctor.check(
            self.store,
            self.engine.handoffs,
            interrupted_turn_s=self.settings.interrupted_turn_s,
            fix=fix,
            on_change=telemetry.refresh if telemetry is not None else None,
            on_handoff=telemetry.on_handoff if telemetry is not None else None,
        )

    def close(self) -> None:
        if self.warmer is not None:
            self.warmer.close()
        if self.text_vectors is not None:
            self.text_vectors.close()
        self.engine.handoffs.close()
        if self.webhook is not None:
            self.webhook.close()
        self.store.close()


def handoff_webhook(settings: Settings, store: Store) -> WebhookNotifier | None:
    """With `handoff_webhook_url` set, post every new handoff's packet there. Hooked on the store, where a
    handoff is committed, so every path that opens one (a turn, the customer's button) is covered."""
    if not settings.handoff_webhook_url:
        return None
    secret = settings.handoff_webhook_secret
    desk = AgentDesk(store, settings.history.max_events)
    notifier = WebhookNotifier(
        settings.handoff_webhook_url,
        secret.get_secret_value() if secret else None,
        packet=lambda handoff, _conversation: desk.packet(handoff.id),
    )
    store.add_handoff_listener(notifier.notify)
    return notifier


def account_answerer(
    settings: Settings,
    store: Store,
    vectors: SentenceVectors,
    clock: Callable[[], datetime] = utcnow,
    chat: ChatGateway | None = None,
    guard: OutputGuard | None = None,
) -> AccountAnswerer | None:
    """Answers from the verified customer's record, or None when `CXA_ACCOUNT__ENABLED=false`; worded by the
    configured model through function calling when `CXA_ACCOUNT__TOOL_CALLING` says so."""
    a = settings.account
    if not a.enabled:
        return None
    records = CustomerRecords(store)
    router = AccountRouter(vectors, min_score=a.min_score)
    calling = a.tool_calling == "on" or (a.tool_calling == "auto" and settings.chat_provider == "openai")
    phraser = None
    if calling and chat is not None:
        phraser = ToolCallingPhraser(
            chat, vectors, guard or OutputGuard(), settings.company_name, settings.answer.min_sentence_support
        )
    return AccountAnswerer(lambda cid, conv: records.record(cid, conv), router, a, clock, phraser)
