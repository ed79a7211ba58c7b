"""Admin routes for customer data: the profile and events (orders, subscriptions, tickets) that the
assistant sees as a verified customer's history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from api.deps import AdminDep, ServicesDep
from assistant.models import CustomerEvent, CustomerProfile
from assistant.safety.payload import FreeJSON

router = APIRouter(prefix="/v1/customers", tags=["customers"])


class ProfileIn(BaseModel):
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=50)
    locale: str | None = Field(None, max_length=20)
    created_at: datetime | None = None
    attributes: FreeJSON = Field(
        default_factory=dict, description="free-form JSON: at most 16 KB, 8 levels deep, valid Unicode"
    )


class EventIn(BaseModel):
    type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
    at: datetime
    data: FreeJSON = Field(
        default_factory=dict, description="free-form JSON: at most 16 KB, 8 levels deep, valid Unicode"
    )


class CustomerOut(BaseModel):
    profile: CustomerProfile
    events: list[CustomerEvent]


CustomerId = Annotated[
    str,
    PathParam(
        min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@-]+$", description="letters, digits and _ . : @ -"
    ),
]


@router.put(
    "/{customer_id}",
    response_model=CustomerProfile,
    responses={200: {"description": "replaced"}, 201: {"model": CustomerProfile, "description": "created"}},
)
def put_customer(
    customer_id: CustomerId, body: ProfileIn, services: ServicesDep, _: AdminDep, response: Response
) -> Any:
    profile = CustomerProfile(id=customer_id, **body.model_dump())
    saved, created = services.customers.put_profile(profile)
    response.status_code = 201 if created else 200
    return saved


@router.get("/{customer_id}", response_model=CustomerOut)
def get_customer(customer_id: str, services: ServicesDep, _: AdminDep) -> CustomerOut:
    profile, events = services.customers.get(customer_id)
    return CustomerOut(profile=profile, events=events)


@router.post("/{customer_id}/events", status_code=201, response_model=CustomerEvent)
def add_event(customer_id: str, body: EventIn, services: ServicesDep, _: AdminDep) -> CustomerEvent:
    return services.customers.add_event(CustomerEvent(customer_id=customer_id, **body.model_dump()))
