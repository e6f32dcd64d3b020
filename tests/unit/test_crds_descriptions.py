"""The CRDs document themselves: ``kubectl explain`` has something to say about every field."""

from __future__ import annotations

import enum
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from incident_operator.models import IncidentSpec, IncidentStatus, RunbookSpec, RunbookStatus

CRDS = Path(__file__).resolve().parents[2] / "crds"


def _schemas() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(CRDS.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        if document.get("kind") != "CustomResourceDefinition":
            continue  # the kustomization that lists them
        kind = document["spec"]["names"]["kind"].lower()
        for version in document["spec"]["versions"]:
            yield f"{path.name}:{kind}", version["schema"]["openAPIV3Schema"]


def _nodes(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node a field can be: the root, properties, array items and map values,
    at every depth (also inside anyOf/allOf branches)."""
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")
    for key in ("anyOf", "allOf"):
        for i, branch in enumerate(node.get(key) or []):
            for sub_path, sub in _nodes(branch, f"{path}<{key}{i}>"):
                if sub is not branch:  # a branch itself is a constraint, not a field
                    yield sub_path, sub


def test_the_walk_reaches_items_and_map_values() -> None:
    schema = {
        "description": "root",
        "properties": {
            "list": {"type": "array", "items": {"type": "string"}},
            "map": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    assert [p for p, _ in _nodes(schema, "x")] == ["x", "x.list", "x.list[]", "x.map", "x.map{}"]


def test_every_property_of_every_crd_has_a_description() -> None:
    missing = [
        path
        for name, schema in _schemas()
        for path, node in _nodes(schema, name)
        if not (isinstance(node.get("description"), str) and node["description"].strip())
    ]
    assert not missing, (
        f"{len(missing)} schema nodes without a description (add a docstring or "
        "Field(description=...) to the model, then `incident-operator crds --write crds`):\n"
        + "\n".join(missing)
    )


def test_every_enum_value_is_explained() -> None:
    """The schema of an enum is one property: its description names every value."""
    unexplained = [
        f"{path}: {value}"
        for name, schema in _schemas()
        for path, node in _nodes(schema, name)
        for value in node.get("enum") or []
        if str(value) not in node.get("description", "")
    ]
    assert not unexplained, "enum values missing from their description:\n" + "\n".join(unexplained)


def _models() -> Iterator[type[pydantic.BaseModel]]:
    seen: set[type[pydantic.BaseModel]] = set()
    todo: list[Any] = [IncidentSpec, IncidentStatus, RunbookSpec, RunbookStatus]
    while todo:
        item = todo.pop()
        if isinstance(item, type) and issubclass(item, pydantic.BaseModel):
            if item in seen:
                continue
            seen.add(item)
            yield item
            todo.extend(field.annotation for field in item.model_fields.values())
        else:
            todo.extend(typing.get_args(item))


@pytest.mark.parametrize("model", list(_models()), ids=lambda m: m.__name__)
def test_no_field_description_is_silently_replaced(model: type[pydantic.BaseModel]) -> None:
    """A required field whose type is a model or an enum gets that type's docstring in the
    CRD (kube-custom-resource inlines the type over the field): a description written on such
    a field would never reach ``kubectl explain``."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        inlined = isinstance(annotation, type) and issubclass(
            annotation, (pydantic.BaseModel, enum.Enum)
        )
        assert not (inlined and field.description), (
            f"{model.__name__}.{name}: its description is replaced by the docstring of "
            f"{annotation.__name__} in the CRD; write it there instead"
        )
