"""FastAPI dependencies: the process's services, and who the caller is.

`ServicesDep`, `WidgetDep`, `ReaderDep`, `AgentDep`, `CxDep`, `StaffDep` (agent or cx), `AdminDep` are
`Annotated` aliases, so routes read as `def route(services: ServicesDep, _: AdminDep)`. Tests override
`get_services` or build the app with their own settings; nothing here is a global created at import.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request

from api.errors import ApiError
from api.security import Keys, Role
from assistant.models import Conversation
from assistant.services import Services


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def get_keys(request: Request) -> Keys:
    return request.app.state.keys  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]
KeysDep = Annotated[Keys, Depends(get_keys)]


def require_widget(keys: KeysDep, x_widget_key: Annotated[str | None, Header()] = None) -> None:
    if not keys.widget_ok(x_widget_key):
        raise ApiError(401, "unauthorized", "a valid X-Widget-Key header is required")


def _bearer_role(keys: Keys, authorization: str | None) -> Role | None:
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    return keys.role_of(authorization[7:].strip())


def require_role(*allowed: Role):  # noqa: ANN201 - returns a FastAPI dependency
    def dependency(keys: KeysDep, authorization: Annotated[str | None, Header()] = None) -> Role:
        role = _bearer_role(keys, authorization)
        if role is None:
            raise ApiError(
                401,
                "unauthorized",
                "a valid 'Authorization: Bearer <token>' header is required",
                {"WWW-Authenticate": "Bearer"},
            )
        if role != "admin" and role not in allowed:
            raise ApiError(403, "forbidden", f"this route needs the {' or '.join(allowed)} role")
        return role

    return dependency


def require_reader(
    keys: KeysDep,
    x_widget_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Role:
    """The widget key or any staff token (agent, cx, admin): who may read a conversation's transcript."""
    if keys.widget_ok(x_widget_key):
        return "widget"
    role = _bearer_role(keys, authorization)
    if role is None:
        raise ApiError(401, "unauthorized", "an X-Widget-Key header or an agent, cx or admin bearer token is required")
    return role


WidgetDep = Annotated[None, Depends(require_widget)]
ReaderDep = Annotated[Role, Depends(require_reader)]
AgentDep = Annotated[Role, Depends(require_role("agent"))]
CxDep = Annotated[Role, Depends(require_role("cx"))]
StaffDep = Annotated[Role, Depends(require_role("agent", "cx"))]
AdminDep = Annotated[Role, Depends(require_role("admin"))]


# -- a conversation, opened by its customer (widget key + its token) or by staff ----------------------------------

TOKEN_HEADER = "X-Conversation-Token"


def _open_conversation(services: Services, keys: Keys, conversation_id: str, token: str | None) -> Conversation:
    """The conversation, for its customer's widget. A verified customer's conversation holds their profile and
    orders: it opens only with its token (returned by `POST /v1/conversations`); an anonymous one with its id."""
    conv = services.engine.conversation(conversation_id)  # 404 for an unknown id
    if conv.verified and not keys.conversation_ok(conv.id, token):
        raise ApiError(
            403,
            "forbidden",
            f"this conversation belongs to a verified customer: send its {TOKEN_HEADER} header "
            "(the token returned when it was created)",
        )
    return conv


def customer_conversation(
    conversation_id: str,
    services: ServicesDep,
    keys: KeysDep,
    _: Annotated[None, Depends(require_widget)],
    x_conversation_token: Annotated[
        str | None, Header(description="the token POST /v1/conversations returned (verified customers)")
    ] = None,
) -> Conversation:
    """The widget's own conversation, for its customer's writes (messages, handoff, feedback)."""
    return _open_conversation(services, keys, conversation_id, x_conversation_token)


def readable_conversation(
    conversation_id: str,
    services: ServicesDep,
    keys: KeysDep,
    role: ReaderDep,
    x_conversation_token: Annotated[
        str | None, Header(description="the token POST /v1/conversations returned (verified customers)")
    ] = None,
) -> Conversation:
    """The conversation for a reader: staff (any bearer token) read every conversation; the widget its own."""
    if role != "widget":
        return services.engine.conversation(conversation_id)
    return _open_conversation(services, keys, conversation_id, x_conversation_token)


def streamed_conversation(
    conversation_id: str,
    services: ServicesDep,
    keys: KeysDep,
    role: ReaderDep,
    x_conversation_token: Annotated[str | None, Header()] = None,
    token: Annotated[
        str | None,
        Query(
            max_length=200,
            description="the conversation token, for a client that cannot set headers on a stream (EventSource); "
            "the header wins when both are sent",
        ),
    ] = None,
) -> Conversation:
    """`readable_conversation` for `/events`, whose token may also come as `?token=`."""
    if role != "widget":
        return services.engine.conversation(conversation_id)
    return _open_conversation(services, keys, conversation_id, x_conversation_token or token)


CustomerConversationDep = Annotated[Conversation, Depends(customer_conversation)]
ReadableConversationDep = Annotated[Conversation, Depends(readable_conversation)]
StreamedConversationDep = Annotated[Conversation, Depends(streamed_conversation)]
