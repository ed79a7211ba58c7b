"""Regression cases: labelled conversations to replay (one JSON object per line).

The format is shared with `cxa eval export-cases` (conversations the CX team reviewed):

    {"case_id", "conversation_id", "label": "good"|"bad", "tags": [str], "note": str|null,
     "customer_id": str|null, "verified": bool,
     "turns": [{"role": "customer"|"assistant"|"agent"|"system", "text", "mode", "citations": [source_id],
                "confidence"}],
     "expected": {"handoff": bool, "outcome": str|null, "min_groundedness": float|null, "scores": {name: float}}}

Only the customer turns are replayed; the recorded assistant turns are there for people reading the case.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

CASES_DIR = Path(__file__).parent / "cases"


class CaseTurn(BaseModel):
    role: Literal["customer", "assistant", "agent", "system"]
    text: str
    mode: str | None = None
    citations: list[str] = Field(default_factory=list, description="source ids")
    confidence: float | None = None


class Expected(BaseModel):
    handoff: bool = Field(description="the assistant hands the conversation to a person")
    outcome: str | None = Field(None, description="the telemetry outcome once the customer has left")
    min_groundedness: float | None = Field(None, ge=0, le=1, description="mean groundedness of the replies")
    scores: dict[str, float] = Field(default_factory=dict, description="scorecard floors (not checked on replay)")


class RegressionCase(BaseModel):
    case_id: str
    conversation_id: str
    label: Literal["good", "bad"]
    tags: list[str] = Field(default_factory=list)
    note: str | None = None
    customer_id: str | None = None
    verified: bool = False
    turns: list[CaseTurn]
    expected: Expected

    @property
    def customer_turns(self) -> list[str]:
        return [t.text for t in self.turns if t.role == "customer"]


class CaseFileError(ValueError):
    """A cases file that cannot be read: shown with the file and line to fix."""


def load_cases(paths: Iterable[Path]) -> list[RegressionCase]:
    """Cases from JSONL files (a folder means its *.jsonl, sorted); a repeated case_id keeps the last one."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(p.glob("*.jsonl")))
        elif p.is_file():
            files.append(p)
        else:
            raise CaseFileError(f"no cases file or folder at {p}")
    cases: dict[str, RegressionCase] = {}
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                case = RegressionCase.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise CaseFileError(f"{f}:{n}: not a regression case: {exc}") from exc
            cases[case.case_id] = case
    return list(cases.values())
