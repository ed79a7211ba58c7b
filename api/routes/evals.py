"""The latest benchmark-suite run (`cxa eval bench` writes <data_dir>/evals/latest.json and latest.md), and the
shipped answerability model with its calibration figures."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from api.deps import CxDep, ServicesDep
from api.errors import ApiError
from assistant.turn.answerability import DatasetFigures

router = APIRouter(prefix="/v1/evals", tags=["cx"])

_NO_RUN = "no benchmark run yet: run `cxa eval bench` on this data dir"


@router.get("/latest")
def latest_run(services: ServicesDep, _: CxDep) -> dict[str, Any]:
    """results.json of the latest `cxa eval bench` run: run_id, model, per-benchmark metrics, the comparison
    with the baseline."""
    path = services.settings.data_dir / "evals" / "latest.json"
    if not path.is_file():
        raise ApiError(404, "not_found", _NO_RUN)
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@router.get(
    "/latest/report",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/markdown": {"schema": {"type": "string"}}}},
        "default": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}},
    },
)
def latest_report(services: ServicesDep, _: CxDep) -> PlainTextResponse:
    """The same run as a readable Markdown report."""
    path = services.settings.data_dir / "evals" / "latest.md"
    if not path.is_file():
        raise ApiError(404, "not_found", _NO_RUN)
    return PlainTextResponse(path.read_text(encoding="utf-8"), media_type="text/markdown; charset=utf-8")


class AnswerabilityOut(BaseModel):
    """The answerability model the engine runs (its turn confidence) and how well calibrated it was measured."""

    version: str
    trained_at: datetime
    command: str = Field(description="the command that regenerates it")
    features: list[str]
    coefficients: dict[str, float] = Field(description="per feature, on standardised values (log-odds per s.d.)")
    folds: int
    training_rows: dict[str, int]
    figures: dict[str, DatasetFigures] = Field(description="out of fold, per dev set: AUROC, ECE, reliability")
    threshold: float = Field(description="turns below this confidence are handed off")
    threshold_from: Literal["costs", "override"]
    cost_wrong_answer: float
    cost_false_handoff: float


@router.get("/answerability")
def answerability(services: ServicesDep, _: CxDep) -> AnswerabilityOut:
    """The shipped answerability model (from its artifact): version, coefficients, out-of-fold AUROC, expected
    calibration error and reliability curve per dev set, and the handoff threshold the policy derives."""
    a = services.engine.answerability.artifact
    policy = services.settings.policy
    return AnswerabilityOut(
        version=a.version,
        trained_at=a.trained_at,
        command=a.command,
        features=a.features,
        coefficients=dict(zip(a.features, a.coef, strict=True)),
        folds=a.folds,
        training_rows=a.training_rows,
        figures=a.figures,
        threshold=round(policy.handoff_threshold, 4),
        threshold_from="override" if policy.handoff_below is not None else "costs",
        cost_wrong_answer=policy.cost_wrong_answer,
        cost_false_handoff=policy.cost_false_handoff,
    )
