"""FastAPI dependencies: the process's services, and who the caller is.

`ServicesDep`, `WidgetDep`, `ReaderDep`, `AgentDep`, `CxDep`, `StaffDep` (agent or cx), `AdminDep` are
`Annotated` aliases, so routes read as `def route(services: ServicesDep, _: AdminDep)`. Tests override
`get_services` or build the app with their own settings; nothing here is a global created at import.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from api.errors import ApiError
from api.security import Keys, Role
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
