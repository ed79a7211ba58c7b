"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep
from api.errors import error_body

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> Any:
    """200 when the database, the index and the chat model are reachable; 503 with each check otherwise."""
    checks = await run_in_threadpool(services.readiness)
    if all(c["ok"] for c in checks.values()):
        return {"status": "ready", "checks": checks}
    failed = ", ".join(f"{k}: {v.get('detail')}" for k, v in checks.items() if not v["ok"])
    return JSONResponse(error_body("not_ready", failed, checks=checks), status_code=503)
