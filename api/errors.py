"""One error contract: every error leaves as `{"error": {"code": str, "message": str}}` with a 4xx/5xx
status, mapped here and nowhere else. Never a stack trace, never a 200 with an error inside."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.errors import AssistantError, StoreUnavailableError
from assistant.safety import payload
from knowledge.errors import (
    DocumentParseError,
    EmbeddingModelError,
    IndexMismatchError,
    IndexUnavailableError,
    KnowledgeError,
    UnsupportedDocumentError,
)

logger = logging.getLogger(__name__)

STORE_RETRY_AFTER_S = "2"  # a locked or restarting database is usually back within seconds

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}

_KNOWLEDGE = {
    UnsupportedDocumentError: (415, "unsupported_document"),
    DocumentParseError: (400, "invalid_document"),
    IndexUnavailableError: (503, "index_unavailable"),
    IndexMismatchError: (503, "index_mismatch"),
    EmbeddingModelError: (503, "embedding_model_unavailable"),
}


class SafeJSONResponse(JSONResponse):
    """The app's JSON response (`default_response_class`, and every error): rendered through
    `assistant.safety.payload.dumps`, so a value stored before the input validation existed (a lone surrogate,
    NaN, a structure nested 500 deep) reaches the caller replaced, never as a 500."""

    def render(self, content: Any) -> bytes:
        return payload.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class ApiError(Exception):
    """An error raised by a route: shown to the caller with its status and code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}, **extra}


def _json(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return SafeJSONResponse(error_body(code, message), status_code=status, headers=headers)


def _describe_validation(exc: RequestValidationError) -> tuple[int, str, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        e = next(e for e in errors if e.get("type") == "json_invalid")
        return (
            400,
            "invalid_json",
            f"the request body is not valid JSON ({e.get('ctx', {}).get('error', 'parse error')})",
        )
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body",)) or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return 422, "invalid_request", "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _json(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = _describe_validation(exc)
        return _json(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return _json(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(AssistantError)
    async def _assistant(_: Request, exc: AssistantError) -> JSONResponse:
        if exc.status >= 500:
            logger.error("%s: %s", exc.code, exc)
        retry = {"Retry-After": STORE_RETRY_AFTER_S} if isinstance(exc, StoreUnavailableError) else None
        return _json(exc.status, exc.code, str(exc), retry)

    @app.exception_handler(OperationalError)
    @app.exception_handler(SATimeoutError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        """A database error that escaped `Store.session` (locked, unreachable, pool exhausted): the same 503
        as `StoreUnavailableError`, never a 500 with the driver's message."""
        logger.error("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return _json(
            503,
            StoreUnavailableError.code,
            "the database is unavailable; retry shortly",
            {"Retry-After": STORE_RETRY_AFTER_S},
        )

    @app.exception_handler(KnowledgeError)
    async def _knowledge(_: Request, exc: KnowledgeError) -> JSONResponse:
        status, code = next(
            ((s, c) for t, (s, c) in _KNOWLEDGE.items() if isinstance(exc, t)), (500, "knowledge_error")
        )
        return _json(status, code, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return _json(500, "internal_error", "an unexpected error occurred; it has been logged")
