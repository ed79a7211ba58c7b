"""A simulated day: scripted customers of varied kinds talk to the assistant through the HTTP API, agents
take the handoffs, some customers leave; then the CX figures (`/v1/metrics`, `/v1/conversations`) are
checked against what each script intended.

Kinds (each script knows the outcome it should produce; the telemetry must find it from the events):

| kind | what happens | intended outcome |
| --- | --- | --- |
| `easy_thanks` | a help-center question, answered, "thanks, that worked" | resolved_by_bot_confirmed |
| `easy_silent` | a help-center question, answered, the customer leaves | resolved_by_bot_assumed |
| `contradiction` | answered, "that didn't work, still not working", leaves | unresolved |
| `rephrase_loop` | the same problem again and again, "I already told you" -> a person | resolved_by_agent |
| `person_resolved` | asks for a person at once; an agent replies and resolves | resolved_by_agent |
| `person_unresolved` | an agent takes it but cannot solve it | unresolved |
| `abandoned` | asks for a person, nobody comes in time, the customer leaves | abandoned |
| `recontact` | thanks an answer, then a new conversation on that topic | both bot-confirmed; 1st not durable |

The server must run with a short inactivity timeout (`CXA_TELEMETRY__INACTIVITY_S`, e.g. 2) so that
"the customer left" happens within the run; `cxa simulate day` starts one in-process like that.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel

from assistant.safety import identity

QUESTIONS: dict[str, list[str]] = {
    "account": [
        "How do I turn on two-factor authentication?",
        "How can I reset my password?",
        "How do I change the email address on my account?",
    ],
    "returns-refunds": [
        "How long does a refund take to reach my card?",
        "How do I start a return?",
        "Can I exchange an item for a different size?",
    ],
    "shipping": [
        "How much does delivery cost?",
        "Can I collect my order from a store?",
        "What happens if I miss my delivery?",
    ],
    "subscriptions": ["How do I cancel Larkspur Plus?", "Can I pause my Larkspur Plus membership?"],
    "billing": ["Which payment methods do you accept?", "How do I use a gift card?"],
}
LOOP = [
    "my sofa cushion arrived torn",
    "my sofa cushion arrived torn",
    "I already told you, the cushion on my sofa is torn!!",
]
PERSON = ["I want to talk to a person", "Can I speak to a human agent please?", "agent please"]

Progress = Callable[[str, int, int], None]


@dataclass
class Credentials:
    widget_key: str
    agent_token: str
    cx_token: str
    identity_secret: str

    def customer_hash(self, customer_id: str) -> str:
        return identity.customer_hash(self.identity_secret, customer_id)


@dataclass
class Script:
    kind: str
    intended: str
    conversation_ids: list[str] = field(default_factory=list)
    intended_extra: dict[str, Any] = field(default_factory=dict)


class KindCheck(BaseModel):
    kind: str
    conversations: int
    scripts: int
    intended: str
    matched: int  # scripts whose every conversation got the intended outcome


class MetricCheck(BaseModel):
    metric: str
    expected: float
    got: float
    ok: bool


class DayResult(BaseModel):
    conversations: int
    turns: int
    seconds: float
    kinds: list[KindCheck]
    metrics: dict[str, Any]
    checks: list[MetricCheck]
    mismatches: list[dict[str, Any]]
    signals_ms_p50: float | None
    signals_ms_p95: float | None
    turn_ms_p50: float | None
    turn_ms_p95: float | None


class Day:
    def __init__(self, client: httpx.Client, creds: Credentials, seed: int = 0) -> None:
        self.client = client
        self.creds = creds
        self.rng = random.Random(seed)
        self.turns = 0
        self.signal_ms: list[float] = []
        self.turn_ms: list[float] = []
        self.agent = {"Authorization": f"Bearer {creds.agent_token}"}
        self.cx = {"Authorization": f"Bearer {creds.cx_token}"}
        self.widget = {"X-Widget-Key": creds.widget_key}
        self.tokens: dict[str, str] = {}  # conversation id -> its X-Conversation-Token

    # -- API calls --------------------------------------------------------------------------------------

    def _ok(self, r: httpx.Response) -> dict[str, Any]:
        if r.status_code >= 400:
            raise RuntimeError(f"{r.request.method} {r.request.url.path} -> {r.status_code}: {r.text[:300]}")
        return r.json()  # type: ignore[no-any-return]

    def start(self, customer_id: str | None = None, channel: str = "web") -> str:
        body: dict[str, Any] = {"channel": channel}
        if customer_id:
            body |= {"customer_id": customer_id, "customer_hash": self.creds.customer_hash(customer_id)}
        conv = self._ok(self.client.post("/v1/conversations", json=body, headers=self.widget))
        self.tokens[conv["id"]] = conv["token"]
        return str(conv["id"])

    def customer(self, cid: str) -> dict[str, str]:
        """The customer's headers for conversation `cid`: the widget key and the conversation's token."""
        return {**self.widget, "X-Conversation-Token": self.tokens.get(cid, "")}

    def say(self, cid: str, text: str) -> dict[str, Any]:
        path = f"/v1/conversations/{cid}/messages"
        turn = self._ok(self.client.post(path, json={"text": text}, headers=self.customer(cid)))
        self.turns += 1
        timings = turn.get("timings_ms") or {}
        if "signals" in timings:
            self.signal_ms.append(timings["signals"])
        if "total" in timings:
            self.turn_ms.append(timings["total"])
        return turn

    def ask_for_person(self, cid: str) -> dict[str, Any]:
        r = self.client.post(f"/v1/conversations/{cid}/handoff", json={}, headers=self.customer(cid))
        return self._ok(r)["handoff"]  # type: ignore[no-any-return]

    def open_handoff(self, cid: str) -> dict[str, Any]:
        conv = self._ok(self.client.get(f"/v1/conversations/{cid}", headers=self.customer(cid)))
        if conv.get("handoff") is None:
            return self.ask_for_person(cid)
        return conv["handoff"]  # type: ignore[no-any-return]

    def agent_takes(self, cid: str, resolved: bool) -> None:
        hid = self.open_handoff(cid)["id"]
        self._ok(self.client.post(f"/v1/handoffs/{hid}/claim", json={"agent_id": "sim_agent"}, headers=self.agent))
        text = "Thanks for waiting, I'm sorting this out for you now." if resolved else "Sorry, I can't change that."
        self._ok(self.client.post(f"/v1/conversations/{cid}/agent-messages", json={"text": text}, headers=self.agent))
        self._ok(self.client.post(f"/v1/handoffs/{hid}/resolve", json={"resolved": resolved}, headers=self.agent))

    def feedback(self, cid: str, **body: Any) -> None:
        self._ok(self.client.post(f"/v1/conversations/{cid}/feedback", json=body, headers=self.customer(cid)))

    # -- the scripts --------------------------------------------------------------------------------------

    def handed_off(self, turn: dict[str, Any], script: Script) -> bool:
        """Did the assistant hand off where the script expected an answer? (Counted: `bot_handed_off`.)"""
        if turn.get("handoff") is not None and turn.get("status") == "waiting_for_agent":
            script.intended_extra["bot_handed_off"] = True
            return True
        return False

    def waits_and_leaves(self, script: Script, cid: str) -> Script:
        """Nobody is sent (this simulated day has agents only for the customers who ask for one): the customer
        leaves while waiting, which the telemetry must see as abandoned."""
        script.intended = "abandoned"
        script.conversation_ids.append(cid)
        return script

    def question(self) -> tuple[str, str]:
        topic = self.rng.choice(sorted(QUESTIONS))
        return topic, self.rng.choice(QUESTIONS[topic])

    def run_script(self, kind: str, customers: list[str]) -> Script:
        rng = self.rng
        if kind == "easy_thanks":
            s = Script(kind, "resolved_by_bot_confirmed")
            cid = self.start()
            if self.handed_off(self.say(cid, self.question()[1]), s):
                return self.waits_and_leaves(s, cid)
            self.say(cid, rng.choice(["Thanks, that worked!", "perfect, thank you", "Great, got it. Thanks!"]))
            if rng.random() < 0.5:
                self.feedback(cid, csat=rng.choice([4, 5]), ces=rng.choice([1, 2]), resolved=True)
        elif kind == "easy_silent":
            s = Script(kind, "resolved_by_bot_assumed")
            cid = self.start()
            if self.handed_off(self.say(cid, self.question()[1]), s):
                return self.waits_and_leaves(s, cid)
        elif kind == "contradiction":
            s = Script(kind, "unresolved")
            cid = self.start()
            if self.handed_off(self.say(cid, self.question()[1]), s):
                return self.waits_and_leaves(s, cid)
            if self.handed_off(self.say(cid, "That didn't work, it's still not working."), s):
                return self.waits_and_leaves(s, cid)
        elif kind == "rephrase_loop":
            s = Script(kind, "resolved_by_agent")
            cid = self.start()
            for text in LOOP:
                self.say(cid, text)
            self.agent_takes(cid, resolved=True)
        elif kind == "person_resolved":
            s = Script(kind, "resolved_by_agent")
            cid = self.start()
            self.say(cid, rng.choice(PERSON))
            self.agent_takes(cid, resolved=True)
            if rng.random() < 0.5:
                self.feedback(cid, csat=rng.choice([3, 4, 5]), ces=rng.choice([2, 3, 4]))
        elif kind == "person_unresolved":
            s = Script(kind, "unresolved")
            cid = self.start()
            self.say(cid, rng.choice(PERSON))
            self.agent_takes(cid, resolved=False)
            self.feedback(cid, csat=rng.choice([1, 2]), ces=rng.choice([5, 6, 7]), resolved=False)
        elif kind == "abandoned":
            s = Script(kind, "abandoned")
            cid = self.start()
            self.say(cid, rng.choice(PERSON))
        elif kind == "recontact":
            s = Script(kind, "resolved_by_bot_confirmed", intended_extra={"first_durable": False})
            customer = customers.pop() if customers else None
            topic, first_q = self.question()
            first = self.start(customer)
            if self.handed_off(self.say(first, first_q), s):
                s.kind = "recontact (first handed off)"
                return self.waits_and_leaves(s, first)
            self.say(first, "Thanks!")
            s.conversation_ids.append(first)
            cid = self.start(customer, channel=rng.choice(["web", "email"]))
            if self.handed_off(
                self.say(cid, rng.choice([q for q in QUESTIONS[topic] if q != first_q] or [first_q])), s
            ):
                s.intended_extra["second_handed_off"] = True
                return self.waits_and_leaves(s, cid)
            self.say(cid, "ok thanks, that worked")
        else:
            raise ValueError(f"unknown kind {kind}")
        s.conversation_ids.append(cid)
        return s


MIX = {
    "easy_thanks": 0.30,
    "easy_silent": 0.20,
    "contradiction": 0.08,
    "rephrase_loop": 0.08,
    "person_resolved": 0.12,
    "person_unresolved": 0.06,
    "abandoned": 0.08,
    "recontact": 0.08,
}


def run_day(
    client: httpx.Client,
    creds: Credentials,
    conversations: int = 200,
    customers: list[str] | None = None,
    idle_wait_s: float = 2.5,
    seed: int = 0,
    progress: Progress | None = None,
) -> DayResult:
    """Run the scripts (a fixed mix, shuffled by `seed`), wait `idle_wait_s` for the inactivity timeout,
    then read the figures back and compare them with the intentions."""
    day = Day(client, creds, seed)
    kinds = [k for k, share in MIX.items() for _ in range(round(share * conversations))]
    day.rng.shuffle(kinds)
    pool = list(customers or [])
    started = time.perf_counter()
    scripts = []
    for i, kind in enumerate(kinds):
        scripts.append(day.run_script(kind, pool))
        if progress:
            progress("conversations", i + 1, len(kinds))
    time.sleep(idle_wait_s)  # everyone still "open" has now left
    metrics = day._ok(client.get("/v1/metrics", headers=day.cx))
    items = {
        i["id"]: i for i in day._ok(client.get("/v1/conversations", params={"limit": 500}, headers=day.cx))["items"]
    }
    offset = 500
    while len(items) < metrics["conversations"]:
        page = day._ok(client.get("/v1/conversations", params={"limit": 500, "offset": offset}, headers=day.cx))
        if not page["items"]:
            break
        items |= {i["id"]: i for i in page["items"]}
        offset += 500
    seconds = time.perf_counter() - started

    by_kind: dict[str, KindCheck] = {}
    mismatches: list[dict[str, Any]] = []
    expected_outcomes: Counter[str] = Counter()
    expected_handoffs = 0
    for s in scripts:
        name = s.kind + (" (bot handed off)" if s.intended_extra.get("bot_handed_off") else "")
        check = by_kind.setdefault(
            name, KindCheck(kind=name, conversations=0, intended=s.intended, matched=0, scripts=0)
        )
        ok = True
        for n, cid in enumerate(s.conversation_ids):
            got = items.get(cid, {})
            last = n == len(s.conversation_ids) - 1
            intended = s.intended if last else "resolved_by_bot_confirmed"
            expected_outcomes[intended] += 1
            expected_handoffs += s.kind in ("rephrase_loop", "person_resolved", "person_unresolved", "abandoned") or (
                last and bool(s.intended_extra.get("bot_handed_off"))
            )
            if got.get("outcome") != intended:
                ok = False
                mismatches.append(
                    {"kind": s.kind, "conversation": cid, "intended": intended, "got": got.get("outcome")}
                )
            if not last and s.intended_extra.get("first_durable") is False and got.get("durable") is not False:
                ok = False
                mismatches.append(
                    {"kind": s.kind, "conversation": cid, "intended": "durable=false", "got": got.get("durable")}
                )
        check.conversations += len(s.conversation_ids)
        check.scripts += 1
        check.matched += ok
    n = sum(len(s.conversation_ids) for s in scripts)
    bot = expected_outcomes["resolved_by_bot_confirmed"] + expected_outcomes["resolved_by_bot_assumed"]
    expected = {
        "conversations": n,
        "bot_resolution_rate": bot / n,
        "handoff_rate": expected_handoffs / n,
        "abandonment_rate": expected_outcomes["abandoned"] / n,
        "agent_resolution_rate": expected_outcomes["resolved_by_agent"] / n,
        "unresolved_rate": expected_outcomes["unresolved"] / n,
        "recontact_rate": sum(1 for s in scripts if s.kind == "recontact") / n,
    }
    checks = [
        MetricCheck(metric=k, expected=round(v, 4), got=metrics[k], ok=abs(metrics[k] - v) < 1e-3)
        for k, v in expected.items()
    ]

    def q(values: list[float], p: int) -> float | None:
        return round(statistics.quantiles(values, n=100)[p - 1], 3) if len(values) > 1 else None

    return DayResult(
        conversations=n,
        turns=day.turns,
        seconds=round(seconds, 1),
        kinds=sorted(by_kind.values(), key=lambda k: k.kind),
        metrics=metrics,
        checks=checks,
        mismatches=mismatches,
        signals_ms_p50=round(statistics.median(day.signal_ms), 3) if day.signal_ms else None,
        signals_ms_p95=q(day.signal_ms, 95),
        turn_ms_p50=round(statistics.median(day.turn_ms), 3) if day.turn_ms else None,
        turn_ms_p95=q(day.turn_ms, 95),
    )
