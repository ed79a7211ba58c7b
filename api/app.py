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

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from langchain_core.language_models.chat_models import BaseChatModel
from starlette.concurrency import run_in_threadpool

from api.errors import install_error_handlers
from api.limits import AbuseLimits
from api.routes import conversations, customers, cx, evals, handoffs, health, knowledge, quality, web
from api.security import load_keys
from assistant.services import Services
from assistant.settings import Settings, get_settings
from evals.scorecard import QualityService, quality_service

logger = logging.getLogger(__name__)

VERSION = "0.1.0"


async def _sweep_forever(services: Services) -> None:
    """Close idle conversations (assumed resolved / abandoned) every `sweep_interval_s`."""
    telemetry = services.engine.telemetry
    if telemetry is None:
        return
    while True:
        await asyncio.sleep(services.settings.telemetry.sweep_interval_s)
        try:
            await run_in_threadpool(telemetry.sweep)
        except Exception:  # a locked database or a bug must not stop the sweeps
            logger.exception("telemetry sweep failed")


async def _score_forever(quality: QualityService, settings: Settings) -> None:
    """Score ended conversations without a current scorecard, `evals.batch` per pass every `evals.interval_s`.
    A failing judge falls back to the rules inside; anything else is logged and the loop goes on."""
    while True:
        await asyncio.sleep(settings.evals.interval_s)
        try:
            await run_in_threadpool(quality.score_pending, settings.evals.batch)
        except Exception:
            logger.exception("background scoring failed")


def create_app(settings: Settings | None = None, chat_model: BaseChatModel | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.keys = load_keys(settings)
        app.state.services = await run_in_threadpool(Services.build, settings, chat_model)
        keys = app.state.keys
        app.state.services.add_secrets(
            [keys.widget_key, keys.agent_token, keys.cx_token, keys.admin_token, keys.identity_secret]
        )
        for problem in app.state.services.startup_problems:
            logger.error("not ready: %s", problem)
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
    )
    app.add_middleware(AbuseLimits, settings=settings)  # inside CORS, so a 429 still carries CORS headers
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Content-Type", "X-Widget-Key", "Authorization", "Accept"],
        )
    install_error_handlers(app)
    for module in (health, cx, conversations, quality, handoffs, knowledge, customers, evals):
        app.include_router(module.router)
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
