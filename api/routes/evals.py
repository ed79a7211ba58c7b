"""The latest benchmark-suite run (`cxa eval bench` writes <data_dir>/evals/latest.json and latest.md)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from api.deps import CxDep, ServicesDep
from api.errors import ApiError

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
