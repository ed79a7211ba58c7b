"""The FastAPI app factory. `create_app(settings)` builds an app whose lifespan opens the services
once (database engine, index, embedding model, chat model) and closes them on shutdown.

    uvicorn --factory api.app:create_app          # settings from CXA_* variables
    create_app(Settings(data_dir=tmp), chat_model=FakeSupportChatModel())   # tests
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from langchain_core.language_models.chat_models import BaseChatModel
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.errors import SafeJSONResponse, install_error_handlers
from api.limits import AbuseLimits
from api.routes import (
    approved,
    conversations,
    customers,
    cx,
    evals,
    handoffs,
    health,
    insights,
    knowledge,
    quality,
    web,
)
from api.schemas import ERROR_RESPONSES
from api.security import load_keys
from api.server import install_access_log_filter
from assistant.models import utcnow
from assistant.services import Services
from assistant.settings import Settings, get_settings
from evals.scorecard import QualityService, quality_service

logger = logging.getLogger(__name__)

VERSION = "0.1.0"


async def _sweep_forever(services: Services) -> None:
    """Every `sweep_interval_s`: give interrupted turns an outcome (`assistant.doctor`), forget expired
    idempotency keys, and close idle conversations (assumed resolved / abandoned)."""
    telemetry = services.engine.telemetry
    while True:
        await asyncio.sleep(services.settings.telemetry.sweep_interval_s)
        try:
            await run_in_threadpool(services.check_consistency)
            await run_in_threadpool(services.store.idempotency.purge)  # keys past their 24 h
            retention = services.settings.privacy.payment_data_retention_days
            if retention:  # typed payment data past its retention: only the masked text remains
                await run_in_threadpool(services.store.messages.purge_originals, utcnow() - timedelta(days=retention))
            if telemetry is not None:
                await run_in_threadpool(telemetry.sweep)
        except Exception:  # a locked database or a bug must not stop the sweeps
            logger.exception("background sweep failed")


def _check_at_start(services: Services) -> None:
    """What a crash left behind (a turn cut off mid-reply...) gets an outcome before the first request."""
    try:
        problems = services.check_consistency()
    except Exception:  # a locked database must not stop the server from starting; the sweep tries again
        logger.exception("consistency check at start failed")
        return
    fixed = sum(p.fixed for p in problems)
    if problems:
        logger.warning("consistency check at start: %d problem(s), %d fixed", len(problems), fixed)


async def _score_forever(quality: QualityService, settings: Settings) -> None:
    """Score ended conversations without a current scorecard, `evals.batch` per pass every `evals.interval_s`,
    one worker at a time (the others skip a pass that one is running). A failing judge falls back to the rules
    inside; anything else is logged and the loop goes on."""
    while True:
        await asyncio.sleep(settings.evals.interval_s)
        try:
            await run_in_threadpool(quality.score_pending_alone, settings.evals.batch)
        except Exception:
            logger.exception("background scoring failed")


def _publish_models(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Add `models` (and the models they use) to the OpenAPI components: a route whose body it reads itself refers
    to its model by `$ref`, which FastAPI does not publish on its own."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            published = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in published.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components.setdefault(model.__name__, published)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None, chat_model: BaseChatModel | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_access_log_filter()  # no conversation ids or tokens in uvicorn's access log
        app.state.keys = load_keys(settings)
        app.state.services = await run_in_threadpool(Services.build, settings, chat_model)
        keys = app.state.keys
        app.state.services.add_secrets(
            [keys.widget_key, keys.agent_token, keys.cx_token, keys.admin_token, keys.identity_secret]
        )
        for problem in app.state.services.startup_problems:
            logger.error("not ready: %s", problem)
        await run_in_threadpool(_check_at_start, app.state.services)
        app.state.services.start_warming()  # the sentence vectors the store is missing, on a thread of its own
        sweeper = asyncio.create_task(_sweep_forever(app.state.services))
        app.state.quality = quality_service(app.state.services)
        scorer = asyncio.create_task(_score_forever(app.state.quality, settings)) if settings.evals.background else None
        try:
            yield
        finally:
            sweeper.cancel()
            if scorer is not None:
                scorer.cancel()
            app.state.services.close()

    app = FastAPI(
        title="cx-assistant",
        version=VERSION,
        summary="A retrieval-augmented support assistant with CX telemetry and human handoff.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        default_response_class=SafeJSONResponse,  # never fails on stored data (assistant.safety.payload)
    )
    app.add_middleware(AbuseLimits, settings=settings)  # inside CORS, so a 429 still carries CORS headers
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=[
                "Content-Type",
                "X-Widget-Key",
                "X-Conversation-Token",
                "Idempotency-Key",
                "Last-Event-ID",
                "Authorization",
                "Accept",
            ],
            expose_headers=["Retry-After", "Idempotent-Replayed"],
        )
    install_error_handlers(app)
    routers = (health, cx, conversations, quality, handoffs, approved, insights, knowledge, customers, evals)
    for module in routers:
        app.include_router(module.router)
    _publish_models(app, [m for module in routers for m in getattr(module, "OPENAPI_MODELS", ())])
    web.mount(app)  # the widget, the agent console, the CX dashboard, the demo page

    @app.get("/", include_in_schema=False)
    def index() -> dict[str, str]:
        return {
            "name": "cx-assistant",
            "version": VERSION,
            "docs": "/docs",
            "openapi": "/openapi.json",
            "widget": "/widget.js",
            "console": "/console",
            "dashboard": "/dashboard",
        }

    return app
