"""Pydantic models shared by the API: the one description of every payload, validated and documented."""

from __future__ import annotations

import copy
from typing import Any, cast

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CachedSchemaModel(BaseModel):
    """A model whose JSON schema is computed once per set of arguments.

    flask-openapi3 asks a query or header model for its JSON schema on every request it validates;
    building it costs far more than the validation itself, and it never changes at run time.
    """

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        key = (cls, args, tuple(sorted(kwargs.items())))
        cached = _SCHEMAS.get(key)
        if cached is None:
            cached = _SCHEMAS[key] = super().model_json_schema(*args, **kwargs)
        if not args and not kwargs:
            # flask-openapi3's request validators ask with no arguments, on every request, and only read it.
            return cached
        # The OpenAPI document builder asks with arguments and may change what it gets: hand out a copy.
        return copy.deepcopy(cached)


_SCHEMAS: dict[tuple[Any, ...], dict[str, Any]] = {}


class ApiModel(CachedSchemaModel):
    """camelCase on the wire, snake_case in Python; unknown fields are refused (422)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


def documented(example: Any = None, *, examples: dict[str, dict[str, Any]] | None = None) -> ConfigDict:
    """A model's ``model_config`` carrying its example for the API document (merged with its bases' config).

    flask-openapi3 puts ``openapi_extra``'s ``example`` (one value) or ``examples`` (named ones:
    ``{name: {"summary", "value"}}``) on the media type of the request body or response the model describes,
    where Swagger UI shows them. An example must pass the model (tests/api/test_openapi_document.py checks it).
    A subclass inherits its base's example unless it documents its own.
    """
    extra: dict[str, Any] = {}
    if example is not None:
        extra["example"] = example
    if examples is not None:
        extra["examples"] = examples
    return cast(ConfigDict, {"openapi_extra": extra})
