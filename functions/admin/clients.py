"""Admin routes for clients (create, list, read, rotate their signing secret, revoke) and erasure by recipient."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

from admin.common import audit, body, deps
from api.errors import json_response
from notifications.models import ERASABLE_ADDRESSES, PhoneNumber

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response

router = Router()  # type: ignore[no-untyped-call]


class CreateClientRequest(BaseModel):
    """`POST /admin/clients`: a label for the client (shown in lists; not a secret, not personal data)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w .@:/+-]+$")]


class EraseRequest(BaseModel):
    """`POST /admin/erasure`: exactly one address whose notifications are all deleted."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr | None = None
    phone: PhoneNumber | None = None
    device_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None

    @model_validator(mode="after")
    def _one_address(self) -> EraseRequest:
        if sum(value is not None for value in (self.email, self.phone, self.device_token)) != 1:
            raise ValueError("give exactly one of email, phone or device_token")
        return self

    def address(self) -> tuple[str, str]:
        kind = next(kind for kind in ERASABLE_ADDRESSES if getattr(self, kind) is not None)
        return kind, str(getattr(self, kind))


class RotateRequest(BaseModel):
    """`POST /admin/clients/{id}/rotate-signing-secret`: how long the previous secret still signs."""

    model_config = ConfigDict(extra="forbid")

    grace_period_seconds: int | None = Field(default=None, ge=0, le=30 * 86_400)


# ---------------------------------------------------------------------- clients
@router.post("/admin/clients")
def create_client() -> Response[str]:
    request = body(router, CreateClientRequest)
    created = deps(router).clients.create(request.name)
    audit(router, "client.create", created.id)
    payload = created.model_dump(mode="json")
    return json_response(201, payload, {"Location": f"/admin/clients/{created.id}", "Cache-Control": "no-store"})


@router.get("/admin/clients")
def list_clients() -> Response[str]:
    clients = deps(router).clients.list()
    audit(router, "client.list", None)
    return json_response(200, {"clients": [client.model_dump(mode="json") for client in clients]})


@router.get("/admin/clients/<client_id>")
def get_client(client_id: str) -> Response[str]:
    client = deps(router).clients.get(client_id)
    audit(router, "client.read", client_id)
    return json_response(200, client.model_dump(mode="json"))


@router.post("/admin/clients/<client_id>/rotate-signing-secret")
def rotate_signing_secret(client_id: str) -> Response[str]:
    found = deps(router)
    request = body(router, RotateRequest, optional=True)
    grace = (
        found.settings.rotation_grace_seconds if request.grace_period_seconds is None else request.grace_period_seconds
    )
    rotation = found.clients.rotate(client_id, grace_seconds=grace)
    audit(router, "client.rotate_signing_secret", client_id, grace_period_seconds=grace)
    return json_response(200, rotation.model_dump(mode="json"), {"Cache-Control": "no-store"})


@router.delete("/admin/clients/<client_id>")
def revoke_client(client_id: str) -> Response[str]:
    client = deps(router).clients.revoke(client_id)
    audit(router, "client.revoke", client_id)
    return json_response(200, client.model_dump(mode="json"))


# ---------------------------------------------------------------------- erasure
@router.post("/admin/erasure")
def erase_recipient() -> Response[str]:
    kind, address = body(router, EraseRequest).address()
    removed = deps(router).eraser.erase(kind, address)
    audit(router, "recipient.erase", None, address_kind=kind, removed=removed)  # never the address
    return json_response(200, {"removed": removed, "address_kind": kind})
