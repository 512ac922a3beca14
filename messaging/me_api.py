"""Who am I: the caller as the service sees them."""

from __future__ import annotations

from flask import Response

from messaging.auth import current_principal
from messaging.db import get_session
from messaging.http import api_blueprint, json_response
from messaging.models import User
from messaging.schemas import ApiModel

bp = api_blueprint("me", __name__, "Me", "The caller")


class MeOut(ApiModel):
    user_id: str
    role: str
    name: str | None = None
    email: str | None = None


@bp.get("/me", responses={200: MeOut})
def get_me() -> Response:
    """The authenticated caller: token subject and role, with the stored name and email."""
    principal = current_principal()
    user = get_session().get(User, principal.user_id)
    return json_response(
        MeOut(
            user_id=principal.user_id,
            role=principal.role,
            name=user.name if user else principal.name,
            email=user.email if user else principal.email,
        )
    )



