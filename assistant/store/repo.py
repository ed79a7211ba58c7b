"""The SQL store: repository functions over the tables, returning domain models (never rows).

One `Store` per process holds one SQLAlchemy engine (never one per turn). Every write is its own
short transaction, so a customer's message is committed before anything else of the turn runs.
SQLite runs in WAL mode with a busy timeout, so readers never block the writer.

At start the schema is migrated to this code's version (`assistant.store.migrate`, unless `migrate="off"`).
Every write that numbers a message (`_next_seq`) or changes a conversation's status (`_transition`) marks the
conversation touched, and `session()` hands the marks to the live bus (`assistant.store.live`) around the
commit, which wakes the conversation's `/events` streams in every process.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import and_, create_engine, event, func, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.orm import Session, sessionmaker

from assistant import states
from assistant.errors import ConflictError, ConversationNotFoundError, HandoffNotFoundError, StoreUnavailableError
from assistant.models import (
    AnswerEvidence,
    Citation,
    Conversation,
    ConversationFacts,
    ConversationStatus,
    CustomerEvent,
    CustomerProfile,
    Feedback,
    Handoff,
    HandoffSummary,
    IntentEvidence,
    Message,
    PastConversation,
    Review,
    Role,
    Scorecard,
    SignalEvent,
    ToolCall,
    TurnRecord,
    utcnow,
)
from assistant.settings import Settings
from assistant.store import live, locks, migrate
from assistant.store.tables import (
    ConversationFactsRow,
    ConversationRow,
    CustomerEventRow,
    CustomerRow,
    FeedbackRow,
    HandoffRow,
    LLMCallRow,
    MessageRow,
    ReviewRow,
    ScorecardRow,
    SignalEventRow,
    TurnRow,
)

logger = logging.getLogger(__name__)

HandoffListener = Callable[[Handoff, Conversation], None]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _aware(dt: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; everything we store is UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def make_engine(url: str, busy_timeout_s: float = 15.0, pool_size: int = 10, max_overflow: int = 20) -> Engine:
    """One engine per process. A writer finding what it must change locked by another connection waits up
    to `busy_timeout_s`, then gets an `OperationalError` that `Store.session` turns into a 503: SQLite's busy
    timeout ("database is locked"), PostgreSQL's `lock_timeout` (a row held by a stuck transaction would
    otherwise hold the request forever). A server database: connections are pinged before use, so one
    dropped while idle (a restart) is replaced, not reported; each process keeps up to `pool_size` connections
    open and opens up to `max_overflow` more at a peak."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cur.close()

        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _postgres_session(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f"SET lock_timeout = {int(busy_timeout_s * 1000)}")
            cur.close()
            dbapi_conn.commit()  # a SET rolled back with its transaction would not last the session

    return engine


class Store:
    def __init__(
        self,
        url: str,
        busy_timeout_s: float = 15.0,
        *,
        migrate_schema: Literal["auto", "off"] = "auto",
        listen: bool = True,
        pool_size: int = 10,
        max_overflow: int = 20,
    ) -> None:
        """`migrate_schema`: auto = upgrade the schema to this code's head now (under a lock: workers starting
        together migrate once); off = only check it is there (`StoreUnavailableError` if it is behind: run
        `cxa db upgrade`). `listen`: PostgreSQL LISTEN/NOTIFY wakes live streams across processes."""
        self.url = url
        try:
            self.engine = make_engine(url, busy_timeout_s, pool_size, max_overflow)
            if migrate_schema == "auto":
                migrate.upgrade(self.engine)
            else:
                migrate.require_head(self.engine)
        except migrate.UnknownRevisionError as exc:  # newer code migrated it: this older worker runs as it is
            logger.warning("%s; running without migrating", exc)
        except migrate.MigrationError as exc:
            raise StoreUnavailableError(str(exc)) from exc
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(f"the database cannot be opened ({exc.__class__.__name__}: {exc})") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._handoff_listeners: list[HandoffListener] = []
        self.live = live.make_bus(self.engine, listen)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(
            settings.sqlalchemy_url,
            settings.database_busy_timeout_s,
            migrate_schema=settings.database_migrate,
            listen=settings.live.listen,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )

    def add_handoff_listener(self, listener: HandoffListener) -> None:
        """Call `listener(handoff, conversation)` after each new handoff is committed (e.g. the webhook).
        It runs on the writer's thread: it must return at once; its exceptions are logged, never raised."""
        self._handoff_listeners.append(listener)

    @contextmanager
    def try_exclusive(self, name: str) -> Iterator[bool]:
        """True when this process got the lock `name` among every process on this database, for the block;
        False when another holds it (skip the work). For periodic jobs one worker should run at a time."""
        try:
            with locks.try_exclusive(self.engine, name) as held:
                yield held
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(f"the database cannot be reached ({exc.__class__.__name__})") from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        s = self._sessions()
        try:
            yield s
            touched = s.info.pop(live.TOUCHED, None)
            if touched:
                self.live.before_commit(s, touched)  # PostgreSQL: NOTIFY inside the transaction (sent on commit)
            s.commit()
            if touched:
                self.live.after_commit(touched)
        except (OperationalError, SATimeoutError) as exc:  # locked, unreachable, or no pooled connection free
            s.rollback()
            # The driver's words are for the log, not the caller (they name files and internals).
            logger.warning("database unavailable: %s", getattr(exc, "orig", None) or exc)
            raise StoreUnavailableError("the database is unavailable (locked or unreachable); retry shortly") from exc
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def ping(self) -> None:
        with self.session() as s:
            s.execute(text("SELECT 1"))

    def close(self) -> None:
        self.live.close()
        self.engine.dispose()

    # -- customers --------------------------------------------------------------------------------

    def upsert_customer(self, profile: CustomerProfile) -> tuple[CustomerProfile, bool]:
        """Create or replace a profile; returns it and whether it was new."""
        with self.session() as s:
            row = s.get(CustomerRow, profile.id)
            created = row is None
            if row is None:
                row = CustomerRow(id=profile.id)
                s.add(row)
            row.name, row.email, row.phone, row.locale = profile.name, profile.email, profile.phone, profile.locale
            row.created_at = profile.created_at or row.created_at or utcnow()
            row.attributes = dict(profile.attributes)
            row.updated_at = utcnow()
            s.flush()
            return _customer(row), created

    def get_customer(self, customer_id: str) -> CustomerProfile | None:
        with self.session() as s:
            row = s.get(CustomerRow, customer_id)
            return _customer(row) if row else None

    def add_event(self, ev: CustomerEvent) -> CustomerEvent:
        with self.session() as s:
            row = CustomerEventRow(customer_id=ev.customer_id, type=ev.type, at=ev.at, data=ev.data)
            s.add(row)
            s.flush()
            return ev.model_copy(update={"id": row.id})

    def list_events(self, customer_id: str, limit: int = 50) -> list[CustomerEvent]:
        with self.session() as s:
            return self._events(s, customer_id, limit)

    @staticmethod
    def _events(s: Session, customer_id: str, limit: int) -> list[CustomerEvent]:
        rows = s.scalars(
            select(CustomerEventRow)
            .where(CustomerEventRow.customer_id == customer_id)
            .order_by(CustomerEventRow.at.desc(), CustomerEventRow.id.desc())
            .limit(limit)
        )
        return [
            CustomerEvent(id=r.id, customer_id=r.customer_id, type=r.type, at=_aware(r.at), data=r.data or {})  # type: ignore[arg-type]
            for r in rows
        ]

    def count_customers(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(CustomerRow)) or 0)

    # -- conversations ----------------------------------------------------------------------------

    def create_conversation(
        self,
        customer_id: str | None,
        verified: bool,
        channel: str = "web",
        metadata: dict[str, Any] | None = None,
        *,
        status: ConversationStatus = "bot",
        created_at: datetime | None = None,
        topic: str | None = None,
        outcome: str | None = None,
        summary: str | None = None,
    ) -> Conversation:
        now = created_at or utcnow()
        with self.session() as s:
            row = ConversationRow(
                id=new_id("conv"),
                customer_id=customer_id,
                verified=verified,
                status=status,
                channel=channel,
                meta=metadata or {},
                created_at=now,
                updated_at=now,
                topic=topic,
                outcome=outcome,
                summary=summary,
                next_seq=0,
            )
            s.add(row)
            s.flush()
            return _conversation(row)

    def get_conversation(self, conversation_id: str) -> Conversation:
        with self.session() as s:
            row = s.get(ConversationRow, conversation_id)
            if row is None:
                raise ConversationNotFoundError(conversation_id)
            return _conversation(row)

    def get_conversations(self, conversation_ids: Iterable[str]) -> dict[str, Conversation]:
        """Several conversations by id in one query (unknown ids are left out)."""
        ids = list(set(conversation_ids))
        if not ids:
            return {}
        with self.session() as s:
            rows = s.scalars(select(ConversationRow).where(ConversationRow.id.in_(ids)))
            return {r.id: _conversation(r) for r in rows}

    def set_status(self, conversation_id: str, status: ConversationStatus) -> Conversation:
        """Move the conversation to `status` through the state machine (`assistant.states`); asking for the
        status it already has is a no-op. Raises `TransitionError` (409) for an impossible move."""
        current = self.get_conversation(conversation_id)
        if current.status == status:
            return current
        return self.transition(conversation_id, status)

    def transition(
        self,
        conversation_id: str,
        to: ConversationStatus,
        expected_from: Iterable[ConversationStatus] | None = None,
        *,
        outcome: str | None = None,
    ) -> Conversation:
        """Move the conversation to `to` if its status is one of `expected_from` (default: every status the
        state machine allows before `to`), as one conditional UPDATE, so that of two concurrent writers
        (two agents claiming at once) exactly one wins and the other gets `TransitionError` (409)."""
        with self.session() as s:
            return self._transition(s, conversation_id, to, expected_from, outcome=outcome)

    def _transition(
        self,
        s: Session,
        conversation_id: str,
        to: ConversationStatus,
        expected_from: Iterable[ConversationStatus] | None = None,
        *,
        outcome: str | None = None,
    ) -> Conversation:
        starts = states.allowed_sources(to, expected_from)
        values: dict[str, Any] = {"status": to, "updated_at": utcnow()}
        if outcome is not None:
            values["outcome"] = outcome
        # The WHERE on the current status is the lock: no read-then-write window between two workers.
        row = s.scalars(
            update(ConversationRow)
            .where(ConversationRow.id == conversation_id, ConversationRow.status.in_(starts))
            .values(**values)
            .returning(ConversationRow)
        ).first()
        if row is None:
            current = s.scalar(select(ConversationRow.status).where(ConversationRow.id == conversation_id))
            if current is None:
                raise ConversationNotFoundError(conversation_id)
            raise states.TransitionError(current, to)
        live.touch(s, conversation_id)
        return _conversation(row)

    def past_conversations(self, customer_id: str, exclude_id: str | None, limit: int) -> list[PastConversation]:
        """The customer's earlier conversations, newest first, each with a one-line summary."""
        with self.session() as s:
            return self._past_conversations(s, customer_id, exclude_id, limit)

    def customer_context(
        self, customer_id: str, exclude_id: str | None, max_events: int, max_past: int
    ) -> tuple[CustomerProfile | None, list[CustomerEvent], list[PastConversation]]:
        """What a turn's history needs, in one transaction: the profile (None: unknown customer, and nothing
        else is read), the latest `max_events` events and the latest `max_past` other conversations."""
        with self.session() as s:
            row = s.get(CustomerRow, customer_id)
            if row is None:
                return None, [], []
            return (
                _customer(row),
                self._events(s, customer_id, max_events),
                self._past_conversations(s, customer_id, exclude_id, max_past),
            )

    @staticmethod
    def _past_conversations(s: Session, customer_id: str, exclude_id: str | None, limit: int) -> list[PastConversation]:
        q = select(ConversationRow).where(ConversationRow.customer_id == customer_id)
        if exclude_id:
            q = q.where(ConversationRow.id != exclude_id)
        rows = list(s.scalars(q.order_by(ConversationRow.created_at.desc()).limit(limit)))
        unsummarised = [r.id for r in rows if not r.summary]
        firsts: dict[str, str] = {}
        if unsummarised:  # no stored summary: the customer's first message says what it was about (one query)
            first = (
                select(MessageRow.conversation_id, func.min(MessageRow.seq).label("seq"))
                .where(MessageRow.conversation_id.in_(unsummarised), MessageRow.role == "customer")
                .group_by(MessageRow.conversation_id)
                .subquery()
            )
            firsts = {
                cid: text_
                for cid, text_ in s.execute(
                    select(MessageRow.conversation_id, MessageRow.text).join(
                        first,
                        and_(MessageRow.conversation_id == first.c.conversation_id, MessageRow.seq == first.c.seq),
                    )
                )
            }
        out: list[PastConversation] = []
        for r in rows:
            summary = r.summary
            if not summary:
                first_text = firsts.get(r.id)
                summary = f"Customer wrote: {first_text}" if first_text else "(no messages)"
            out.append(
                PastConversation(
                    id=r.id,
                    started_at=_aware(r.created_at),
                    channel=r.channel,
                    topic=r.topic,  # type: ignore[arg-type]
                    outcome=r.outcome or r.status,
                    summary=summary,
                )
            )
        return out

    # -- messages ---------------------------------------------------------------------------------

    def add_message(
        self,
        conversation_id: str,
        role: Role,
        text_: str,
        citations: list[Citation] | None = None,
        author_id: str | None = None,
        turn_id: str | None = None,
        created_at: datetime | None = None,
    ) -> Message:
        with self.session() as s:
            return self._add_message(s, conversation_id, role, text_, citations, author_id, turn_id, created_at)

    def _add_message(
        self,
        s: Session,
        conversation_id: str,
        role: Role,
        text_: str,
        citations: list[Citation] | None,
        author_id: str | None,
        turn_id: str | None,
        created_at: datetime | None = None,
    ) -> Message:
        now = created_at or utcnow()
        seq = self._next_seq(s, conversation_id, now)
        if seq is None:
            raise ConversationNotFoundError(conversation_id)
        row = MessageRow(
            id=new_id("msg"),
            conversation_id=conversation_id,
            seq=int(seq),
            role=role,
            text=text_,
            created_at=now,
            citations=[c.model_dump() for c in citations or []],
            author_id=author_id,
            turn_id=turn_id,
        )
        s.add(row)
        s.flush()
        return _message(row)

    @staticmethod
    def _next_seq(s: Session, conversation_id: str, now: datetime, only_if_status: str | None = None) -> int | None:
        """Allocate the next sequence number atomically (UPDATE ... RETURNING works on SQLite >= 3.35 and
        PostgreSQL), so concurrent writers to one conversation never collide or reorder. With
        `only_if_status`, None also when the conversation is not in that status (checked in the same UPDATE)."""
        q = update(ConversationRow).where(ConversationRow.id == conversation_id)
        if only_if_status is not None:
            q = q.where(ConversationRow.status == only_if_status)
        seq = s.execute(
            q.values(next_seq=ConversationRow.next_seq + 1, updated_at=now).returning(ConversationRow.next_seq)
        ).scalar()
        if seq is None:
            return None
        live.touch(s, conversation_id)
        return int(seq)

    def add_agent_message(self, conversation_id: str, text_: str) -> Message:
        """An agent's reply, authored by the agent who claimed the conversation. Only while the
        conversation is `with_agent` (checked in the same UPDATE that numbers the message, so a reply
        racing a resolve cannot slip in after it): otherwise `ConflictError` (409)."""
        now = utcnow()
        with self.session() as s:
            seq = self._next_seq(s, conversation_id, now, only_if_status="with_agent")
            if seq is None:
                current = s.scalar(select(ConversationRow.status).where(ConversationRow.id == conversation_id))
                if current is None:
                    raise ConversationNotFoundError(conversation_id)
                raise ConflictError(
                    f"the conversation is {current}: an agent can reply only to a conversation they claimed"
                    " (with_agent)"
                )
            agent = s.scalar(
                select(HandoffRow.claimed_by)
                .where(HandoffRow.conversation_id == conversation_id, HandoffRow.status == "claimed")
                .order_by(HandoffRow.claimed_at.desc())
                .limit(1)
            )
            row = MessageRow(
                id=new_id("msg"),
                conversation_id=conversation_id,
                seq=seq,
                role="agent",
                text=text_,
                created_at=now,
                citations=[],
                author_id=agent,
            )
            s.add(row)
            s.flush()
            return _message(row)

    def list_messages(self, conversation_id: str, after_seq: int = 0, limit: int = 1000) -> list[Message]:
        with self.session() as s:
            rows = s.scalars(
                select(MessageRow)
                .where(MessageRow.conversation_id == conversation_id, MessageRow.seq > after_seq)
                .order_by(MessageRow.seq)
                .limit(limit)
            )
            return [_message(r) for r in rows]

    # -- turns ------------------------------------------------------------------------------------

    def begin_turn(self, conversation_id: str, text_: str) -> tuple[Message, str]:
        """Persist the customer's message and open its turn record, in one transaction."""
        with self.session() as s:
            return self._begin_turn(s, conversation_id, text_)

    def open_turn(self, conversation_id: str, text_: str) -> tuple[Conversation, list[Message], Message, str]:
        """`begin_turn` plus what a turn reads first, in the same transaction: the conversation (as it was
        before this message) and its messages so far. Raises `ConversationNotFoundError` before writing."""
        with self.session() as s:
            row = s.get(ConversationRow, conversation_id)
            if row is None:
                raise ConversationNotFoundError(conversation_id)
            conversation = _conversation(row)
            previous = [
                _message(r)
                for r in s.scalars(
                    select(MessageRow)
                    .where(MessageRow.conversation_id == conversation_id)
                    .order_by(MessageRow.seq)
                    .limit(1000)  # as list_messages
                )
            ]
            msg, turn_id = self._begin_turn(s, conversation_id, text_)
            return conversation, previous, msg, turn_id

    def _begin_turn(self, s: Session, conversation_id: str, text_: str) -> tuple[Message, str]:
        turn_id = new_id("turn")
        msg = self._add_message(s, conversation_id, "customer", text_, None, None, turn_id)
        s.add(
            TurnRow(
                id=turn_id,
                conversation_id=conversation_id,
                message_id=msg.id,
                state="pending",
                created_at=msg.created_at,
            )
        )
        return msg, turn_id

    def finish_turn(self, record: TurnRecord) -> None:
        """Write the turn record's outcome and its end time: one UPDATE, nothing read first (an unknown turn changes
        nothing). The evidence column keeps the answer's evidence with the intent, the action and the tool calls."""
        evidence: dict[str, Any] = record.evidence.model_dump(mode="json") if record.evidence is not None else {}
        if record.intent is not None:
            evidence["intent"] = record.intent.model_dump(mode="json")
        if record.action is not None:
            evidence["action"] = record.action
        if record.tool_calls:
            evidence["tool_calls"] = [c.model_dump(mode="json") for c in record.tool_calls]
        with self.session() as s:
            s.execute(
                update(TurnRow)
                .where(TurnRow.id == record.id)
                .values(
                    state=record.state,
                    query=record.query,
                    chunk_ids=record.chunk_ids,
                    chunk_scores=record.chunk_scores,
                    cited_chunk_ids=record.cited_chunk_ids,
                    reply_message_id=record.reply_message_id,
                    reply_mode=record.reply_mode,
                    confidence=record.confidence,
                    evidence=evidence,
                    handoff_id=record.handoff_id,
                    timings_ms=record.timings_ms,
                    error=record.error,
                    finished_at=utcnow(),
                )
            )

    def get_turn(self, turn_id: str) -> TurnRecord | None:
        with self.session() as s:
            row = s.get(TurnRow, turn_id)
            return _turn(row) if row is not None else None

    def pending_turns(self, started_before: datetime) -> list[TurnRecord]:
        """Turn records still `pending` that began before `started_before` (a turn interrupted by a crash
        stays pending forever), oldest first, each with `reply_message_id` set when an assistant message of
        that turn exists."""
        with self.session() as s:
            rows = list(
                s.scalars(
                    select(TurnRow)
                    .where(TurnRow.state == "pending", TurnRow.created_at < started_before)
                    .order_by(TurnRow.created_at)
                )
            )
            out = []
            for r in rows:
                reply = s.scalar(
                    select(MessageRow.id)
                    .where(MessageRow.turn_id == r.id, MessageRow.role == "assistant")
                    .order_by(MessageRow.seq)
                    .limit(1)
                )
                out.append(_turn(r).model_copy(update={"reply_message_id": reply}))
            return out

    def structural_problems(self) -> list[tuple[str, str, str]]:
        """(kind, conversation_id, detail) for every state the state machine and the handoff records do not
        allow together. Read-only; `assistant.doctor` decides what to repair.

        - `unknown_status`: a status outside the state machine.
        - `waiting_without_handoff` / `with_agent_without_claim`: the queue would never show the conversation.
        - `stale_handoff`: a handoff still `waiting`/`claimed` while its conversation is elsewhere (an agent
          could claim it and get a 409, or the customer's "talk to a person" would return it unchanged).
        - `several_open_handoffs`: more than one handoff not resolved.
        - `sequence`: duplicate message numbers, or a counter behind the highest number (the next message
          would collide)."""
        problems: list[tuple[str, str, str]] = []
        with self.session() as s:
            for cid, status in s.execute(
                select(ConversationRow.id, ConversationRow.status).where(ConversationRow.status.not_in(states.STATUSES))
            ):
                problems.append(("unknown_status", cid, f"status {status!r}"))
            open_ho = (
                select(HandoffRow.conversation_id, HandoffRow.status, HandoffRow.id)
                .where(HandoffRow.status != "resolved")
                .subquery()
            )
            rows = s.execute(
                select(ConversationRow.id, ConversationRow.status, open_ho.c.status, open_ho.c.id)
                .outerjoin(open_ho, open_ho.c.conversation_id == ConversationRow.id)
                .where((ConversationRow.status.in_(("waiting_for_agent", "with_agent"))) | open_ho.c.id.is_not(None))
            )
            by_conv: dict[str, tuple[str, list[tuple[str, str]]]] = {}
            for cid, status, ho_status, ho_id in rows:
                entry = by_conv.setdefault(cid, (status, []))
                if ho_id is not None:
                    entry[1].append((ho_id, ho_status))
            for cid, (status, open_handoffs) in by_conv.items():
                statuses = {h for _, h in open_handoffs}
                if status == "waiting_for_agent" and "waiting" not in statuses:
                    problems.append(("waiting_without_handoff", cid, "waiting_for_agent with no waiting handoff"))
                if status == "with_agent" and "claimed" not in statuses:
                    problems.append(("with_agent_without_claim", cid, "with_agent with no claimed handoff"))
                expected = {"waiting_for_agent": "waiting", "with_agent": "claimed"}.get(status)
                for ho_id, ho_status in open_handoffs:
                    if ho_status != expected:
                        problems.append(
                            ("stale_handoff", cid, f"handoff {ho_id} is {ho_status}; the conversation is {status}")
                        )
                if len(open_handoffs) > 1:
                    problems.append(("several_open_handoffs", cid, f"{len(open_handoffs)} handoffs not resolved"))
            seqs = s.execute(
                select(
                    MessageRow.conversation_id,
                    func.count(MessageRow.id),
                    func.count(func.distinct(MessageRow.seq)),
                    func.max(MessageRow.seq),
                    ConversationRow.next_seq,
                )
                .join(ConversationRow, ConversationRow.id == MessageRow.conversation_id)
                .group_by(MessageRow.conversation_id, ConversationRow.next_seq)
            )
            for cid, n, distinct, top, next_seq in seqs:
                if n != distinct:
                    problems.append(("sequence", cid, f"{n - distinct} duplicate message numbers"))
                if (next_seq or 0) < (top or 0):
                    problems.append(("sequence", cid, f"next_seq {next_seq} is behind message {top}"))
        return problems

    def close_stale_handoffs(self, conversation_id: str, note: str) -> list[str]:
        """Resolve the handoffs of `conversation_id` left open while the conversation is neither waiting for
        nor with an agent; returns their ids."""
        with self.session() as s:
            status = s.scalar(select(ConversationRow.status).where(ConversationRow.id == conversation_id))
            keep = {"waiting_for_agent": "waiting", "with_agent": "claimed"}.get(str(status), "")
            rows = s.scalars(
                update(HandoffRow)
                .where(
                    HandoffRow.conversation_id == conversation_id,
                    HandoffRow.status != "resolved",
                    HandoffRow.status != keep,
                )
                .values(status="resolved", resolved_at=utcnow(), note=note)
                .returning(HandoffRow.id)
            )
            return list(rows)

    def repair_sequence(self, conversation_id: str) -> None:
        """Move the message counter past the highest message number (never backwards)."""
        with self.session() as s:
            top = s.scalar(select(func.max(MessageRow.seq)).where(MessageRow.conversation_id == conversation_id))
            s.execute(
                update(ConversationRow)
                .where(ConversationRow.id == conversation_id, ConversationRow.next_seq < (top or 0))
                .values(next_seq=top or 0)
            )

    def abandon_waiting(self, conversation_id: str, note: str) -> Conversation:
        """`waiting_for_agent` -> `abandoned` and its waiting handoff closed, in one transaction: a handoff left
        `waiting` on an abandoned conversation stays in the agents' queue, cannot be claimed (409), and is
        handed back unchanged when the customer returns and asks for a person."""
        with self.session() as s:
            conv = self._transition(s, conversation_id, "abandoned", ["waiting_for_agent"])
            s.execute(
                update(HandoffRow)
                .where(HandoffRow.conversation_id == conversation_id, HandoffRow.status == "waiting")
                .values(status="resolved", resolved_at=utcnow(), note=note)
            )
            return conv

    def log_llm_call(self, **fields: Any) -> None:
        with self.session() as s:
            s.add(LLMCallRow(created_at=utcnow(), **fields))

    # -- handoffs and feedback --------------------------------------------------------------------

    def create_handoff(
        self,
        conversation_id: str,
        reason: str,
        confidence: float | None,
        summary: HandoffSummary,
        summary_source: str = "extractive",
    ) -> Handoff:
        """Open a handoff and put the conversation in the agent queue (`waiting_for_agent`), through the
        state machine. If another writer opened one first (two handoffs racing), that one is returned and
        no second handoff exists. Listeners (`add_handoff_listener`) hear of a new one after it commits."""
        with self.session() as s:
            try:
                conv = self._transition(s, conversation_id, "waiting_for_agent")
            except states.TransitionError:
                existing = s.scalars(
                    select(HandoffRow)
                    .where(HandoffRow.conversation_id == conversation_id, HandoffRow.status != "resolved")
                    .order_by(HandoffRow.created_at.desc())
                    .limit(1)
                ).first()
                if existing is None:
                    raise
                return _handoff(existing)
            row = HandoffRow(
                id=new_id("ho"),
                conversation_id=conversation_id,
                reason=reason,
                confidence=confidence,
                status="waiting",
                summary=summary.model_dump(),
                summary_source=summary_source,
                created_at=conv.updated_at,
            )
            s.add(row)
            s.flush()
            handoff = _handoff(row)
        for listener in self._handoff_listeners:
            try:
                listener(handoff, conv)
            except Exception:  # a listener (the webhook) must never fail the handoff
                logger.exception("handoff listener %r failed for %s", listener, handoff.id)
        return handoff

    def claim_handoff(self, handoff_id: str, agent_id: str) -> tuple[Handoff, Conversation]:
        """`waiting` -> `claimed` by `agent_id`, and the conversation `waiting_for_agent` -> `with_agent`, in one
        transaction of conditional UPDATEs: of two agents claiming at once, the second gets 409."""
        now = utcnow()
        with self.session() as s:
            row = s.scalars(
                update(HandoffRow)
                .where(HandoffRow.id == handoff_id, HandoffRow.status == "waiting")
                .values(status="claimed", claimed_by=agent_id, claimed_at=now)
                .returning(HandoffRow)
            ).first()
            if row is None:
                raise self._handoff_conflict(s, handoff_id, "claim")
            conv = self._transition(s, row.conversation_id, "with_agent", ["waiting_for_agent"])
            return _handoff(row), conv

    def resolve_handoff(self, handoff_id: str, resolved: bool, note: str | None = None) -> tuple[Handoff, Conversation]:
        """`claimed` -> `resolved`, and the conversation `with_agent` -> `resolved` with its outcome
        (`resolved_by_agent`, or `unresolved`). Resolving a handoff nobody claimed, or twice, is a 409."""
        now = utcnow()
        with self.session() as s:
            row = s.scalars(
                update(HandoffRow)
                .where(HandoffRow.id == handoff_id, HandoffRow.status == "claimed")
                .values(status="resolved", resolved_at=now, note=note)
                .returning(HandoffRow)
            ).first()
            if row is None:
                raise self._handoff_conflict(s, handoff_id, "resolve")
            outcome = "resolved_by_agent" if resolved else "unresolved"
            conv = self._transition(s, row.conversation_id, "resolved", ["with_agent"], outcome=outcome)
            return _handoff(row), conv

    @staticmethod
    def _handoff_conflict(s: Session, handoff_id: str, action: str) -> Exception:
        """Why a conditional handoff UPDATE matched nothing: unknown id (404) or the wrong status (409)."""
        row = s.get(HandoffRow, handoff_id)
        if row is None:
            return HandoffNotFoundError(handoff_id)
        if row.status == "claimed":
            return ConflictError(f"handoff {handoff_id} is already claimed by {row.claimed_by}")
        if row.status == "resolved":
            return ConflictError(f"handoff {handoff_id} is already resolved")
        return ConflictError(f"handoff {handoff_id} is {row.status}: claim it before you {action} it")

    def open_handoff(self, conversation_id: str) -> Handoff | None:
        with self.session() as s:
            row = s.scalars(
                select(HandoffRow)
                .where(HandoffRow.conversation_id == conversation_id, HandoffRow.status != "resolved")
                .order_by(HandoffRow.created_at.desc())
                .limit(1)
            ).first()
            return _handoff(row) if row else None

    def get_handoff(self, handoff_id: str) -> Handoff:
        with self.session() as s:
            row = s.get(HandoffRow, handoff_id)
            if row is None:
                raise HandoffNotFoundError(handoff_id)
            return _handoff(row)

    def list_handoffs(self, status: str | None = None, limit: int = 200) -> list[Handoff]:
        with self.session() as s:
            q = select(HandoffRow)
            if status:
                q = q.where(HandoffRow.status == status)
            return [_handoff(r) for r in s.scalars(q.order_by(HandoffRow.created_at).limit(limit))]

    def queue_position(self, handoff: Handoff) -> int | None:
        """1 = next: how many waiting handoffs were created before this one, plus one (None unless waiting)."""
        with self.session() as s:
            row = s.get(HandoffRow, handoff.id)
            if row is None or row.status != "waiting":
                return None
            ahead = s.scalar(
                select(func.count())
                .select_from(HandoffRow)
                .where(HandoffRow.status == "waiting")
                .where(
                    or_(
                        HandoffRow.created_at < row.created_at,
                        and_(HandoffRow.created_at == row.created_at, HandoffRow.id < row.id),
                    )
                )
            )
            return int(ahead or 0) + 1

    def add_feedback(self, conversation_id: str, fb: Feedback) -> None:
        with self.session() as s:
            if s.get(ConversationRow, conversation_id) is None:
                raise ConversationNotFoundError(conversation_id)
            s.add(FeedbackRow(conversation_id=conversation_id, created_at=utcnow(), **fb.model_dump()))

    def latest_feedback(self, conversation_id: str) -> Feedback | None:
        with self.session() as s:
            row = s.scalars(
                select(FeedbackRow)
                .where(FeedbackRow.conversation_id == conversation_id)
                .order_by(FeedbackRow.id.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            return Feedback(csat=row.csat, ces=row.ces, resolved=row.resolved, comment=row.comment)

    # -- telemetry: signal events (append-only) and the facts derived from them -------------------

    def record_signals(
        self,
        conversation_id: str,
        events: Iterable[SignalEvent],
        derive: Callable[[Conversation, list[SignalEvent]], ConversationFacts],
    ) -> ConversationFacts:
        """Append `events` (any conversation's) and store `conversation_id`'s facts as `derive` makes them
        from its status and all its events: one transaction, so the facts always match the events."""
        rows = [
            {
                "conversation_id": e.conversation_id,
                "turn_id": e.turn_id,
                "kind": e.kind,
                "value": e.value,
                "data": e.data,
                "at": e.at,
            }
            for e in events
        ]
        with self.session() as s:
            if rows:  # one INSERT for all of them (the ORM would insert row by row to learn their ids)
                s.execute(SignalEventRow.__table__.insert(), rows)
            row = s.get(ConversationRow, conversation_id)
            if row is None:
                raise ConversationNotFoundError(conversation_id)
            facts = derive(_conversation(row), self._signals(s, conversation_id))
            s.merge(ConversationFactsRow(**facts.model_dump()))
            row.outcome, row.topic = facts.outcome, facts.topic
            return facts

    def list_signals(self, conversation_id: str) -> list[SignalEvent]:
        with self.session() as s:
            return self._signals(s, conversation_id)

    @staticmethod
    def _signals(s: Session, conversation_id: str) -> list[SignalEvent]:
        rows = s.scalars(
            select(SignalEventRow)
            .where(SignalEventRow.conversation_id == conversation_id)
            .order_by(SignalEventRow.at, SignalEventRow.id)
        )
        return [
            SignalEvent(
                conversation_id=r.conversation_id,
                kind=r.kind,  # type: ignore[arg-type]
                at=_aware(r.at),  # type: ignore[arg-type]
                value=r.value,
                turn_id=r.turn_id,
                data=r.data or {},
            )
            for r in rows
        ]

    def get_facts(self, conversation_id: str) -> ConversationFacts | None:
        with self.session() as s:
            row = s.get(ConversationFactsRow, conversation_id)
            return _facts(row) if row else None

    def query_facts(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        status: str | None = None,
        outcome: str | None = None,
        topic: str | None = None,
        customer_id: str | None = None,
        min_effort: float | None = None,
        idle_before: datetime | None = None,
        order: str = "recent",
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ConversationFacts]:
        f = ConversationFactsRow
        q = select(f)
        if since is not None:
            q = q.where(f.started_at >= since)
        if until is not None:
            q = q.where(f.started_at < until)
        if idle_before is not None:
            q = q.where(f.last_activity_at < idle_before)
        if min_effort is not None:
            q = q.where(f.effort >= min_effort)
        for column, value in ((f.status, status), (f.outcome, outcome), (f.topic, topic), (f.customer_id, customer_id)):
            if value is not None:
                q = q.where(column == value)
        orders = {
            "recent": [f.started_at.desc()],
            "oldest": [f.started_at.asc()],
            # unrated after the worst-rated: NULLs sort first on SQLite and last on PostgreSQL unless told
            "worst": [f.effort.desc(), f.csat.asc().nulls_last(), f.started_at.desc()],
            "effort": [f.effort.asc(), f.started_at.desc()],
            "-effort": [f.effort.desc(), f.started_at.desc()],
        }
        if order == "score":  # lowest mean quality score first; conversations never scored last
            latest = self._latest_scorecards().subquery()
            q = q.outerjoin(latest, latest.c.conversation_id == f.conversation_id)
            orders["score"] = [latest.c.score.is_(None), latest.c.score.asc(), f.started_at.desc()]
        q = q.order_by(*orders[order]).offset(offset)
        if limit is not None:
            q = q.limit(limit)
        with self.session() as s:
            return [_facts(r) for r in s.scalars(q)]

    # -- conversation quality: scorecards and reviews -----------------------------------------------

    @staticmethod
    def _latest_scorecards() -> Any:
        """SELECT of each conversation's latest scorecard (id, conversation_id, score, scored_at)."""
        last = select(func.max(ScorecardRow.id).label("id")).group_by(ScorecardRow.conversation_id).subquery()
        return select(ScorecardRow.id, ScorecardRow.conversation_id, ScorecardRow.score, ScorecardRow.scored_at).join(
            last, last.c.id == ScorecardRow.id
        )

    def list_turns(self, conversation_id: str) -> list[TurnRecord]:
        """The conversation's turn records, oldest first."""
        with self.session() as s:
            rows = s.scalars(
                select(TurnRow).where(TurnRow.conversation_id == conversation_id).order_by(TurnRow.created_at)
            )
            return [_turn(r) for r in rows]

    def save_scorecard(self, card: Scorecard) -> Scorecard:
        with self.session() as s:
            if s.get(ConversationRow, card.conversation_id) is None:
                raise ConversationNotFoundError(card.conversation_id)
            s.add(
                ScorecardRow(
                    conversation_id=card.conversation_id,
                    scores=dict(card.scores),
                    reasons=dict(card.reasons),
                    evaluators=dict(card.evaluators),
                    evaluator=card.evaluator,
                    notes=list(card.notes),
                    score=card.score,
                    scored_at=card.scored_at,
                    duration_ms=card.duration_ms,
                )
            )
        return card

    def latest_scorecard(self, conversation_id: str) -> Scorecard | None:
        with self.session() as s:
            row = s.scalars(
                select(ScorecardRow)
                .where(ScorecardRow.conversation_id == conversation_id)
                .order_by(ScorecardRow.id.desc())
                .limit(1)
            ).first()
            return _scorecard(row) if row else None

    def latest_scores(self, conversation_ids: list[str]) -> dict[str, float | None]:
        """Each conversation's latest mean quality score (conversations never scored are absent)."""
        if not conversation_ids:
            return {}
        latest = self._latest_scorecards().subquery()
        with self.session() as s:
            rows = s.execute(
                select(latest.c.conversation_id, latest.c.score).where(latest.c.conversation_id.in_(conversation_ids))
            )
            return {cid: score for cid, score in rows}

    def conversations_to_score(
        self,
        limit: int,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        rescore: bool = False,
    ) -> list[str]:
        """Ended conversations (resolved or abandoned) with no scorecard, or one older than their last
        activity; with `rescore`, every ended one. Oldest first, at most `limit`."""
        f = ConversationFactsRow
        latest = self._latest_scorecards().subquery()
        q = (
            select(f.conversation_id)
            .outerjoin(latest, latest.c.conversation_id == f.conversation_id)
            .where(f.status.in_(("resolved", "abandoned")), f.outcome != "open")
        )
        if not rescore:
            q = q.where((latest.c.id.is_(None)) | (latest.c.scored_at < f.last_activity_at))
        if since is not None:
            q = q.where(f.started_at >= since)
        if until is not None:
            q = q.where(f.started_at < until)
        with self.session() as s:
            return list(s.scalars(q.order_by(f.last_activity_at.asc()).limit(limit)))

    def add_review(self, review: Review) -> Review:
        with self.session() as s:
            if s.get(ConversationRow, review.conversation_id) is None:
                raise ConversationNotFoundError(review.conversation_id)
            row = ReviewRow(
                conversation_id=review.conversation_id,
                label=review.label,
                tags=list(review.tags),
                note=review.note,
                reviewer=review.reviewer,
                scores=dict(review.scores),
                created_at=review.created_at,
            )
            s.add(row)
            s.flush()
            return _review(row)

    def latest_review(self, conversation_id: str) -> Review | None:
        with self.session() as s:
            row = s.scalars(
                select(ReviewRow)
                .where(ReviewRow.conversation_id == conversation_id)
                .order_by(ReviewRow.id.desc())
                .limit(1)
            ).first()
            return _review(row) if row else None

    def latest_reviews(self, conversation_ids: list[str] | None = None, label: str | None = None) -> list[Review]:
        """Each conversation's latest review (of `conversation_ids`, or all), optionally only with `label`;
        oldest conversation first."""
        last = select(func.max(ReviewRow.id).label("id")).group_by(ReviewRow.conversation_id).subquery()
        q = select(ReviewRow).join(last, last.c.id == ReviewRow.id)
        if conversation_ids is not None:
            if not conversation_ids:
                return []
            q = q.where(ReviewRow.conversation_id.in_(conversation_ids))
        if label is not None:
            q = q.where(ReviewRow.label == label)
        with self.session() as s:
            return [_review(r) for r in s.scalars(q.order_by(ReviewRow.id))]


def _scorecard(r: ScorecardRow) -> Scorecard:
    return Scorecard(
        conversation_id=r.conversation_id,
        scores=r.scores or {},
        reasons=r.reasons or {},
        evaluators=r.evaluators or {},
        evaluator=r.evaluator,
        notes=r.notes or [],
        score=r.score,
        scored_at=_aware(r.scored_at),  # type: ignore[arg-type]
        duration_ms=r.duration_ms,
    )


def _review(r: ReviewRow) -> Review:
    return Review(
        id=r.id,
        conversation_id=r.conversation_id,
        label=r.label,  # type: ignore[arg-type]
        tags=r.tags or [],
        note=r.note,
        reviewer=r.reviewer,
        scores=r.scores or {},
        created_at=_aware(r.created_at),  # type: ignore[arg-type]
    )


def _facts(r: ConversationFactsRow) -> ConversationFacts:
    return ConversationFacts(
        conversation_id=r.conversation_id,
        customer_id=r.customer_id,
        started_at=_aware(r.started_at),  # type: ignore[arg-type]
        last_activity_at=_aware(r.last_activity_at),  # type: ignore[arg-type]
        status=r.status,
        outcome=r.outcome,  # type: ignore[arg-type]
        durable=r.durable,
        topic=r.topic,
        effort=r.effort,
        customer_turns=r.customer_turns,
        handed_off=bool(r.handed_off),
        agent_wait_s=r.agent_wait_s,
        csat=r.csat,
        ces=r.ces,
        sentiment_trend=r.sentiment_trend,
        counts=r.counts or {},
    )


def _customer(r: CustomerRow) -> CustomerProfile:
    return CustomerProfile(
        id=r.id,
        name=r.name,
        email=r.email,
        phone=r.phone,
        locale=r.locale,
        created_at=_aware(r.created_at),
        attributes=r.attributes or {},
    )


def _conversation(r: ConversationRow) -> Conversation:
    return Conversation(
        id=r.id,
        customer_id=r.customer_id,
        verified=bool(r.verified),
        status=r.status,  # type: ignore[arg-type]
        channel=r.channel,
        metadata=r.meta or {},
        created_at=_aware(r.created_at),
        updated_at=_aware(r.updated_at),  # type: ignore[arg-type]
        topic=r.topic,
        outcome=r.outcome,
        summary=r.summary,
    )


def _message(r: MessageRow) -> Message:
    return Message(
        id=r.id,
        conversation_id=r.conversation_id,
        seq=r.seq,
        role=r.role,
        text=r.text,  # type: ignore[arg-type]
        created_at=_aware(r.created_at),
        citations=[Citation.model_validate(c) for c in r.citations or []],  # type: ignore[arg-type]
        author_id=r.author_id,
    )


def _handoff(r: HandoffRow) -> Handoff:
    return Handoff(
        id=r.id,
        conversation_id=r.conversation_id,
        reason=r.reason,
        confidence=r.confidence,
        status=r.status,
        summary=HandoffSummary.model_validate(r.summary),  # type: ignore[arg-type]
        summary_source=r.summary_source,
        created_at=_aware(r.created_at),
        claimed_by=r.claimed_by,  # type: ignore[arg-type]
        claimed_at=_aware(r.claimed_at),
        resolved_at=_aware(r.resolved_at),
        note=r.note,
    )


def _turn(r: TurnRow) -> TurnRecord:
    """A stored turn, typed. The evidence column holds the answer's evidence (absent when no answer was composed)
    with the intent, the action and the tool calls beside it."""
    ev = dict(r.evidence or {})
    intent, action, calls = ev.pop("intent", None), ev.pop("action", None), ev.pop("tool_calls", None) or []
    return TurnRecord(
        id=r.id,
        conversation_id=r.conversation_id,
        message_id=r.message_id,
        state=r.state,  # type: ignore[arg-type]
        created_at=_aware(r.created_at),  # type: ignore[arg-type]
        finished_at=_aware(r.finished_at),
        query=r.query,
        chunk_ids=list(r.chunk_ids or []),
        chunk_scores=list(r.chunk_scores or []),
        cited_chunk_ids=list(r.cited_chunk_ids or []),
        reply_message_id=r.reply_message_id,
        reply_mode=r.reply_mode,  # type: ignore[arg-type]
        confidence=r.confidence,
        evidence=AnswerEvidence.model_validate(ev) if ev.get("mode") else None,
        intent=IntentEvidence.model_validate(intent) if intent else None,
        action=action,
        tool_calls=[ToolCall.model_validate(c) for c in calls],
        handoff_id=r.handoff_id,
        timings_ms=dict(r.timings_ms or {}),
        error=r.error,
    )
