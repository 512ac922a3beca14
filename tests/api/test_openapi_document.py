"""The API explains itself (issue 26): every operation of ``/openapi.json`` has a summary, a description and
examples, and the examples are valid. POST /v1/events has one example per event type, each accepted on its own,
and its description lists the records each type carries, from the table the intake checks events against
(``concierge.events.EVENT_RECORDS``)."""

from __future__ import annotations

import copy
import re
import typing
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from pydantic import BaseModel

from concierge.events import DATA_KEYS, EVENT_RECORDS
from concierge.notifications import EVENT_TYPES

METHODS = ("get", "post", "put", "patch", "delete")
EVENTS = "/v1/events"


@pytest.fixture
def doc(client: Any) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json  # type: ignore[no-any-return]


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def examples_of(media: dict[str, Any]) -> list[Any]:
    """A media type's examples: its ``example`` and the values of its named ``examples``."""
    found = [media["example"]] if "example" in media else []
    return found + [named["value"] for named in media.get("examples", {}).values()]


def body_models(app: Any, doc: dict[str, Any]) -> dict[tuple[str, str], type[BaseModel]]:
    """The model that validates each documented operation's body: (path, method) → its view's ``body`` type."""
    models: dict[tuple[str, str], type[BaseModel]] = {}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in {m.lower() for m in rule.methods or ()} & set(doc["paths"].get(path, {})):
            body = typing.get_type_hints(app.view_functions[rule.endpoint]).get("body")
            if body is not None:
                models[(path, method)] = body
    return models


def schema_validator(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A JSON Schema validator of ``schema``, whose references point into the document's components."""
    return jsonschema_rs.validator_for({**schema, "components": doc["components"]})


def test_every_operation_has_a_summary_and_a_description(doc: dict[str, Any]) -> None:
    seen = 0
    for path, method, operation in operations(doc):
        seen += 1
        summary, description = operation.get("summary", ""), operation.get("description", "")
        assert summary.strip() and "\n" not in summary, (method, path, summary)
        assert description.strip(), (method, path)
        assert "<br/>" not in description, (method, path)  # Markdown paragraphs, not flask-openapi3's line breaks
        assert "Who may call it" in description, (method, path)
    assert seen >= 40


def test_every_body_and_every_successful_response_has_an_example(doc: dict[str, Any]) -> None:
    for path, method, operation in operations(doc):
        body = operation.get("requestBody")
        if body is not None:
            assert all(examples_of(media) for media in body["content"].values()), (method, path)
        success = min(status for status in operation["responses"] if status.startswith("2"))
        content = operation["responses"][success].get("content")
        if content is not None:  # 204 has none
            assert all(examples_of(media) for media in content.values()), (method, path, success)


def test_every_body_example_passes_its_model_and_the_documented_schema(app: Any, doc: dict[str, Any]) -> None:
    models = body_models(app, doc)
    checked = 0
    for path, method, operation in operations(doc):
        if "requestBody" not in operation:
            continue
        media = operation["requestBody"]["content"]["application/json"]
        validator = schema_validator(doc, media["schema"])
        for example in examples_of(media):
            models[(path, method)].model_validate(example)  # the validation the request goes through
            validator.validate(example)
            checked += 1
    assert checked > len(EVENT_TYPES) + 10


def test_every_response_example_matches_the_documented_schema(doc: dict[str, Any]) -> None:
    for path, method, operation in operations(doc):
        for status, response in operation["responses"].items():
            for media in response.get("content", {}).values():
                if "schema" not in media or media["schema"].get("type") == "string":
                    continue
                validator = schema_validator(doc, media["schema"])
                for example in examples_of(media):
                    errors = [e.message for e in validator.iter_errors(example)]
                    assert not errors, (method, path, status, errors)


# --- POST /v1/events -----------------------------------------------------------------------------


def event_examples(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return doc["paths"][EVENTS]["post"]["requestBody"]["content"]["application/json"]["examples"]  # type: ignore


def test_the_table_names_the_record_each_event_type_is_about() -> None:
    assert set(EVENT_RECORDS) == set(EVENT_TYPES)
    assert EVENT_RECORDS["offer.created"].required == "offer"
    assert EVENT_RECORDS["request_to_book.approved"].required == "requestToBook"
    assert EVENT_RECORDS["trip.booked"].required == "trip"
    for carried in EVENT_RECORDS.values():  # every record an event may carry, each once
        listed = [carried.required, *carried.expected, *carried.optional]
        assert sorted(listed) == sorted(DATA_KEYS)


def test_there_is_one_example_per_event_type_carrying_its_records(doc: dict[str, Any]) -> None:
    examples = event_examples(doc)
    assert list(examples) == list(EVENT_TYPES)
    for event_type, example in examples.items():
        assert example["summary"].startswith(event_type)
        value = example["value"]
        assert value["type"] == event_type
        carried = EVENT_RECORDS[event_type]
        assert {carried.required, *carried.expected} <= set(value["data"])
    assert len({e["value"]["id"] for e in examples.values()}) == len(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_event_example_is_accepted_on_its_own(client: Any, auth: Any, doc: dict[str, Any],
                                                   event_type: str) -> None:
    """Into an empty database: an example carries every record it refers to."""
    service = auth("platform", "service")
    body = event_examples(doc)[event_type]["value"]
    accepted = client.post(EVENTS, json=body, headers=service)
    assert accepted.status_code == 202, accepted.json
    assert accepted.json["id"] == body["id"] and accepted.json["type"] == event_type
    assert accepted.json["status"] == "pending"
    again = client.post(EVENTS, json=body, headers=service)
    assert again.status_code == 200 and again.json["id"] == body["id"]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_the_intake_refuses_an_example_without_the_record_the_table_requires(
    client: Any, auth: Any, doc: dict[str, Any], event_type: str
) -> None:
    body = copy.deepcopy(event_examples(doc)[event_type]["value"])
    required = EVENT_RECORDS[event_type].required
    del body["data"][required]
    refused = client.post(EVENTS, json=body, headers=auth("platform", "service"))
    assert refused.status_code == 422
    assert refused.json["errors"] == [{"field": f"data.{required}", "message": "required for this event type"}]
    assert refused.json["detail"] == f"A {event_type} event carries its {required} record in data.{required}."


def test_the_events_description_lists_each_event_type_with_its_records(doc: dict[str, Any]) -> None:
    description = doc["paths"][EVENTS]["post"]["description"]
    rows = {line.split("|")[1].strip(" `"): line for line in description.splitlines()
            if line.startswith("| `")}
    assert set(rows) == set(EVENT_TYPES)
    for event_type, carried in EVENT_RECORDS.items():
        cells = [cell.strip() for cell in rows[event_type].strip("|").split("|")]
        assert cells[1] == f"`data.{carried.required}`", rows[event_type]
        for key in (*carried.expected, *carried.optional):
            assert f"`data.{key}`" in rows[event_type]
    assert "service" in description
