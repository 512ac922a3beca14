def test_me_requires_a_token(client):
    r = client.get("/v1/me")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.content_type == "application/problem+json"


def test_me_creates_the_user_just_in_time(client, auth):
    r = client.get("/v1/me", headers=auth("u1", "guest", name="Ana"))
    assert r.status_code == 200, r.json
    assert r.json == {"userId": "u1", "role": "guest", "name": "Ana", "email": None}


def test_an_anonymous_caller_gets_401_before_any_body_check(client):
    r = client.post("/v1/conversations", data="{not json", content_type="application/json")
    assert r.status_code == 401
    r = client.post("/v1/conversations", data="[1]", content_type="application/json")
    assert r.status_code == 401


def test_an_authenticated_caller_gets_400_for_malformed_json(client, auth):
    r = client.post("/v1/conversations", data="{not json", content_type="application/json", headers=auth("a"))
    assert r.status_code == 400
    assert r.content_type == "application/problem+json"
