"""Agent routes: the queue of conversations handed to a person."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import AgentDep, ServicesDep
from assistant.models import Handoff

router = APIRouter(prefix="/v1/handoffs", tags=["agent"])


class HandoffList(BaseModel):
    items: list[Handoff]


@router.get("", response_model=HandoffList)
def list_handoffs(
    services: ServicesDep,
    _: AgentDep,
    status: Annotated[Literal["waiting", "claimed", "resolved"] | None, Query()] = None,
) -> HandoffList:
    return HandoffList(items=services.store.list_handoffs(status))


@router.get("/{handoff_id}", response_model=Handoff)
def get_handoff(handoff_id: str, services: ServicesDep, _: AgentDep) -> Handoff:
    return services.store.get_handoff(handoff_id)
