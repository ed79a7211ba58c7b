"""The SQL store: one `Store` per process, the door to the repositories over the tables, which return domain
models (never rows).

| attribute | module | what |
| --- | --- | --- |
| `customers` | `customers.py` | profiles, customer events, a turn's customer context |
| `conversations` | `conversations.py` | conversations and their status (the state machine) |
| `messages` | `messages.py` | numbered messages, an agent's reply |
| `turns` | `turns.py` | turn records, opened with the customer's message |
| `handoffs` | `handoffs.py` | the agent queue: create, claim, resolve, abandon |
| `feedback` | `feedback.py` | the customer's rating |
| `signals` | `signals.py` | signal events and the facts derived from them |
| `quality` | `quality.py` | scorecards and reviews |
| `consistency` | `consistency.py` | structural problems and their safe repairs |
| `llm_calls` | `llm_calls.py` | the chat-model call log |
| `approved` | `approved.py` | approved answers: stored, edited, retired, hits counted |
| `insights` | `insights.py` | what the loop-back reports read: turns with what came of them, handoffs |
| `suggestions` | `suggestions.py` | the copilot's drafted replies and what agents did with them |
| `simulated` | `simulated.py` | simulated conversations (the demo's history): counted, moved back in time |
| `idempotency` | `idempotency.py` | idempotency keys of the customer's POSTs and their first responses |

The engine, the transactions and what happens around a commit (migrations at start, the live bus, locks) are
`assistant.store.db`; the row-to-model converters `assistant.store.convert`.

The flat methods (`store.get_conversation(...)`, `store.open_turn(...)`) are the API callers used before the
repositories existed; each is the repository's own bound method, with its signature and docstring. New code may
say `store.turns.get(...)`.
"""

from __future__ import annotations

from typing import Literal

from assistant.settings import Settings
from assistant.store.approved import ApprovedAnswers
from assistant.store.consistency import Consistency
from assistant.store.conversations import Conversations
from assistant.store.customers import Customers
from assistant.store.db import Database, make_engine, new_id
from assistant.store.feedback import FeedbackLog
from assistant.store.handoffs import HandoffListener, Handoffs
from assistant.store.idempotency import IdempotencyKeys
from assistant.store.insights import Insights
from assistant.store.llm_calls import LLMCallLog
from assistant.store.messages import Messages
from assistant.store.quality import Quality
from assistant.store.signals import Signals
from assistant.store.simulated import SimulatedHistory
from assistant.store.suggestions import Suggestions
from assistant.store.turns import Turns

__all__ = ["HandoffListener", "Store", "make_engine", "new_id"]


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
        keep_originals: bool = False,
    ) -> None:
        """`migrate_schema`: auto = upgrade the schema to this code's head now (under a lock: workers starting
        together migrate once); off = only check it is there (`StoreUnavailableError` if it is behind: run
        `cxa db upgrade`). `listen`: PostgreSQL LISTEN/NOTIFY wakes live streams across processes."""
        self.db = db = Database(
            url,
            busy_timeout_s,
            migrate_schema=migrate_schema,
            listen=listen,
            pool_size=pool_size,
            max_overflow=max_overflow,
            keep_originals=keep_originals,
        )
        self.url, self.engine, self.live = db.url, db.engine, db.live
        self.session, self.try_exclusive, self.ping, self.close = db.session, db.try_exclusive, db.ping, db.close

        self.customers = Customers(db)
        self.conversations = Conversations(db)
        self.messages = Messages(db)
        self.turns = Turns(db)
        self.handoffs = Handoffs(db)
        self.feedback = FeedbackLog(db)
        self.signals = Signals(db)
        self.quality = Quality(db)
        self.consistency = Consistency(db)
        self.llm_calls = LLMCallLog(db)
        self.approved = ApprovedAnswers(db)
        self.insights = Insights(db)
        self.suggestions = Suggestions(db)
        self.simulated = SimulatedHistory(db)
        self.idempotency = IdempotencyKeys(db)

        # -- the flat API, by repository --
        self.upsert_customer = self.customers.upsert
        self.get_customer = self.customers.get
        self.add_event = self.customers.add_event
        self.list_events = self.customers.events
        self.count_customers = self.customers.count
        self.customer_context = self.customers.context

        self.create_conversation = self.conversations.create
        self.get_conversation = self.conversations.get
        self.get_conversations = self.conversations.get_many
        self.set_status = self.conversations.set_status
        self.transition = self.conversations.transition
        self.past_conversations = self.conversations.past

        self.add_message = self.messages.add
        self.add_agent_message = self.messages.add_agent
        self.list_messages = self.messages.list_for

        self.begin_turn = self.turns.begin
        self.open_turn = self.turns.open
        self.finish_turn = self.turns.finish
        self.get_turn = self.turns.get
        self.list_turns = self.turns.list_for
        self.pending_turns = self.turns.pending

        self.add_handoff_listener = self.handoffs.add_listener
        self.create_handoff = self.handoffs.create
        self.replace_handoff_summary = self.handoffs.replace_summary
        self.claim_handoff = self.handoffs.claim
        self.resolve_handoff = self.handoffs.resolve
        self.abandon_waiting = self.handoffs.abandon_waiting
        self.open_handoff = self.handoffs.open_for
        self.get_handoff = self.handoffs.get
        self.list_handoffs = self.handoffs.find
        self.queue_position = self.handoffs.queue_position

        self.add_feedback = self.feedback.add
        self.latest_feedback = self.feedback.latest

        self.record_signals = self.signals.record
        self.list_signals = self.signals.list_for
        self.get_facts = self.signals.get_facts
        self.query_facts = self.signals.query_facts
        self.topic_history = self.signals.topic_history

        self.save_scorecard = self.quality.save_scorecard
        self.latest_scorecard = self.quality.latest_scorecard
        self.latest_scores = self.quality.latest_scores
        self.conversations_to_score = self.quality.conversations_to_score
        self.add_review = self.quality.add_review
        self.latest_review = self.quality.latest_review
        self.latest_reviews = self.quality.latest_reviews

        self.structural_problems = self.consistency.structural_problems
        self.close_stale_handoffs = self.consistency.close_stale_handoffs
        self.repair_sequence = self.consistency.repair_sequence

        self.log_llm_call = self.llm_calls.log

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(
            settings.sqlalchemy_url,
            settings.database_busy_timeout_s,
            migrate_schema=settings.database_migrate,
            listen=settings.live.listen,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            keep_originals=settings.privacy.payment_data_retention_days > 0,
        )
