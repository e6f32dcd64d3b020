"""Walk a status model's JSON schema (the CRD's): the longest value of every string field, and
the strings of a dumped status with their maximum lengths."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

#: A valid value for each pattern a status field has (these fields hold names and reasons
#: from code, not free text).
PATTERN_SAMPLES = {
    r"^[A-Z]\w*$": "Reason",
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": "name",
    r"^(diagnosis|recovery)$": "diagnosis",
    r"^[0-9a-f]*$": "abc123",
    r"^(firing|resolved)$": "firing",
}
OVER = 100


def _branch(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an ``anyOf`` (optional fields)."""
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return {**schema, **option, "anyOf": None}
    return schema


def longest(schema: dict[str, Any]) -> Any:
    """A value for ``schema`` whose free-text strings are ``OVER`` characters too long."""
    schema = _branch(schema)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties")
        if properties:
            return {key: longest(sub) for key, sub in properties.items()}
        extra = schema.get("additionalProperties")
        return {"key": longest(extra)} if isinstance(extra, dict) else {}
    if kind == "array":
        return [longest(schema["items"])]
    if kind == "string":
        if schema.get("format") == "date-time":
            return "2026-11-27T12:00:00Z"
        if schema.get("format") == "date":
            return "2026-11-27"
        if "pattern" in schema:
            assert schema["pattern"] in PATTERN_SAMPLES, f"add a sample for {schema['pattern']}"
            return PATTERN_SAMPLES[schema["pattern"]]
        return "x" * (schema.get("maxLength", 10) + OVER)
    if kind == "integer":
        return schema.get("minimum", 0)
    if kind == "number":
        return 0.0
    if kind == "boolean":
        return False
    raise AssertionError(f"no value for {schema}")


@functools.cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True)


def longest_status(model: type[BaseModel]) -> dict[str, Any]:
    value = longest(_schema(model))
    assert isinstance(value, dict)
    return value


def _walk(value: Any, schema: dict[str, Any], path: str) -> Iterator[tuple[str, str, int]]:
    schema = _branch(schema)
    if isinstance(value, str) and "maxLength" in schema:
        yield path, value, schema["maxLength"]
    elif isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else {})
            yield from _walk(item, sub, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, schema.get("items") or {}, f"{path}[{index}]")


def string_limits(dumped: dict[str, Any], model: type[BaseModel]) -> list[tuple[str, str, int]]:
    """(path, string, maxLength) of every string of ``dumped`` whose field has a maxLength."""
    return list(_walk(dumped, _schema(model), "status"))
