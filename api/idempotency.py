"""`Idempotency-Key` on the customer's POSTs (create a conversation, send a message, ask for a person, rate):
the same key within 24 h returns the first response and stores nothing new; two requests sent at once with one
key store once (the second waits for the first and gets its response). The keys and responses are kept by
`assistant.store.idempotency` (shared by every worker and server through the database).

A key is scoped to what it was sent to (`scope`: the conversation, or the widget's "new conversation") and bound
to what was asked (`fingerprint`): the same key with another body is a 422 `idempotency_key_reused`. A request
that fails (an error response) leaves no key behind, so its retry runs again. Keys are 1..200 visible ASCII
characters (a UUID is the usual choice).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Header
from fastapi.responses import Response
from pydantic import BaseModel

from api.errors import ApiError, SafeJSONResponse
from assistant.services import Services
from assistant.store.idempotency import Claim

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
WAIT_S = 90.0  # a concurrent duplicate waits this long for the first request (a slow model's turn) to finish
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=KEY_HEADER,
        description="any unique string (a UUID): a retry with the same key within 24 h gets the first response "
        "and stores nothing new",
    ),
]

T = TypeVar("T", bound=BaseModel)


def checked_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not _KEY.match(key):
        raise ApiError(422, "invalid_request", f"{KEY_HEADER}: 1..200 visible ASCII characters")
    return key


def fingerprint(*parts: Any) -> str:
    """A hash of what a request asked for (its path's scope aside)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def replay(claim: Claim) -> SafeJSONResponse:
    return SafeJSONResponse(claim.body, status_code=claim.status_code or 200, headers={REPLAYED_HEADER: "true"})


def claim(services: Services, scope: str, key: str, fp: str) -> Claim:
    """Claim `key` for this request: `new` (run it), or `done` (replay it). A duplicate of a request still running
    waits for it; a key used for another request is a 422."""
    keys = services.store.idempotency
    found = keys.claim(scope, key, fp)
    if found.state == "busy":
        found = keys.wait(scope, key, fp, WAIT_S)
    if found.state == "mismatch":
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"this {KEY_HEADER} was used for a different request: use a new key for a new request",
        )
    if found.state == "busy":
        raise ApiError(409, "conflict", f"a request with this {KEY_HEADER} is still being processed; retry in a moment")
    return found


def run_once(
    services: Services,
    key: str | None,
    scope: str,
    fp: str,
    status: int,
    action: Callable[[], T],
    restore: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> T | Response:
    """`action()` once per key: its result, stored (without any `token` field, which `restore` puts back on a
    replay); or the stored result of the first request with this key."""
    key = checked_key(key)
    if key is None:
        return action()
    found = claim(services, scope, key, fp)
    if found.state == "done":
        if restore is not None and found.body is not None:
            found = Claim("done", found.status_code, restore(found.body))
        return replay(found)
    try:
        result = action()
    except BaseException:
        services.store.idempotency.release(scope, key)
        raise
    body = result.model_dump(mode="json")
    body.pop("token", None)  # a credential is not kept in the table: a replay computes it again
    services.store.idempotency.complete(scope, key, status, body)
    return result
