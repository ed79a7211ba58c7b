"""Account answers on the sample customers (`evals/account/cases.jsonl`): questions about orders, deliveries,
refunds, returns, membership, payments and tickets, in several phrasings (typos, follow-ups, mixed questions,
other customers' order numbers, anonymous visitors, general questions that must not be taken for account ones).

Each case is replayed through the engine (the whole turn: intent, record, help center) as its customer, with
"now" fixed at `AS_OF` (the day the sample records describe), and checked on its last reply:
- the facts it must contain (and any it must not), and the expected outcome: an answer, a handoff with its
  reason, "not found", "sign in", a clarifying question, or (for a general question) not an account answer;
- leaks: any identifier of another sample customer (order, tracking and RMA numbers, names, emails) in the
  reply, whatever the case expected. The goal is 0.

Reported: fact accuracy (cases passed, of the account cases), leaks, wrong-tool and false/missed account
routing rates, clarification rate, and turn latency (p50/p95 of account turns; no chat model is involved).
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from assistant.models import Turn
from assistant.samples import SAMPLE_CUSTOMERS
from assistant.services import Services
from assistant.settings import Settings
from assistant.store.tables import ConversationRow
from evals.suite import Metric
from evals.workspace import HELPCENTER_COLLECTION, helpcenter_workspace
from knowledge.loaders import SAMPLE_HELPCENTER

CASES = Path(__file__).resolve().parents[1] / "account" / "cases.jsonl"
AS_OF = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
Progress = Callable[[str, int, int], None]


class AccountCase(BaseModel):
    id: str
    customer: str | None = Field(None, description="a sample customer, verified; None = anonymous")
    claimed: str | None = Field(None, description="an id an anonymous visitor claims without its hash")
    turns: list[str]
    tool: str | None = Field(None, description="the account tool the last message needs; None = a general question")
    expect: str = Field(description="answer | handoff:<reason> | not_found | sign_in | clarify | general")
    must: list[str] = Field(default_factory=list)
    must_not: list[str] = Field(default_factory=list)


class AccountCaseResult(BaseModel):
    id: str
    passed: bool
    facts_ok: bool
    outcome_ok: bool
    leaked: list[str] = Field(default_factory=list, description="another customer's identifiers in the reply")
    missing: list[str] = Field(default_factory=list)
    forbidden: list[str] = Field(default_factory=list, description="what the case says the reply must not hold")
    expect: str
    got: str
    tool_expected: str | None = None
    tool: str | None = None
    reply: str = ""
    latency_ms: float = 0.0


class AccountResult(BaseModel):
    benchmark: str = "account/sample-customers"
    as_of: datetime
    cases: int
    account_cases: int
    general_cases: int
    fact_accuracy: float = Field(description="account cases with every fact right and the expected outcome")
    leaks: int = Field(description="replies holding another customer's identifiers (goal: 0)")
    wrong_tool_rate: float
    false_account_rate: float = Field(description="general questions answered from the record")
    missed_account_rate: float = Field(description="account questions not answered from the record")
    clarification_rate: float = Field(description="account cases answered with a clarifying question")
    latency_ms_p50: float
    latency_ms_p95: float
    by_tool: dict[str, float] = Field(default_factory=dict, description="fact accuracy per expected tool")
    results: list[AccountCaseResult]
    seconds: float

    def suite_metrics(self) -> list[Metric]:
        return [
            Metric("fact_accuracy", self.fact_accuracy, n=self.account_cases),
            Metric("leaks", float(self.leaks), higher_is_better=False, kind="value"),
            Metric("false_account_rate", self.false_account_rate, higher_is_better=False, n=self.general_cases),
            Metric("missed_account_rate", self.missed_account_rate, higher_is_better=False, n=self.account_cases),
            Metric("clarification_rate", self.clarification_rate, kind="info", n=self.account_cases),
            Metric("latency_ms_p50", self.latency_ms_p50, higher_is_better=False, kind="info"),
        ]

    def summary_rows(self) -> list[tuple[str, object]]:
        return [
            ("cases (account / general)", f"{self.cases} ({self.account_cases} / {self.general_cases})"),
            ("as of", f"{self.as_of:%Y-%m-%d %H:%M} UTC"),
            ("fact accuracy (facts right + expected outcome)", f"{self.fact_accuracy:.3f}"),
            ("leaks of another customer's data", str(self.leaks)),
            ("wrong tool", f"{self.wrong_tool_rate:.3f}"),
            ("general questions answered from the record", f"{self.false_account_rate:.3f}"),
            ("account questions missed", f"{self.missed_account_rate:.3f}"),
            ("clarifying questions", f"{self.clarification_rate:.3f}"),
            ("turn latency p50 / p95 (ms)", f"{self.latency_ms_p50:.0f} / {self.latency_ms_p95:.0f}"),
            ("by tool", ", ".join(f"{k} {v:.2f}" for k, v in sorted(self.by_tool.items()))),
        ]


def load_account_cases(path: Path = CASES) -> list[AccountCase]:
    return [AccountCase.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def identifiers(path: Path = SAMPLE_CUSTOMERS) -> dict[str, set[str]]:
    """Each sample customer's identifiers: order, tracking and RMA numbers, name and email."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, set[str]] = {}
    for c in raw["customers"] if isinstance(raw, dict) else raw:
        ids = {c.get("name") or "", c.get("email") or ""}
        for e in c.get("events", []):
            d = e.get("data", {})
            ids |= {str(d[k]) for k in ("order_id", "tracking", "rma") if d.get(k)}
        out[c["id"]] = {i for i in ids if len(i) >= 6}
    return out


def _outcome(turn: Turn, tools: list[str]) -> str:
    reply = turn.reply
    text = reply.text if reply else ""
    if turn.handoff is not None and turn.action == "handoff":
        return f"handoff:{turn.handoff.reason}"
    if reply is None or reply.mode != "account":
        return "general"
    if "not signed in" in text:
        return "sign_in"
    if "can't find" in text:
        return "not_found"
    if "Which one" in text:
        return "clarify"
    return "answer"


def run_account(
    settings: Settings,
    cases_path: Path = CASES,
    limit: int | None = None,
    progress: Progress | None = None,
    as_of: datetime = AS_OF,
    customers_path: Path = SAMPLE_CUSTOMERS,
) -> AccountResult:
    """`customers_path` and `cases_path`: another set of customers (the customers.json format) and its cases."""
    cases = load_account_cases(cases_path)[:limit]
    owners = identifiers(customers_path)
    public = " ".join(p.read_text(encoding="utf-8") for p in SAMPLE_HELPCENTER.rglob("*") if p.is_file()).lower()
    started = time.perf_counter()
    results: list[AccountCaseResult] = []
    with tempfile.TemporaryDirectory(prefix="cxa-account-") as tmp:
        ws = helpcenter_workspace(settings, Path(tmp), True, HELPCENTER_COLLECTION, customers_path)
        ws = ws.model_copy(update={"chat_provider": "fake"})  # the record answers; general turns need no real model
        services = Services.build(ws, warm=False, clock=lambda: as_of)
        try:
            for i, case in enumerate(cases):
                results.append(_replay(services, case, owners, public))
                if progress:
                    progress("account", i + 1, len(cases))
        finally:
            services.close()
    return _summarise(results, cases, as_of, time.perf_counter() - started)


def _replay(services: Services, case: AccountCase, owners: dict[str, set[str]], public: str) -> AccountCaseResult:
    engine = services.engine
    conv = engine.start_conversation(case.customer or case.claimed, verified=case.customer is not None)
    turn: Turn | None = None
    latency = 0.0
    for text in case.turns:
        t0 = time.perf_counter()
        turn = engine.run_turn(conv.id, text)
        latency = (time.perf_counter() - t0) * 1000
        if turn.handoff is not None and turn.action == "handoff":
            break  # a person has it: the later messages go to them, and this turn is the one to judge
    assert turn is not None
    record = services.store.get_turn(turn.turn_id)
    tools = [c.name for c in record.tool_calls] if record else []
    reply = turn.reply.text if turn.reply else ""
    _forget(services, conv.id)
    got = _outcome(turn, tools)
    low = reply.lower()
    missing = [m for m in case.must if m.lower() not in low]
    forbidden = [m for m in case.must_not if m.lower() in low]
    # what the customer typed themselves, and the help center's own examples, are not leaks
    asked = " ".join(case.turns).lower()
    others = set().union(*(ids for cid, ids in owners.items() if cid != case.customer)) - owners.get(
        case.customer or "", set()
    )
    others = {i for i in others if i.lower() not in asked and i.lower() not in public}
    leaked = sorted(i for i in others if re.search(rf"\b{re.escape(i.lower())}\b", low))
    outcome_ok = got == case.expect
    facts_ok = not missing and not forbidden
    tool = tools[-1] if tools else None
    return AccountCaseResult(
        id=case.id,
        passed=outcome_ok and facts_ok and not leaked,
        facts_ok=facts_ok,
        outcome_ok=outcome_ok,
        leaked=leaked,
        missing=missing,
        forbidden=forbidden,
        expect=case.expect,
        got=got,
        tool_expected=case.tool,
        tool=tool,
        reply=reply,
        latency_ms=round(latency, 1),
    )


def _forget(services: Services, conversation_id: str) -> None:
    """Cases are independent: a replayed conversation must not become a later case's "last time we spoke"."""
    with services.store.session() as s:
        row = s.get(ConversationRow, conversation_id)
        if row is not None:
            s.delete(row)


def _summarise(
    results: list[AccountCaseResult], cases: list[AccountCase], as_of: datetime, seconds: float
) -> AccountResult:
    account = [r for r, c in zip(results, cases, strict=True) if c.tool is not None]
    general = [r for r, c in zip(results, cases, strict=True) if c.tool is None]
    routed = [r for r in account if r.got != "general"]
    lat = sorted(r.latency_ms for r in account) or [0.0]
    by_tool: dict[str, list[bool]] = {}
    for r in account:
        by_tool.setdefault(r.tool_expected or "?", []).append(r.passed)
    with_tool = [r for r in routed if r.tool is not None and r.got not in ("sign_in",)]

    def share(xs: list[AccountCaseResult], of: int) -> float:
        return round(len(xs) / of, 4) if of else 0.0

    return AccountResult(
        as_of=as_of,
        cases=len(results),
        account_cases=len(account),
        general_cases=len(general),
        fact_accuracy=share([r for r in account if r.passed], len(account)),
        leaks=sum(1 for r in results if r.leaked),
        wrong_tool_rate=share(
            [r for r in with_tool if r.tool != r.tool_expected and r.tool not in ("find_orders", "list_orders")],
            len(with_tool),
        ),
        false_account_rate=share([r for r in general if r.got != "general"], len(general)),
        missed_account_rate=share([r for r in account if r.got == "general"], len(account)),
        clarification_rate=share([r for r in account if r.got == "clarify"], len(account)),
        latency_ms_p50=round(statistics.median(lat), 1),
        latency_ms_p95=round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1),
        by_tool={k: round(sum(v) / len(v), 3) for k, v in by_tool.items()},
        results=results,
        seconds=round(seconds, 1),
    )
