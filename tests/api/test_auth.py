"""Bearer-token authentication (SPEC §3): what is accepted, every way a token is refused, the
just-in-time user, asymmetric keys and the `flask token` command."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select

from app import create_app
from messaging.store.db import get_engine
from messaging.store.models import User
from tests.conftest import TEST_JWT_SECRET
from tests.conftest import test_config as app_config

ME = "/v1/me"


def _now() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp())


def _claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for user u1, with overrides; an override of None removes the claim."""
    claims: dict[str, Any] = {
        "sub": "u1", "role": "guest", "iat": _now(), "exp": _now() + 600, "name": "Ana", "email": "ana@example.com",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _hs256(claims: dict[str, Any], secret: str | bytes = TEST_JWT_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.content_type == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == 401
    assert {"type", "title", "detail"} <= body.keys()


def _users(app: Any) -> dict[str, tuple[str | None, str | None, str]]:
    with app.app_context(), get_engine().connect() as conn:
        return {row.id: (row.name, row.email, row.role) for row in conn.execute(select(User))}


@pytest.fixture
def make_app(app: Any, database_url: str) -> Iterator[Callable[..., Any]]:
    """Another app on the same database with some settings changed (``app`` wipes the data after)."""
    made: list[Any] = []

    def make(**settings: Any) -> Any:
        other = create_app(app_config(database_url, **settings))
        made.append(other)
        return other

    yield make
    for other in made:
        with other.app_context():
            get_engine().dispose()


# --- the accepted token -------------------------------------------------------------------------


def test_a_valid_token_is_accepted_and_the_user_created_just_in_time(client: Any, app: Any) -> None:
    assert _users(app) == {}
    r = client.get(ME, headers=_bearer(_hs256(_claims())))
    assert r.status_code == 200, r.json
    assert r.json == {"userId": "u1", "role": "guest", "name": "Ana", "email": "ana@example.com"}
    assert _users(app) == {"u1": ("Ana", "ana@example.com", "guest")}
    # Seen again: still one row.
    assert client.get(ME, headers=_bearer(_hs256(_claims()))).status_code == 200
    assert list(_users(app)) == ["u1"]


def test_a_deleted_users_token_is_refused_until_the_platform_puts_them_back(client: Any, app: Any) -> None:
    ana = _bearer(_hs256(_claims()))
    service = _bearer(_hs256(_claims(sub="platform", role="service")))
    assert client.get(ME, headers=ana).status_code == 200
    assert client.delete("/v1/users/u1", headers=service).status_code == 204
    for path in (ME, "/v1/conversations", "/v1/me/unread"):
        refused = client.get(path, headers=ana)
        assert refused.status_code == 401, path
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "deleted" in refused.json["detail"]
    posted = client.post("/v1/conversations", json={"participantIds": ["u2"]}, headers=ana)
    assert posted.status_code == 401
    assert _users(app) == {}  # not created again just in time
    # The platform puts the user back: their tokens work again.
    user = {"name": "Ana", "email": "ana@example.com", "phoneNumber": None, "role": "guest"}
    assert client.put("/v1/users/u1", json=user, headers=service).status_code in (200, 201)
    assert client.get(ME, headers=ana).status_code == 200


def test_views_that_check_membership_still_refuse_deleted_users_and_create_new_ones(client: Any, app: Any) -> None:
    """History, posting, reading and one conversation skip the user lookup up front (a participation proves
    the user); on their way to a 404 they do it, so a deleted user is 401 there too and a new user is made."""
    ana, bob = _bearer(_hs256(_claims())), _bearer(_hs256(_claims(sub="u2", name="Bob")))
    service = _bearer(_hs256(_claims(sub="platform", role="service")))
    assert client.get(ME, headers=bob).status_code == 200
    cid = client.post("/v1/conversations", json={"participantIds": ["u2"], "name": "trip"}, headers=ana).json["id"]
    assert client.post(f"/v1/conversations/{cid}/messages", json={"message": "hi"}, headers=ana).status_code == 201
    assert client.delete("/v1/users/u1", headers=service).status_code == 204
    calls = [
        ("get", f"/v1/conversations/{cid}", None),
        ("get", f"/v1/conversations/{cid}/messages", None),
        ("post", f"/v1/conversations/{cid}/messages", {"message": "still here?"}),
        ("post", f"/v1/conversations/{cid}/read", {}),
    ]
    for method, path, body in calls:
        refused = getattr(client, method)(path, json=body, headers=ana)
        assert refused.status_code == 401, (path, refused.json)
        assert "deleted" in refused.json["detail"]
    assert set(_users(app)) == {"u2"}
    # Someone new: 404 (not a participant), and the user now exists.
    carol = _bearer(_hs256(_claims(sub="u3", name="Carol")))
    assert client.get(f"/v1/conversations/{cid}/messages", headers=carol).status_code == 404
    assert set(_users(app)) == {"u2", "u3"}


def test_a_verified_token_is_checked_for_expiry_on_every_use(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens verified once are remembered (signature and claims are not checked again), but not past expiry."""
    token = _bearer(_hs256(_claims(exp=_now() + 60)))
    assert client.get(ME, headers=token).status_code == 200
    assert client.get(ME, headers=token).status_code == 200
    later = time.time() + 60 + 31  # past the expiry and its 30 s leeway
    monkeypatch.setattr("messaging.api.auth.time.time", lambda: later)
    refused = client.get(ME, headers=token)
    assert refused.status_code == 401 and "expired" in refused.json["detail"]


def test_a_token_expired_within_the_leeway_is_still_accepted(client: Any) -> None:
    r = client.get(ME, headers=_bearer(_hs256(_claims(exp=_now() - 10))))
    assert r.status_code == 200, r.json


def test_a_service_token_is_accepted_but_creates_no_user(client: Any, app: Any) -> None:
    r = client.get(ME, headers=_bearer(_hs256(_claims(sub="platform", role="service"))))
    assert r.status_code == 200, r.json
    assert r.json["userId"] == "platform" and r.json["role"] == "service"
    assert _users(app) == {}


# --- every way in is refused ----------------------------------------------------------------------


def _alg_none() -> str:
    return _segments({"alg": "none", "typ": "JWT"}, _claims()) + "."


REFUSED: dict[str, Callable[[], dict[str, str]]] = {
    "no header": lambda: {},
    "empty bearer": lambda: {"Authorization": "Bearer "},
    "other scheme": lambda: {"Authorization": "Basic dTE6cGFzc3dvcmQ="},
    "garbage": lambda: _bearer("not-a-jwt"),
    "garbage segments": lambda: _bearer("aaa.bbb.ccc"),
    "alg none": lambda: _bearer(_alg_none()),
    "alg none, capitalised": lambda: _bearer(_segments({"alg": "None", "typ": "JWT"}, _claims()) + "."),
    "wrong secret": lambda: _bearer(_hs256(_claims(), "another-secret-0123456789abcdef0123456789")),
    "tampered payload": lambda: _bearer(
        _segments({"alg": "HS256", "typ": "JWT"}, _claims(role="admin"))
        + "."
        + _hs256(_claims()).rsplit(".", 1)[1]
    ),
    "expired": lambda: _bearer(_hs256(_claims(exp=_now() - 31 - 5))),
    "missing sub": lambda: _bearer(_hs256(_claims(sub=None))),
    "empty sub": lambda: _bearer(_hs256(_claims(sub=""))),
    "missing exp": lambda: _bearer(_hs256(_claims(exp=None))),
    "missing role": lambda: _bearer(_hs256(_claims(role=None))),
    "unknown role": lambda: _bearer(_hs256(_claims(role="superuser"))),
    "not yet valid": lambda: _bearer(_hs256(_claims(nbf=_now() + 120))),
}


@pytest.mark.parametrize("headers", REFUSED.values(), ids=REFUSED.keys())
def test_a_bad_token_is_refused(client: Any, app: Any, headers: Callable[[], dict[str, str]]) -> None:
    assert_unauthorized(client.get(ME, headers=headers()))
    assert _users(app) == {}


def test_the_alg_none_token_is_well_formed(client: Any) -> None:
    # Guards the test above: the crafted token differs from a valid one only by its algorithm.
    header, payload, signature = _alg_none().split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "none", "typ": "JWT"}
    assert json.loads(base64.urlsafe_b64decode(payload + "=="))["sub"] == "u1"
    assert signature == ""


ISSUER, AUDIENCE = "https://platform.example", "concierge"


@pytest.fixture
def strict_client(make_app: Callable[..., Any]) -> Any:
    return make_app(JWT_ISSUER=ISSUER, JWT_AUDIENCE=AUDIENCE).test_client()


def test_issuer_and_audience_are_accepted_when_they_match(strict_client: Any) -> None:
    r = strict_client.get(ME, headers=_bearer(_hs256(_claims(iss=ISSUER, aud=AUDIENCE))))
    assert r.status_code == 200, r.json


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://evil.example", "aud": AUDIENCE},
        {"aud": AUDIENCE},
        {"iss": ISSUER, "aud": "someone-else"},
        {"iss": ISSUER},
    ],
    ids=["wrong issuer", "no issuer", "wrong audience", "no audience"],
)
def test_issuer_and_audience_are_enforced_when_configured(strict_client: Any, claims: dict[str, Any]) -> None:
    assert_unauthorized(strict_client.get(ME, headers=_bearer(_hs256(_claims(**claims)))))


# --- asymmetric keys ------------------------------------------------------------------------------


def _rsa_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ec_key() -> Any:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_public(private_key: Any) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem_private(private_key: Any) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(params=["RS256", "ES256"])
def keyed(request: pytest.FixtureRequest, make_app: Callable[..., Any]) -> tuple[str, bytes, bytes, Any]:
    """(algorithm, private PEM, public PEM, client) for an app that verifies with the public key only."""
    algorithm = request.param
    private_key = _rsa_key() if algorithm == "RS256" else _ec_key()
    public_pem = _pem_public(private_key)
    other = make_app(JWT_PUBLIC_KEY=public_pem.decode(), JWT_SECRET=None)
    return algorithm, _pem_private(private_key), public_pem, other.test_client()


def test_a_token_signed_with_the_private_key_is_accepted(keyed: tuple[str, bytes, bytes, Any]) -> None:
    algorithm, private_pem, _public_pem, client = keyed
    r = client.get(ME, headers=_bearer(jwt.encode(_claims(), private_pem, algorithm=algorithm)))
    assert r.status_code == 200, r.json
    assert r.json["userId"] == "u1"


def test_a_token_signed_with_another_private_key_is_refused(keyed: tuple[str, bytes, bytes, Any]) -> None:
    algorithm, _private_pem, _public_pem, client = keyed
    stranger = _pem_private(_rsa_key() if algorithm == "RS256" else _ec_key())
    assert_unauthorized(client.get(ME, headers=_bearer(jwt.encode(_claims(), stranger, algorithm=algorithm))))


def _hand_signed_hs256(claims: dict[str, Any], secret: bytes) -> str:
    signing_input = _segments({"alg": "HS256", "typ": "JWT"}, claims)
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def test_algorithm_confusion_with_the_public_key_as_hmac_secret_is_refused(
    keyed: tuple[str, bytes, bytes, Any],
) -> None:
    _algorithm, _private_pem, public_pem, client = keyed
    # The hand-made HS256 signature is a real one: PyJWT verifies it under an ordinary secret.
    assert jwt.decode(_hand_signed_hs256(_claims(), b"s3cret"), "s3cret", algorithms=["HS256"])["sub"] == "u1"
    assert_unauthorized(client.get(ME, headers=_bearer(_hand_signed_hs256(_claims(), public_pem))))


def test_an_hs256_token_under_the_old_secret_is_refused(keyed: tuple[str, bytes, bytes, Any]) -> None:
    *_, client = keyed
    assert_unauthorized(client.get(ME, headers=_bearer(_hs256(_claims()))))


# --- flask token ----------------------------------------------------------------------------------


def test_flask_token_prints_a_token_with_the_given_claims(runner: Any) -> None:
    result = runner.invoke(args=["token", "--sub", "u1", "--role", "guest", "--ttl", "60"])
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "u1" and claims["role"] == "guest"
    assert claims["exp"] - claims["iat"] == 60
    assert abs(claims["exp"] - (_now() + 60)) <= 5


def test_flask_token_output_is_accepted_by_the_api(runner: Any, client: Any) -> None:
    result = runner.invoke(args=["token", "--sub", "u9", "--role", "host", "--name", "Hal"])
    assert result.exit_code == 0, result.output
    r = client.get(ME, headers=_bearer(result.output.strip()))
    assert r.status_code == 200, r.json
    assert r.json == {"userId": "u9", "role": "host", "name": "Hal", "email": None}


def test_flask_token_refuses_an_unknown_role(runner: Any) -> None:
    result = runner.invoke(args=["token", "--sub", "u1", "--role", "superuser"])
    assert result.exit_code != 0
