"""Simulated customers (tau-bench style): scripted multi-turn customers with a goal, a persona and a
patience, talking to the assistant through the HTTP API; each scenario is run k times and scored pass^k.

A scenario (`evals/scenarios/*.json`) says what the customer wants, how they open and follow up (several
phrasings per persona) and what counts as success: a reply that cites one of the given help-center articles
and contains every group of key facts (any phrasing of each), or a handoff by the assistant (policy topics,
explicit requests), or explicitly no handoff. The customer reacts to each reply:
- the assistant handed off -> the conversation ends there;
- the reply satisfies the criteria -> the customer says thanks (in the persona's words) and ends (a
  thank-you that the assistant hands to a person still fails the trial);
- otherwise it counts as unhelpful; the customer rephrases (a follow-up of the scenario), and once their
  patience is spent (the scenario's, adjusted by the persona) asks for a person, or, if terse, leaves.
Pass: a must-handoff scenario passes when the assistant handed off before the customer had to ask; any
other scenario passes when a reply satisfied the criteria and nothing was handed off.

Trial j of a scenario draws its persona, opening and follow-up order from `Random(f"{seed}:{id}:{j}")`,
so trials differ in phrasing (and, with a sampling model, in the model's own output). pass^k is estimated
as in tau-bench: for each scenario with n trials of which c passed, C(c, k) / C(n, k), averaged over the
scenarios; pass^1 is the plain pass rate, and pass^k falls as k grows unless the assistant is consistent.
Each conversation's outcome and effort are read back from `GET /v1/conversations/{id}` (the telemetry).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from math import comb
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from evals.simulate import Credentials, Day
from evals.suite import Metric

SCENARIOS_DIR = Path(__file__).parent / "scenarios"
PersonaName = Literal["terse", "chatty", "frustrated", "non_native"]
Progress = Callable[[str, int, int], None]


class Persona(BaseModel):
    patience_delta: int = 0
    thanks: list[str]
    ask_person: list[str]
    follow_up_prefix: list[str] = Field(default_factory=lambda: [""])
    when_patience_runs_out: Literal["ask_for_person", "leave"] = "ask_for_person"


PERSONAS: dict[str, Persona] = {
    "terse": Persona(
        thanks=["ok thanks", "thx", "got it"],
        ask_person=["agent", "human please"],
        when_patience_runs_out="leave",
    ),
    "chatty": Persona(
        patience_delta=1,
        thanks=[
            "Oh brilliant, that's exactly what I needed, thank you so much!",
            "Perfect, thanks a lot for your help!",
        ],
        ask_person=["Could I speak to a person about this, please?", "I think I'd rather talk to a human agent."],
        follow_up_prefix=["Sorry, I don't think I was clear. ", "Hmm, let me put it another way. "],
    ),
    "frustrated": Persona(
        patience_delta=-1,
        thanks=["fine, thanks", "ok finally. thanks"],
        ask_person=["This is useless, I want to talk to a real person now.", "Get me a human agent."],
        follow_up_prefix=["That's not what I asked. ", "No. "],
    ),
    "non_native": Persona(
        thanks=["thank you very much, now is clear", "ok thank you, this help me"],
        ask_person=["please I want speak with a person", "is possible to talk with human agent?"],
    ),
}


class Success(BaseModel):
    handoff: bool = Field(description="True: the assistant must hand off; False: it must answer, without a handoff")
    cite: list[str] = Field(default_factory=list, description="a satisfying reply cites one of these source ids")
    facts: list[list[str]] = Field(
        default_factory=list, description="a satisfying reply contains, for every group, one of its phrasings"
    )

    def satisfied_by(self, reply: dict[str, Any] | None) -> bool:
        if self.handoff or reply is None or not reply.get("text"):
            return False
        cited = {c["source_id"] for c in reply.get("citations") or []}
        if self.cite and not cited & set(self.cite):
            return False
        text = reply["text"].lower()
        return all(any(p.lower() in text for p in group) for group in self.facts)


class Scenario(BaseModel):
    id: str
    goal: str
    patience: int = Field(3, ge=1, description="unhelpful replies the customer takes before giving up")
    openings: dict[PersonaName, list[str]]
    follow_ups: list[str] = Field(default_factory=list)
    success: Success


class Trial(BaseModel):
    scenario: str
    trial: int
    persona: str
    passed: bool
    turns: int
    satisfied: bool
    handed_off: bool
    asked_for_person: bool
    left: bool
    outcome: str | None
    effort: float | None
    conversation_id: str
    transcript: list[dict[str, Any]] = Field(default_factory=list)
    model_slow: int = Field(0, description="turns whose model missed its first-token deadline (a quote was shown)")
    model_failed: int = Field(0, description="turns lost to the model (it failed or timed out: handed to a person)")
    cause: str | None = Field(None, description="a failed trial: what went wrong, by kind (see `explain`)")
    explanation: str | None = Field(None, description="a failed trial: the turn and the evidence behind it")


def _contributions(trace: dict[str, Any] | None, sign: int, n: int = 3) -> str:
    """The `n` features that pulled the turn's confidence down (sign -1) or up (+1) most, as "name -1.23"."""
    a = (trace or {}).get("answerability") or {}
    parts = sorted(
        ((k, v) for k, v in (a.get("contributions") or {}).items() if v * sign > 0), key=lambda kv: -abs(kv[1])
    )
    odds = f"p {a['probability']:.3f} vs threshold {a['threshold']:.3f}" if "probability" in a else "no answerability"
    if (a.get("features") or {}).get("declined"):  # declined turns are handed off whatever the odds
        odds = f"declined (nothing to quote or say), {odds}"
    return f"{odds}; " + ", ".join(f"{k} {v:+.2f}" for k, v in parts[:n])


def explain(scenario: Scenario, trial: Trial, traces: list[dict[str, Any]]) -> tuple[str, str]:
    """Why a trial failed, as (cause, explanation). `traces` are the conversation's turn traces, one per message
    the assistant handled, in the order of `trial.transcript`. Causes:
    - `false handoff: <reason>` (an answer scenario handed off by the assistant; for low confidence, the features
      that pulled it under the threshold);
    - `wrong page` (a reply cited none of the scenario's articles) or `missing facts` (it cited one, without a
      key fact): the first unhelpful reply, with what it cited or lacked;
    - `no handoff` (a must-handoff scenario answered): the features that kept the reply's confidence up."""
    turns = trial.transcript
    if scenario.success.handoff:
        answered = [i for i, t in enumerate(turns) if t["handoff"] is None and t["reply"]]
        i = answered[0] if answered else 0
        trace = traces[i] if i < len(traces) else None
        how = f"{(trace or {}).get('reply_mode')}/{(trace or {}).get('action')}"
        return "no handoff", f"turn {i + 1} {turns[i]['customer']!r} answered ({how}): {_contributions(trace, +1)}"
    handoff = next((i for i, t in enumerate(turns) if t["handoff"]), None)
    if trial.handed_off and not trial.asked_for_person and handoff is not None:
        reason = turns[handoff]["handoff"]
        trace = traces[handoff] if handoff < len(traces) else None
        detail = _contributions(trace, -1) if reason == "low_confidence" else f"reason {reason}"
        return f"false handoff: {reason}", f"turn {handoff + 1} {turns[handoff]['customer']!r}: {detail}"
    for i, t in enumerate(turns):
        if t["handoff"] or not t["reply"]:
            continue
        cited = set(t["cited"])
        if scenario.success.cite and not cited & set(scenario.success.cite):
            return "wrong page", f"turn {i + 1} {t['customer']!r} cited {sorted(cited) or 'nothing'}"
        text = t["reply"].lower()
        missing = [g[0] for g in scenario.success.facts if not any(p.lower() in text for p in g)]
        if missing:
            return "missing facts", f"turn {i + 1} {t['customer']!r} cited {sorted(cited)} without {missing}"
    return "other", f"{len(turns)} turns, satisfied {trial.satisfied}, handed off {trial.handed_off}"


class ScenarioFigures(BaseModel):
    scenario: str
    trials: int
    passed: int


class CustomersResult(BaseModel):
    benchmark: str = "customers/simulated"
    scenarios: int
    k: int
    trials: int
    pass_hat_k: dict[int, float]
    pass_rate: float
    resolution_rate: float  # answer scenarios: the telemetry found the conversation resolved by the bot
    handoff_correct: float | None  # must-handoff scenarios: handed off without being asked twice
    false_handoff_rate: float | None  # answer scenarios: handed off by the assistant
    mean_effort: float | None
    mean_turns: float
    per_scenario: list[ScenarioFigures]
    causes: dict[str, int] = Field(default_factory=dict, description="failed trials by cause (see `explain`)")
    model_slow_turns: int = Field(0, description="turns quoted because the model missed its first-token deadline")
    model_failed_turns: int = Field(0, description="turns lost to the model: failed or timed out, handed off")
    busy_cores: int = Field(0, description="processes burning a core each while the run ran (`--busy-cores`)")
    trial_results: list[Trial]
    seconds: float

    def suite_metrics(self) -> list[Metric]:
        """pass^1..k, resolution and turns always; the handoff figures and effort when the run has them."""
        n = self.scenarios
        metrics = [
            *(Metric(f"pass_hat_{k}", v, n=n) for k, v in self.pass_hat_k.items()),
            Metric("resolution_rate", self.resolution_rate, n=n),
            Metric("mean_turns", self.mean_turns, higher_is_better=False, kind="info", n=n),
        ]
        if self.handoff_correct is not None:
            metrics.append(Metric("handoff_correct", self.handoff_correct))
        if self.false_handoff_rate is not None:
            metrics.append(Metric("false_handoff_rate", self.false_handoff_rate, higher_is_better=False))
        if self.mean_effort is not None:
            metrics.append(Metric("mean_effort", self.mean_effort, higher_is_better=False, kind="value"))
        return metrics

    def summary_rows(self) -> list[tuple[str, object]]:
        return [
            ("scenarios / trials", f"{self.scenarios} / {self.trials}"),
            *((f"pass^{i}", f"{v:.3f}") for i, v in self.pass_hat_k.items()),
            ("resolution rate (answer scenarios, telemetry)", f"{self.resolution_rate:.3f}"),
            ("handed off when it must (policy, explicit)", self.handoff_correct),
            ("false handoffs (answer scenarios)", self.false_handoff_rate),
            ("mean effort (CES 1..7) / mean turns", f"{self.mean_effort} / {self.mean_turns}"),
            ("turns lost to the model / quoted as it was slow", f"{self.model_failed_turns} / {self.model_slow_turns}"),
            ("other processes burning a core", self.busy_cores),
            ("wall time (s)", f"{self.seconds:.0f}"),
        ]


def load_scenarios(paths: list[Path] | None = None) -> list[Scenario]:
    files: list[Path] = []
    for p in paths or [SCENARIOS_DIR]:
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    out: list[Scenario] = []
    for f in files:
        raw = json.loads(f.read_text(encoding="utf-8"))
        out.extend(Scenario.model_validate(s) for s in (raw["scenarios"] if isinstance(raw, dict) else raw))
    ids = [s.id for s in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate scenario ids in {files}")
    return out


def pass_hat_k(counts: list[tuple[int, int]], k: int) -> float:
    """tau-bench's pass^k: mean over tasks of C(c, k) / C(n, k), for (n trials, c passed) per task."""
    usable = [(n, c) for n, c in counts if n >= k]
    if not usable:
        return float("nan")
    return sum(comb(c, k) / comb(n, k) for n, c in usable) / len(usable)


def _handed_off(turn: dict[str, Any]) -> bool:
    return turn.get("handoff") is not None and turn.get("status") in ("waiting_for_agent", "with_agent")


def run_trial(day: Day, scenario: Scenario, trial: int, seed: int) -> Trial:
    rng = random.Random(f"{seed}:{scenario.id}:{trial}")
    name = rng.choice(sorted(scenario.openings))
    persona = PERSONAS[name]
    patience = max(1, scenario.patience + persona.patience_delta)
    follow = scenario.follow_ups[:]
    rng.shuffle(follow)
    cid = day.start()
    transcript: list[dict[str, Any]] = []

    def say(text: str) -> dict[str, Any]:
        turn = day.say(cid, text)
        reply = turn.get("reply") or {}
        transcript.append(
            {
                "customer": text,
                "reply": reply.get("text"),
                "cited": [c["source_id"] for c in reply.get("citations") or []],
                "handoff": turn["handoff"]["reason"] if turn.get("handoff") else None,
            }
        )
        return turn

    text = rng.choice(scenario.openings[name])  # type: ignore[index]
    unhelpful = 0
    satisfied = handed = asked = left = False
    while True:
        turn = say(text)
        if _handed_off(turn):
            handed = True
            break
        if scenario.success.satisfied_by(turn.get("reply")):
            satisfied = True
            handed = _handed_off(say(rng.choice(persona.thanks)))  # a thank-you handed to a person is a failure
            break
        unhelpful += 1
        if unhelpful >= patience or not follow:
            if persona.when_patience_runs_out == "leave":
                left = True
                break
            asked = True
            handed = _handed_off(say(rng.choice(persona.ask_person)))
            break
        text = rng.choice(persona.follow_up_prefix) + follow.pop()
    facts = day._ok(day.client.get(f"/v1/conversations/{cid}", headers=day.widget))
    passed = (handed and not asked) if scenario.success.handoff else (satisfied and not handed)
    result = Trial(
        scenario=scenario.id,
        trial=trial,
        persona=name,
        passed=passed,
        turns=len(transcript),
        satisfied=satisfied,
        handed_off=handed,
        asked_for_person=asked,
        left=left,
        outcome=facts.get("outcome"),
        effort=facts.get("effort"),
        conversation_id=cid,
        transcript=transcript,
    )
    traces = day._ok(day.client.get(f"/v1/conversations/{cid}/turns", headers=day.cx))["items"]
    result.model_slow = sum(t.get("fallback") == "model_slow" for t in traces)
    result.model_failed = sum(t.get("error") is not None for t in traces)
    if not passed:
        result.cause, result.explanation = explain(scenario, result, traces)
    return result


def run_customers(
    client: httpx.Client,
    creds: Credentials,
    scenarios: list[Scenario],
    k: int = 4,
    seed: int = 0,
    limit: int | None = None,
    progress: Progress | None = None,
) -> CustomersResult:
    """Run each scenario `k` times (a `limit` samples that many scenarios with `seed`)."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if limit is not None and limit < len(scenarios):
        scenarios = sorted(random.Random(seed).sample(scenarios, limit), key=lambda s: s.id)
    started = time.perf_counter()
    day = Day(client, creds, seed)
    trials: list[Trial] = []
    total = len(scenarios) * k
    for s in scenarios:
        for j in range(k):
            trials.append(run_trial(day, s, j, seed))
            if progress:
                progress("conversations", len(trials), total)
    per = [
        ScenarioFigures(
            scenario=s.id,
            trials=sum(t.scenario == s.id for t in trials),
            passed=sum(t.passed for t in trials if t.scenario == s.id),
        )
        for s in scenarios
    ]
    counts = [(p.trials, p.passed) for p in per]
    must = {s.id for s in scenarios if s.success.handoff}
    answer_trials = [t for t in trials if t.scenario not in must]
    handoff_trials = [t for t in trials if t.scenario in must]
    efforts = [t.effort for t in trials if t.effort is not None]
    return CustomersResult(
        scenarios=len(scenarios),
        k=k,
        trials=len(trials),
        pass_hat_k={i: round(pass_hat_k(counts, i), 4) for i in range(1, k + 1)},
        pass_rate=round(sum(t.passed for t in trials) / max(1, len(trials)), 4),
        resolution_rate=round(
            sum(t.outcome in ("resolved_by_bot_confirmed", "resolved_by_bot_assumed") for t in answer_trials)
            / max(1, len(answer_trials)),
            4,
        ),
        handoff_correct=round(sum(t.passed for t in handoff_trials) / len(handoff_trials), 4)
        if handoff_trials
        else None,
        false_handoff_rate=round(
            sum(t.handed_off and not t.asked_for_person for t in answer_trials) / len(answer_trials), 4
        )
        if answer_trials
        else None,
        mean_effort=round(statistics.fmean(efforts), 3) if efforts else None,
        mean_turns=round(statistics.fmean(t.turns for t in trials), 2) if trials else 0.0,
        per_scenario=per,
        causes=dict(Counter(t.cause for t in trials if t.cause).most_common()),
        model_slow_turns=sum(t.model_slow for t in trials),
        model_failed_turns=sum(t.model_failed for t in trials),
        trial_results=trials,
        seconds=round(time.perf_counter() - started, 1),
    )
