"""The loop, simulated: customers ask questions the help center does not answer (the gaps of `evals/gaps/*.json`),
scripted agents answer them, the gaps report must find them, and once their drafts are approved the same
questions must stop reaching a person.

`LoopDay` adds the gap script to `evals.simulate.Day`: a customer asks one of a gap's questions; a reply that
carries one of the gap's answers (an approved answer, or a passage quoting one) satisfies them; anything else ends
with a person (the assistant hands off, or the customer asks for one), who answers in one of the gap's wordings,
after asking
"what seems to be the problem?" first in a share of conversations (a re-ask the handoff-quality report must
catch).

`run_loop` is the measured loop of `cxa eval bench --only loop`:
1. day one: the gap conversations (each gap's questions, a few times each) mixed with a simulated day's
   ordinary conversations;
2. the gaps report (`/v1/insights/knowledge-gaps`) is matched to the injected gaps: a gap is found when one
   reported gap holds most of its handed-off conversations and is mostly made of them; grouping precision and
   recall are B-cubed over the injected conversations;
3. the CX team accepts each found gap's draft as it comes (`.../draft`, then `POST /v1/approved-answers`);
4. day two: the gap questions again (other draws from the same pools, so new phrasings and repeated ones): the
   share of them still handed off, against day one, is the reduction (goal: down 80% or more).
Handoff quality (avoidable, re-asked against the scripts' own re-asks) and the copilot's figures are read on the
way.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from evals.simulate import Credentials, Day, run_day
from evals.suite import Metric

GAPS_DIR = Path(__file__).parent / "gaps"
Progress = Callable[[str, int, int], None]
SATISFIED = "Thanks, that answers my question."
ESCALATE = "That doesn't answer my question. Can I talk to a person please?"
REASK = "Hi, thanks for waiting! What seems to be the problem?"


class GapPool(BaseModel):
    name: str
    answers: list[str]  # how agents answer it, each in their own words
    questions: list[str]


def load_gaps(path: Path = GAPS_DIR) -> list[GapPool]:
    """The gap pools of a JSON file, or of every JSON file in a folder."""
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    out: list[GapPool] = []
    for f in files:
        raw = json.loads(f.read_text(encoding="utf-8"))
        out.extend(GapPool.model_validate(g) for g in raw["gaps"])
    return out


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass
class GapConversation:
    gap: str
    question: str
    conversation_id: str
    handed_off: bool
    reasked: bool = False
    served: str | None = None  # the reply mode that carried the answer
    missed: str | None = None  # handed off: the reply mode of the assistant's first answer (None: it handed off)


class LoopDay(Day):
    """`Day` whose conversations carry `metadata` (e.g. `{"simulated": true}`), with the gap script."""

    def __init__(
        self, client: httpx.Client, creds: Credentials, seed: int = 0, metadata: dict[str, Any] | None = None
    ) -> None:
        super().__init__(client, creds, seed)
        self.metadata = metadata or {}

    def start(self, customer_id: str | None = None, channel: str = "web") -> str:
        body: dict[str, Any] = {"channel": channel, "metadata": self.metadata}
        if customer_id:
            body |= {"customer_id": customer_id, "customer_hash": self.creds.customer_hash(customer_id)}
        conv = self._ok(self.client.post("/v1/conversations", json=body, headers=self.widget))
        self.tokens[conv["id"]] = conv["token"]
        return str(conv["id"])

    def gap_conversation(self, gap: GapPool, question: str, reask: bool) -> GapConversation:
        cid = self.start()
        turn = self.say(cid, question)
        reply = turn.get("reply") or {}
        if turn.get("handoff") is None and any(_norm(a) in _norm(reply.get("text") or "") for a in gap.answers):
            self.say(cid, SATISFIED)
            return GapConversation(gap.name, question, cid, handed_off=False, served=reply.get("mode"))
        missed = reply.get("mode") if turn.get("handoff") is None else None
        if turn.get("handoff") is None:
            turn = self.say(cid, ESCALATE)
        hid = (turn.get("handoff") or self.open_handoff(cid))["id"]
        self._ok(self.client.post(f"/v1/handoffs/{hid}/claim", json={"agent_id": "sim_agent"}, headers=self.agent))
        if reask:
            self._agent_says(cid, REASK)
            self.say(cid, question)  # the customer repeats it (to the agent: the bot is silent)
        answer = self.rng.choice(gap.answers)
        self._agent_says(cid, f"Thanks for waiting! {answer} Is there anything else I can help with?")
        self._ok(self.client.post(f"/v1/handoffs/{hid}/resolve", json={"resolved": True}, headers=self.agent))
        return GapConversation(gap.name, question, cid, handed_off=True, reasked=reask, missed=missed)

    def _agent_says(self, cid: str, text: str) -> None:
        self._ok(self.client.post(f"/v1/conversations/{cid}/agent-messages", json={"text": text}, headers=self.agent))


# -- the measured loop -----------------------------------------------------------------------------------------


class GapFound(BaseModel):
    gap: str
    conversations: int  # handed off on day one
    found: bool
    reported_id: str | None = None
    reported_conversations: int = 0
    purity: float = 0.0
    coverage: float = 0.0
    approved_id: str | None = None
    approved_texts: list[str] = []  # the accepted draft's question and variants
    day2_conversations: int = 0
    day2_handed_off: int = 0


class LoopResult(BaseModel):
    benchmark: str = "loop/simulated-gaps"
    gaps: int
    gaps_found: int
    gap_recall: float  # injected gaps found
    grouping_precision: float  # B-cubed over the injected conversations in reported gaps
    grouping_recall: float
    reported_gaps: int
    other_gaps: list[str]  # reported gaps made of no injected gap (labels)
    day1_gap_conversations: int
    day1_handed_off: int
    day2_gap_conversations: int
    day2_handed_off: int
    handoff_reduction: float  # on the covered gaps (an approved answer accepted): 1 - day-two share / day-one share
    handoff_reduction_all: float  # the same over every injected gap, found or not
    day2_new_phrasings: int
    day2_new_phrasings_handed_off: int
    approved: int
    avoidable_rate_day1: float | None
    reask_rate_day1: float | None
    reask_detection_precision: float | None  # against the scripts' own re-asks
    reask_detection_recall: float | None
    ordinary_conversations: int
    per_gap: list[GapFound]
    day2_misses: list[dict[str, str | None]]  # day-two gap questions still handed off: gap, question, first reply
    seconds: float

    def suite_metrics(self) -> list[Metric]:
        return [
            Metric("gap_recall", self.gap_recall, n=self.gaps),
            Metric("grouping_precision", self.grouping_precision, n=self.day1_handed_off),
            Metric("grouping_recall", self.grouping_recall, n=self.day1_handed_off),
            Metric("handoff_reduction", self.handoff_reduction, n=self.day2_gap_conversations),
            Metric("reask_detection_recall", self.reask_detection_recall or 0.0),
            Metric("avoidable_rate_day1", self.avoidable_rate_day1 or 0.0, kind="info"),
            Metric("reask_rate_day1", self.reask_rate_day1 or 0.0, kind="info"),
        ]

    def summary_rows(self) -> list[tuple[str, object]]:
        return [
            ("injected gaps found (goal >= 0.9)", f"{self.gaps_found} / {self.gaps} = {self.gap_recall:.3f}"),
            (
                "grouping precision / recall (B-cubed, injected conversations)",
                f"{self.grouping_precision:.3f} / {self.grouping_recall:.3f}",
            ),
            ("reported gaps / of no injected gap", f"{self.reported_gaps} / {len(self.other_gaps)}"),
            ("day one: gap conversations handed off", f"{self.day1_handed_off} / {self.day1_gap_conversations}"),
            ("approved answers accepted from the drafts", self.approved),
            ("day two: gap conversations handed off", f"{self.day2_handed_off} / {self.day2_gap_conversations}"),
            (
                "  of them with a phrasing day one never saw",
                f"{self.day2_new_phrasings_handed_off} / {self.day2_new_phrasings}",
            ),
            (
                "handoffs on the covered gaps, down (goal >= 0.8) / on all",
                f"{self.handoff_reduction:.3f} / {self.handoff_reduction_all:.3f}",
            ),
            ("day one: avoidable handoffs / re-asked", f"{self.avoidable_rate_day1} / {self.reask_rate_day1}"),
            (
                "re-ask detection precision / recall (vs the scripts)",
                f"{self.reask_detection_precision} / {self.reask_detection_recall}",
            ),
            ("ordinary conversations mixed in / wall time (s)", f"{self.ordinary_conversations} / {self.seconds:.0f}"),
        ]


def _draws(gaps: list[GapPool], per_gap: int, rng: random.Random) -> list[tuple[GapPool, str]]:
    out = [(g, rng.choice(g.questions)) for g in gaps for _ in range(per_gap)]
    rng.shuffle(out)
    return out


def _bcubed(labels: dict[str, str], clusters: dict[str, str]) -> tuple[float, float]:
    """B-cubed precision and recall of `clusters` (conversation -> reported gap) against `labels` (conversation ->
    injected gap), over the labelled conversations (one not in any reported gap is a cluster of its own)."""
    items = list(labels)
    if not items:
        return 0.0, 0.0
    cluster_of = {c: clusters.get(c, f"alone:{c}") for c in items}
    p = r = 0.0
    for c in items:
        same_cluster = [d for d in items if cluster_of[d] == cluster_of[c]]
        same_label = [d for d in items if labels[d] == labels[c]]
        both = sum(1 for d in same_cluster if labels[d] == labels[c])
        p += both / len(same_cluster)
        r += both / len(same_label)
    return round(p / len(items), 4), round(r / len(items), 4)


def run_loop(
    client: httpx.Client,
    creds: Credentials,
    gaps: list[GapPool] | None = None,
    per_gap: int = 5,
    ordinary: int = 60,
    reask_rate: float = 0.3,
    idle_wait_s: float = 2.5,
    seed: int = 0,
    progress: Progress | None = None,
) -> LoopResult:
    started = time.perf_counter()
    gaps = gaps or load_gaps()
    rng = random.Random(seed)
    day = LoopDay(client, creds, seed)
    cx = {"Authorization": f"Bearer {creds.cx_token}"}

    # day one: ordinary traffic, then the gap questions
    if ordinary:
        run_day(client, creds, ordinary, idle_wait_s=0.0, seed=seed)
    first = [day.gap_conversation(g, q, rng.random() < reask_rate) for g, q in _draws(gaps, per_gap, rng)]
    if progress:
        progress("day one", 1, 3)
    time.sleep(idle_wait_s)
    handed = [c for c in first if c.handed_off]

    report = day._ok(client.get("/v1/insights/knowledge-gaps", params={"limit": 500}, headers=cx))["items"]
    labels = {c.conversation_id: c.gap for c in handed}
    clusters = {cid: g["id"] for g in report for cid in g["conversation_ids"] if cid in labels}
    precision, recall = _bcubed(labels, clusters)
    per_gap_found: dict[str, GapFound] = {}
    used: set[str] = set()
    for g in gaps:
        mine = [c.conversation_id for c in handed if c.gap == g.name]
        best, best_share = None, 0.0
        for rep in report:
            inside = [cid for cid in rep["conversation_ids"] if cid in labels]
            ours = [cid for cid in inside if labels[cid] == g.name]
            if ours and len(ours) / max(1, len(mine)) > best_share:
                best, best_share = rep, len(ours) / len(mine)
        f = GapFound(gap=g.name, conversations=len(mine), found=False)
        if best is not None:
            inside = [cid for cid in best["conversation_ids"] if cid in labels]
            ours = [cid for cid in inside if labels[cid] == g.name]
            f.reported_id, f.reported_conversations = best["id"], best["conversations"]
            f.purity = round(len(ours) / len(inside), 3) if inside else 0.0
            f.coverage = round(best_share, 3)
            f.found = f.purity > 0.5 and f.coverage >= 0.5 and best["id"] not in used
            if f.found:
                used.add(best["id"])
        per_gap_found[g.name] = f
    others = [
        rep["label"]
        for rep in report
        if rep["id"] not in used and not any(c in labels for c in rep["conversation_ids"])
    ]

    quality = day._ok(client.get("/v1/insights/handoff-quality", headers=cx))
    flagged = {i["conversation_id"] for i in quality["items"] if "issue" in i["reasked"]}
    truth = {c.conversation_id for c in handed if c.reasked}
    considered = {c.conversation_id for c in handed}
    tp = len(flagged & truth)
    reask_p = round(tp / len(flagged & considered), 4) if flagged & considered else None
    reask_r = round(tp / len(truth), 4) if truth else None

    # the CX team accepts each found gap's draft as it comes
    approved = 0
    for f in per_gap_found.values():
        if not f.found:
            continue
        draft = day._ok(
            client.post(
                f"/v1/insights/knowledge-gaps/{f.reported_id}/draft", json={"kind": "approved_answer"}, headers=cx
            )
        )
        body = {k: draft[k] for k in ("question", "answer", "variants")} | {"approved_by": "sim_cx"}
        r = client.post("/v1/approved-answers", json=body, headers=cx)
        if r.status_code == 201:
            f.approved_id = r.json()["id"]
            f.approved_texts = [draft["question"], *draft["variants"]]
            approved += 1
    if progress:
        progress("gaps and drafts", 2, 3)

    # day two: the same pools, other draws
    seen = {c.question for c in first}
    second = [day.gap_conversation(g, q, rng.random() < reask_rate) for g, q in _draws(gaps, per_gap, rng)]
    for c in second:
        per_gap_found[c.gap].day2_conversations += 1
        per_gap_found[c.gap].day2_handed_off += c.handed_off
    if progress:
        progress("day two", 3, 3)
    covered = {f.gap for f in per_gap_found.values() if f.approved_id}

    def share(convs: list[GapConversation], gaps_: set[str] | None = None) -> float:
        mine = [c for c in convs if gaps_ is None or c.gap in gaps_]
        return sum(c.handed_off for c in mine) / len(mine) if mine else 0.0

    def reduction(gaps_: set[str] | None) -> float:
        before = share(first, gaps_)
        return round(1 - share(second, gaps_) / before, 4) if before else 0.0

    new = [c for c in second if c.question not in seen]
    return LoopResult(
        gaps=len(gaps),
        gaps_found=sum(f.found for f in per_gap_found.values()),
        gap_recall=round(sum(f.found for f in per_gap_found.values()) / len(gaps), 4),
        grouping_precision=precision,
        grouping_recall=recall,
        reported_gaps=len(report),
        other_gaps=others,
        day1_gap_conversations=len(first),
        day1_handed_off=len(handed),
        day2_gap_conversations=len(second),
        day2_handed_off=sum(c.handed_off for c in second),
        handoff_reduction=reduction(covered),
        handoff_reduction_all=reduction(None),
        day2_new_phrasings=len(new),
        day2_new_phrasings_handed_off=sum(c.handed_off for c in new),
        approved=approved,
        avoidable_rate_day1=quality.get("avoidable_rate"),
        reask_rate_day1=quality.get("reask_rate"),
        reask_detection_precision=reask_p,
        reask_detection_recall=reask_r,
        ordinary_conversations=ordinary,
        per_gap=list(per_gap_found.values()),
        day2_misses=[{"gap": c.gap, "question": c.question, "reply": c.missed} for c in second if c.handed_off],
        seconds=round(time.perf_counter() - started, 1),
    )


def gap_mix(days: int, per_day: int, gaps: list[GapPool], rng: random.Random) -> list[list[tuple[GapPool, str]]]:
    """Gap conversations per day of a simulated history: about one in six conversations, the first gap rising (more
    of it each day), the others steady; days oldest first."""
    out: list[list[tuple[GapPool, str]]] = []
    for d in range(days):
        n = max(1, round(per_day / 6))
        chosen = [rng.choice(gaps[1:] or gaps) for _ in range(n)]
        chosen += [gaps[0]] * (d * 3 // days)  # rising
        out.append([(g, rng.choice(g.questions)) for g in chosen])
    return out
