"""Who is asking, from where: what use cases need to know about the request."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sanic.request import Request

from models.enums import STAFF_ROLES, Role
from service.platform.jsonutil import clean_text
from service.platform.requestctx import client_ip_of, request_id_of


@dataclass(frozen=True)
class CurrentUser:
    id: uuid.UUID
    email: str
    full_name: str
    role: str
    is_active: bool
    created_at: dt.datetime
    session_id: uuid.UUID
    org_unit_id: uuid.UUID | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    ip: str
    user_agent: str
    user: CurrentUser | None = None

    @property
    def actor_id(self) -> uuid.UUID | None:
        return self.user.id if self.user else None


def context_of(request: Request) -> RequestContext:
    return RequestContext(
        request_id=request_id_of(request),
        ip=client_ip_of(request),
        user_agent=clean_text(request.headers.getone("user-agent", "")[:256]),
        user=getattr(request.ctx, "user", None),
    )
