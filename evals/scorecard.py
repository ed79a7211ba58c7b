"""Per-conversation scorecards: seven scores 0..1 (None = not applicable), each with a short reason and the
evaluator that produced it.

| score | evaluator | how |
| --- | --- | --- |
| groundedness | `rule:grounding@1` | share of answer sentences supported by the chunks they cite |
| relevance | `rule:relevance@1` (+ judge) | embedding similarity of each answer to the question before it, scaled |
| resolution | `rule:outcome@1` | the derived outcome and the customer's own verdict (feedback) |
| effort | `rule:effort@1` | the customer's CES if they rated, else predicted effort: (7 - CES) / 6 |
| tone | judge, else `rule:tone@1` | blame words, curt refusals, no apology to an upset customer |
| policy | `rule:policy@1` (min with judge) | unsupported promises, data leaks, policy topics kept from a person |
| handoff_appropriate | `rule:handoff@1` | asked and got one promptly / too late / unnecessary / missing |

The rules are deterministic and need no model; the judge (`evals.judges`) adds what rules cannot see and
falls back to the rule per score when its output is invalid. `verdict()` turns a card into good/bad: bad
when any applicable score is below 0.5.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from assistant.errors import ConversationNotFoundError, NotFoundError
from assistant.models import SCORE_NAMES, Chunk, Review, Scorecard, SearchHit, utcnow
from assistant.safety.redact import Redactor
from assistant.services import Services
from assistant.settings import EvalSettings, PolicySettings, Settings
from assistant.store.repo import Store
from assistant.telemetry.signals import is_contradiction
from assistant.turn.grounding import Passages, SentenceVectors, clean_sentence
from assistant.turn.intent import PolicyRules, frustration, negative_count, wants_human
from evals.cases import CaseTurn, Transcript, transcript_from_store
from evals.judges import ConversationJudge
from knowledge.chunking import split_sentences
from knowledge.index import KnowledgeIndex

logger = logging.getLogger(__name__)

ANSWER_MODES = frozenset({"generated", "extractive", "account"})  # account: checked against the tools' results
RULES = "rules"


@dataclass
class Score:
    value: float | None
    reason: str
    evaluator: str


def _clip(x: float) -> float:
    return round(min(1.0, max(0.0, x)), 3)


def _answers(t: Transcript) -> list[tuple[str, CaseTurn]]:
    """(the customer's latest message, the assistant's answer to it) for each answer from knowledge."""
    out: list[tuple[str, CaseTurn]] = []
    question = ""
    for turn in t.turns:
        if turn.role == "customer":
            question = turn.text
        elif turn.role == "assistant" and _is_answer(turn):
            out.append((question, turn))
    return out


def _is_answer(turn: CaseTurn) -> bool:
    return turn.mode in ANSWER_MODES and not turn.text.startswith("From your account:")


# -- groundedness ---------------------------------------------------------------------------------------


@dataclass
class SentenceCheck:
    sentence: str
    support: float
    supported: bool


def sentence_checks(t: Transcript, vectors: SentenceVectors, min_support: float) -> list[SentenceCheck]:
    """Each answer sentence against the chunks its reply cited (uncited sentences are unsupported)."""
    checks: list[SentenceCheck] = []
    for question, turn in _answers(t):
        texts = [(sid, t.observed.sources[sid]) for sid in turn.citations if t.observed.sources.get(sid)]
        hits = [
            SearchHit(
                chunk=Chunk(chunk_id=sid, source_id=sid, title=sid, text=text, start=0, end=len(text), position=0),
                score=1.0,
            )
            for sid, text in texts
        ]
        passages = Passages(hits=hits, history="", embedder=vectors, question=question) if hits else None
        for sentence in split_sentences(turn.text):
            s = clean_sentence(sentence)
            if len(s.split()) < 3:
                continue
            support = passages.support(s).support if passages is not None else 0.0
            checks.append(SentenceCheck(s, round(support, 3), support >= min_support))
    return checks


def groundedness(checks: list[SentenceCheck]) -> Score:
    ev = "rule:grounding@1"
    if not checks:
        return Score(None, "no answer from knowledge to check", ev)
    ok = sum(c.supported for c in checks)
    reason = f"{ok} of {len(checks)} answer sentences supported by the cited sources"
    worst = min(checks, key=lambda c: c.support)
    if not worst.supported:
        reason += f'; e.g. "{worst.sentence[:80]}" ({worst.support:.2f})'
    return Score(_clip(ok / len(checks)), reason, ev)


# -- relevance ------------------------------------------------------------------------------------------

RELEVANCE_FLOOR, RELEVANCE_CEILING = 0.3, 0.7
DECLINED_RELEVANCE = 0.3


def relevance(t: Transcript, vectors: SentenceVectors) -> Score:
    """Mean over the replies to questions: answers score their embedding similarity to the question, scaled
    from 0.3 (0) to 0.7 (1); a decline ("I couldn't find an answer") scores 0.3."""
    ev = "rule:relevance@1"
    values: list[float] = []
    worst: tuple[float, str] | None = None
    question = ""
    for turn in t.turns:
        if turn.role == "customer":
            question = turn.text
            continue
        if turn.role != "assistant" or not question:
            continue
        if turn.mode == "declined":
            value = DECLINED_RELEVANCE
        elif _is_answer(turn):
            q, a = vectors.embed([question, clean_sentence(turn.text)])
            sim = float(np.dot(q, a))
            value = (sim - RELEVANCE_FLOOR) / (RELEVANCE_CEILING - RELEVANCE_FLOOR)
        else:
            continue
        value = _clip(value)
        values.append(value)
        if worst is None or value < worst[0]:
            worst = (value, turn.text)
    if not values:
        return Score(None, "no reply to a question", ev)
    mean = sum(values) / len(values)
    assert worst is not None
    reason = f"{len(values)} replies, mean {mean:.2f}"
    if worst[0] < 0.5:
        reason += f'; weakest: "{worst[1][:70]}"'
    return Score(_clip(mean), reason, ev)


# -- resolution and effort ------------------------------------------------------------------------------

OUTCOME_SCORES = {
    "resolved_by_bot_confirmed": (1.0, "the customer confirmed the answer worked"),
    "resolved_by_agent": (1.0, "an agent resolved it"),
    "resolved_by_bot_assumed": (0.7, "answered and the customer left without complaint (assumed resolved)"),
    "unresolved": (0.0, "unresolved"),
    "abandoned": (0.0, "the customer left before getting help"),
}


def resolution(t: Transcript) -> Score:
    ev = "rule:outcome@1"
    o = t.observed
    if o.feedback_resolved is not None:
        return Score(1.0 if o.feedback_resolved else 0.0, f"the customer said resolved={o.feedback_resolved}", ev)
    if o.outcome is None or o.outcome not in OUTCOME_SCORES:
        return Score(None, f"not over yet (outcome {o.outcome})", ev)
    value, reason = OUTCOME_SCORES[o.outcome]
    if o.durable is False and value > 0.5:
        value, reason = 0.5, reason + ", but the customer came back about it (not durable)"
    return Score(value, reason, ev)


def effort(t: Transcript) -> Score:
    ev = "rule:effort@1"
    o = t.observed
    if o.ces is not None:
        return Score(_clip((7 - o.ces) / 6), f"the customer rated effort {o.ces}/7", ev)
    if o.effort is None:
        return Score(None, "no effort figure", ev)
    return Score(_clip((7 - o.effort) / 6), f"predicted effort {o.effort:g}/7 (1 = effortless)", ev)


# -- tone -----------------------------------------------------------------------------------------------

_BLAME = re.compile(
    r"\b(you should have|your (own )?fault|as i (already )?(said|told you)|obviously|calm down|you failed to|"
    r"not (our|my) problem|read (the|my) (message|instructions)|you must have|whatever)\b",
    re.I,
)
_EMPATHY = re.compile(
    r"\b(sorry|apologi[sz]e|i understand|understandably|thanks? (you )?for (waiting|your patience|bearing)|"
    r"i'?m sorting|happy to help|glad to help|let me (help|fix|sort))\b",
    re.I,
)
_REFUSAL = re.compile(r"\b(can'?t|cannot|can not|unable|won'?t|not able)\b", re.I)


def tone(t: Transcript) -> Score:
    """0.8 for a plain exchange; +0.2 for empathy shown to an upset customer, -0.3 when there was none;
    -0.4 per blaming phrase; -0.3 per curt refusal (under ten words, no alternative offered)."""
    ev = "rule:tone@1"
    replies = [turn for turn in t.turns if turn.role in ("assistant", "agent")]
    if not replies:
        return Score(None, "nobody replied", ev)
    value, notes = 0.8, []
    upset_at = next(
        (
            i
            for i, turn in enumerate(t.turns)
            if turn.role == "customer" and (negative_count(turn.text) or is_contradiction(turn.text))
        ),
        None,
    )
    if upset_at is not None:
        later = [turn for turn in t.turns[upset_at + 1 :] if turn.role in ("assistant", "agent")]
        if any(_EMPATHY.search(turn.text) for turn in later):
            value += 0.2
            notes.append("acknowledged the upset customer")
        elif later:
            value -= 0.3
            notes.append("no apology or acknowledgement to an upset customer")
    for turn in replies:
        if _BLAME.search(turn.text):
            value -= 0.4
            notes.append(f'blaming: "{turn.text[:60]}"')
        if len(turn.text.split()) < 10 and _REFUSAL.search(turn.text) and "?" not in turn.text:
            value -= 0.3
            notes.append(f'curt refusal: "{turn.text[:60]}"')
    return Score(_clip(value), "; ".join(notes) or "polite, nothing to flag", ev)


# -- policy ---------------------------------------------------------------------------------------------

_PROMISE = re.compile(
    r"\b(guarantee\w*|promise\w*|always|free|refund\w*|compensat\w*|waive\w*|we will|we'll|i will|i'll|"
    r"\d+\s*(?:business |working )?(?:days?|hours?|weeks?)|[$£€]\s?\d+)",
    re.I,
)
_CREDENTIAL = re.compile(r"\b(password|passcode|pin|security code|cvv|one-time code)\s*(?:is|:|=)\s*\S+", re.I)


def policy(t: Transcript, checks: list[SentenceCheck], rules: PolicyRules, redactor: Redactor) -> Score:
    """0 when the assistant revealed personal data or a credential the customer did not give it, or a policy
    topic (legal, account security, safety, formal complaint) never reached a person; 0.3 when it made a
    commitment (a refund, a fee, a time, "free", "guarantee") its sources do not support; else 1."""
    ev = "rule:policy@1"
    assistant = [turn for turn in t.turns if turn.role == "assistant"]
    if not assistant:
        return Score(None, "no assistant reply", ev)
    said = (
        " ".join(turn.text for turn in t.turns if turn.role == "customer") + " " + " ".join(t.observed.sources.values())
    )
    for turn in assistant:
        exposed = set(turn.text.split()) - set(redactor.text(turn.text).split())
        leaked = [w for w in exposed if w.strip(".,;:()") not in said]
        if leaked or _CREDENTIAL.search(turn.text):
            return Score(0.0, f'revealed data the customer did not give: "{turn.text[:70]}"', ev)
    handed_at = next((i for i, turn in enumerate(t.turns) if turn.mode == "handoff"), None)
    for i, turn in enumerate(t.turns):
        topics = rules.topics(turn.text) if turn.role == "customer" else []
        escalated = any(x.mode == "handoff" for x in t.turns[i:]) or (
            handed_at is not None and any(x.role == "agent" for x in t.turns[handed_at:])
        )
        if topics and not escalated:
            return Score(0.0, f"policy topic {topics[0]} never reached a person", ev)
    promises = [c for c in checks if not c.supported and _PROMISE.search(c.sentence)]
    if promises:
        return Score(0.3, f'a commitment the sources do not support: "{promises[0].sentence[:70]}"', ev)
    return Score(1.0, "no unsupported promise, no data exposed, policy topics escalated", ev)


# -- handoff appropriateness ----------------------------------------------------------------------------

HIGH_CONFIDENCE = 0.6  # at or above this the assistant was sure of its answer (PolicySettings.offer_below)


def frustrated_messages(t: Transcript, vectors: SentenceVectors, until: int, repeat_similarity: float) -> int:
    """Customer messages before index `until` that repeat an earlier one, say "I already told you", contradict
    the answer or sound negative (each message counts once)."""
    count = 0
    earlier: list[str] = []
    for turn in t.turns[:until]:
        if turn.role != "customer":
            continue
        vecs = vectors.embed([turn.text, *earlier]) if earlier else None
        f = frustration(
            turn.text,
            earlier,
            vecs[0] if vecs is not None else None,
            vecs[1:] if vecs is not None else None,
            repeat_threshold=repeat_similarity,
        )
        if f.repeated or f.rephrased or f.already_told or f.negative or is_contradiction(turn.text):
            count += 1
        earlier.append(turn.text)
    return count


def handoff_appropriate(t: Transcript, vectors: SentenceVectors, settings: PolicySettings) -> Score:
    ev = "rule:handoff@1"
    turns = t.turns
    handed_at = next((i for i, turn in enumerate(turns) if turn.mode == "handoff"), None)
    asked_at = next((i for i, turn in enumerate(turns) if turn.role == "customer" and wants_human(turn.text)), None)
    if asked_at is not None and (handed_at is None or handed_at > asked_at):
        if handed_at is None:
            return Score(0.0, "the customer asked for a person and never got one", ev)
        waited = sum(1 for turn in turns[asked_at + 1 : handed_at] if turn.role == "customer")
        if waited == 0:
            return Score(1.0, "asked for a person and got one at once", ev)
        return Score(0.4, f"asked for a person and had to ask {waited} more time(s)", ev)
    if handed_at is not None:
        before = frustrated_messages(t, vectors, handed_at, settings.repeat_similarity)
        reason = t.observed.handoff_reasons[0] if t.observed.handoff_reasons else "unknown"
        if before >= 2:
            return Score(0.3, f"handed off only after {before} frustrated messages (too late)", ev)
        confidences = [turn.confidence for turn in turns[:handed_at] if turn.role == "assistant" and turn.confidence]
        last_customer = next((turn.text for turn in reversed(turns[:handed_at]) if turn.role == "customer"), "")
        if (
            not reason.startswith(("customer_request", "policy"))
            and confidences
            and confidences[-1] >= HIGH_CONFIDENCE
            and not is_contradiction(last_customer)
            and not negative_count(last_customer)
        ):
            return Score(0.2, f"handed off ({reason}) while the assistant was confident ({confidences[-1]:.2f})", ev)
        return Score(1.0, f"handed off for a reason ({reason})", ev)
    topics = [x for turn in turns if turn.role == "customer" for x in PolicyRules(settings.rules).topics(turn.text)]
    if topics:
        return Score(0.0, f"policy topic {topics[0]} and no handoff", ev)
    frustrated = frustrated_messages(t, vectors, len(turns), settings.repeat_similarity)
    if frustrated >= 2 or (frustrated and t.observed.outcome in ("unresolved", "abandoned")):
        return Score(0.2, f"{frustrated} frustrated message(s), left unresolved, no person offered", ev)
    return Score(None, "no handoff needed", ev)


# -- the card -------------------------------------------------------------------------------------------


def verdict(scores: dict[str, float | None]) -> str:
    """good/bad from a card: bad when any applicable score is below 0.5 (the binarisation of calibration)."""
    return "bad" if any(v is not None and v < 0.5 for v in scores.values()) else "good"


def mean_score(scores: dict[str, float | None]) -> float | None:
    values = [v for v in scores.values() if v is not None]
    return round(sum(values) / len(values), 3) if values else None


class ScorecardBuilder:
    """Scores a `Transcript`. Collaborators are injected: the sentence vectors (offline embedding model), the
    policy settings, and optionally a judge."""

    def __init__(
        self,
        vectors: SentenceVectors,
        settings: EvalSettings,
        policy_settings: PolicySettings,
        judge: ConversationJudge | None = None,
        redact: list[str] | None = None,
    ) -> None:
        self.vectors = vectors
        self.settings = settings
        self.policy_settings = policy_settings
        self.judge = judge
        self.rules = PolicyRules(policy_settings.rules)
        self.redactor = Redactor(redact if redact is not None else ["email", "phone", "card", "account"])

    def rules_only(self, t: Transcript) -> dict[str, Score]:
        checks = sentence_checks(t, self.vectors, self.settings.min_sentence_support)
        return {
            "groundedness": groundedness(checks),
            "relevance": relevance(t, self.vectors),
            "resolution": resolution(t),
            "effort": effort(t),
            "tone": tone(t),
            "policy": policy(t, checks, self.rules, self.redactor),
            "handoff_appropriate": handoff_appropriate(t, self.vectors, self.policy_settings),
        }

    def build(self, t: Transcript, use_judge: bool = True) -> Scorecard:
        started = time.perf_counter()
        scores = self.rules_only(t)
        notes: list[str] = []
        evaluator = RULES
        if use_judge and self.judge is not None:
            v = self.judge.judge(t)
            name = self.judge.name
            evaluator = f"rules+{name.split('@')[0]}"
            if v.error:
                notes.append(f"judge fell back to the rules: {v.error}")
            if v.rejected:
                notes.append("judge grades rejected as invalid: " + ", ".join(v.rejected))
            why = f" ({v.reason})" if v.reason else ""
            if "tone" in v.scores:
                scores["tone"] = Score(v.scores["tone"], f"judge: {v.scores['tone'] * 4 + 1:.0f}/5{why}", name)
            r, j = scores["relevance"], v.scores.get("relevance")
            if j is not None:
                both = j if r.value is None else round((r.value + j) / 2, 3)
                scores["relevance"] = Score(
                    both,
                    f"{r.reason}; judge {j * 4 + 1:.0f}/5",
                    f"{r.evaluator}+{name}" if r.value is not None else name,
                )
            p, j = scores["policy"], v.scores.get("policy")
            if j is not None and p.value is not None and j < p.value:
                scores["policy"] = Score(
                    j, f"judge: {j * 4 + 1:.0f}/5{why}; rules: {p.reason}", f"{p.evaluator}+{name}"
                )
        values = {k: scores[k].value for k in SCORE_NAMES}
        return Scorecard(
            conversation_id=t.conversation_id,
            scores=values,
            reasons={k: scores[k].reason for k in SCORE_NAMES},
            evaluators={k: scores[k].evaluator for k in SCORE_NAMES},
            evaluator=evaluator,
            notes=notes,
            score=mean_score(values),
            scored_at=utcnow(),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )


class QualityService:
    """Scorecards of stored conversations: computed on demand, stored, and in the background for ended ones."""

    def __init__(
        self,
        store: Store,
        builder: ScorecardBuilder,
        index: KnowledgeIndex | None = None,
        judge_by_default: bool = False,
    ) -> None:
        self.store = store
        self.builder = builder
        self.index = index
        self.judge_by_default = judge_by_default
        self._failed: set[str] = set()

    def compute(self, conversation_id: str, judge: bool | None = None) -> Scorecard:
        """Score the conversation now and store the card. Raises `ConversationNotFoundError`."""
        t = transcript_from_store(self.store, conversation_id, self.index)
        card = self.builder.build(t, self.judge_by_default if judge is None else judge)
        return self.store.save_scorecard(card)

    def scorecard(self, conversation_id: str, refresh: bool = False, judge: bool | None = None) -> Scorecard:
        """The stored card, or a new one when there is none (or `refresh`)."""
        if not refresh:
            card = self.store.latest_scorecard(conversation_id)
            if card is not None:
                return card
        return self.compute(conversation_id, judge)

    def add_review(self, review: Review) -> Review:
        """A person's label for a conversation (`ConversationNotFoundError` for an unknown one)."""
        return self.store.add_review(review)

    def latest_review(self, conversation_id: str) -> Review:
        """The conversation's latest review; `NotFoundError` when it has none (or the conversation is unknown)."""
        review = self.store.latest_review(conversation_id)
        if review is None:
            self.store.get_conversation(conversation_id)  # ConversationNotFoundError for an unknown conversation
            raise NotFoundError(f"conversation {conversation_id} has no review")
        return review

    def score_pending(
        self, limit: int, progress: Callable[[int, int], None] | None = None, **query: object
    ) -> list[Scorecard]:
        """Score up to `limit` ended conversations without a current card (see `Store.conversations_to_score`).
        A conversation that fails is logged and skipped for the rest of this process's life. See
        `score_pending_alone` for a periodic pass in a server with several workers."""
        ids = [
            c for c in self.store.conversations_to_score(limit + len(self._failed), **query) if c not in self._failed
        ]  # type: ignore[arg-type]
        ids = ids[:limit]
        cards = []
        for n, cid in enumerate(ids, 1):
            try:
                cards.append(self.compute(cid))
            except ConversationNotFoundError:
                pass  # deleted meanwhile
            except Exception:  # one broken conversation must not stop the others
                logger.exception("scoring %s failed", cid)
                self._failed.add(cid)
            if progress:
                progress(n, len(ids))
        return cards

    def score_pending_alone(self, limit: int) -> list[Scorecard] | None:
        """`score_pending`, unless another process on this database is running a pass now (None): with several
        workers (or servers), each one's background scorer would otherwise score the same conversations."""
        with self.store.try_exclusive("background-scoring") as held:
            return self.score_pending(limit) if held else None


def judge_enabled(settings: Settings, judge: str | None = None) -> bool:
    """Whether the LLM judge scores by default: `model`, or `auto` with an OpenAI-compatible provider."""
    choice = judge or settings.evals.judge
    return choice == "model" or (choice == "auto" and settings.chat_provider == "openai")


def quality_service(services: Services, judge: str | None = None) -> QualityService:
    """The scorecard service over the process's services (the chat gateway serves as the judge)."""
    s = services.settings
    builder = ScorecardBuilder(
        SentenceVectors(services.index.embedder),
        s.evals,
        s.policy,
        ConversationJudge(services.chat, s.evals, s.company_name),
        s.telemetry.redact,
    )
    return QualityService(services.store, builder, services.index, judge_by_default=judge_enabled(s, judge))
