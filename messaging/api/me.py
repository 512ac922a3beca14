"""Who am I: the caller as the service sees them."""

from __future__ import annotations

from flask import Response

from messaging.api.auth import current_principal
from messaging.api.http import api_blueprint, json_response
from messaging.schemas import ApiModel, documented
from messaging.store.db import get_session
from messaging.store.models import User

bp = api_blueprint("me", __name__, "Me", "The caller")


class MeOut(ApiModel):
    model_config = documented(
        {"userId": "trav-1", "role": "guest", "name": "Tomás Silva", "email": "tomas@example.com"}
    )

    user_id: str
    role: str
    name: str | None = None
    email: str | None = None


@bp.get("/me", responses={200: MeOut})
def get_me() -> Response:
    """Who the caller is: token subject and role, with the stored name and email.

    A user seen for the first time is created from the token's claims (`sub`, `role`, `name`, `email`), so this
    is also how a client makes sure the service knows its user.

    **Who may call it:** any valid token (`guest`, `host`, `admin`, `service`).

    **Errors:** 401 for a missing, invalid or expired token, or the token of a user the platform deleted.
    """
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



