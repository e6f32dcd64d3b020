"""Generate the CustomResourceDefinitions from the pydantic models.

kube-custom-resource inlines ``$ref``s and drops defaults (so the API server never rewrites
objects); this module then turns the few JSON-schema shapes pydantic emits that a structural
CRD schema does not accept into their Kubernetes equivalents.

Descriptions (docstrings and ``Field(description=...)``) are what ``kubectl explain`` prints.
They are kept through every rewrite: docstring line breaks become spaces (blank lines stay
paragraph breaks), and the action union's shared parameters say what they mean for each
action that uses them.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from kube_custom_resource.registry import CustomResourceRegistry

from . import API_GROUP
from .models import Incident, Runbook
from .models.actions import DESTRUCTIVE_ACTIONS

CATEGORIES = ["incident-response"]
Schema = dict[str, Any]


def _registry() -> CustomResourceRegistry:
    registry = CustomResourceRegistry(API_GROUP, categories=CATEGORIES)
    for model in (Incident, Runbook):
        # The registry's annotation says instance, but it takes (and needs) the class.
        registry.register_model(model)  # type: ignore[arg-type]
    return registry


def _structural_union(schema: Schema) -> Schema:
    """A discriminated union as one object: every member's properties, the discriminator as an
    enum, and one CEL rule per member for its required properties."""
    members: list[Schema] = schema["oneOf"]
    discriminator = schema["discriminator"]["propertyName"]
    properties: dict[str, Schema] = {}
    meanings: dict[str, dict[str, str]] = {}  # property -> member -> its description there
    names: list[str] = []
    rules: list[dict[str, str]] = []
    for member in members:
        name = member["properties"][discriminator]["const"]
        names.append(name)
        for prop, prop_schema in member["properties"].items():
            if prop == discriminator:
                continue
            cleaned = _clean(prop_schema)
            meanings.setdefault(prop, {})[name] = cleaned.get("description", "")
            if prop in properties:
                known = properties[prop]
                if _without_description(known) != _without_description(cleaned):
                    raise ValueError(
                        f"union members disagree on the schema of {prop!r}: {known} vs {cleaned}"
                    )
                continue
            properties[prop] = cleaned
        required = [r for r in member.get("required", []) if r != discriminator]
        if required:
            condition = " && ".join(f"has(self.{r})" for r in required)
            rules.append(
                {
                    "rule": f"self.{discriminator} != '{name}' || ({condition})",
                    "message": f"{discriminator} {name} requires " + ", ".join(required),
                }
            )
    for prop, by_member in meanings.items():
        described = _shared_description(by_member)
        properties[prop] = {**_without_description(properties[prop])}
        if described:
            properties[prop]["description"] = described
    properties[discriminator] = {
        "type": "string",
        "enum": names,
        "description": _catalog(members, discriminator),
    }
    union: Schema = {"type": "object", "required": [discriminator], "properties": properties}
    if rules:
        union["x-kubernetes-validations"] = rules
    if "description" in schema:
        union["description"] = schema["description"]
    return union


def _without_description(schema: Schema) -> Schema:
    return {k: v for k, v in schema.items() if k != "description"}


def _shared_description(by_member: dict[str, str]) -> str:
    """One description of a parameter several actions share: theirs when they agree, else
    what it means for each of them (actions that agree are listed together)."""
    groups: dict[str, list[str]] = {}
    for member, text in by_member.items():
        if text:
            groups.setdefault(text, []).append(member)
    if len(groups) <= 1 and len(by_member) == sum(len(m) for m in groups.values()):
        return next(iter(groups), "")
    lines = [f"{', '.join(members)}: {text}" for text, members in groups.items()]
    return "Its meaning depends on type.\n" + "\n".join(lines)


def _catalog(members: list[Schema], discriminator: str) -> str:
    """The description of the discriminator: every value, what it does, what it changes."""
    lines = [
        "The action to run; its parameters sit beside type, and each one's description says "
        "which actions use it. Actions marked [changes state] take the target guard (one "
        "remediation per target, spec.safety's cooldown and maxAttemptsPerTarget) and are "
        "only recorded, not run, when the Incident sets dryRun."
    ]
    for member in members:
        name = member["properties"][discriminator]["const"]
        text = _prose(member.get("description", ""))
        mark = " [changes state]" if name in DESTRUCTIVE_ACTIONS else ""
        lines.append(f"{name}{mark}: {text}")
    return "\n".join(lines)


def _prose(text: str) -> str:
    """A docstring as text for ``kubectl explain``: wrapped lines joined, paragraphs kept,
    reStructuredText ``code`` marks as single backquotes."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs).replace("``", "`")


def _clean(schema: Schema) -> Schema:
    """Rewrite one (already ref-free) schema node and its children for a structural CRD."""
    if "oneOf" in schema and "discriminator" in schema:
        return _structural_union(schema)
    node = dict(schema)
    if isinstance(node.get("description"), str):
        node["description"] = _prose(node["description"])
    any_of = node.get("anyOf")
    if any_of and any(s.get("type") == "null" for s in any_of):
        # Optional fields are simply omitted on the wire, so "or null" needs no schema.
        rest = [s for s in any_of if s.get("type") != "null"]
        del node["anyOf"]
        if len(rest) == 1:
            node = {**rest[0], **node}
        else:
            node["anyOf"] = rest
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _clean(node["additionalProperties"])
    if "properties" in node:
        node["properties"] = {k: _clean(v) for k, v in node["properties"].items()}
    if "items" in node:
        node["items"] = _clean(node["items"])
    return node


def crd_documents() -> list[Schema]:
    """The CRDs as Kubernetes objects, sorted by name for stable output."""
    documents = []
    for crd in _registry():
        resource = crd.kubernetes_resource()
        for version in resource["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            version["schema"]["openAPIV3Schema"] = _clean(schema)
        resource["spec"]["names"]["shortNames"] = sorted(resource["spec"]["names"]["shortNames"])
        documents.append(resource)
    return sorted(documents, key=lambda d: d["metadata"]["name"])


def render(document: Schema) -> str:
    header = "# Generated by `incident-operator crds` from the pydantic models. Do not edit.\n"
    return header + yaml.safe_dump(document, sort_keys=True, width=100)


KUSTOMIZATION = "kustomization.yaml"


def crd_files() -> dict[str, str]:
    """File name in ``crds/`` to its content: one file per CRD, and a kustomization listing
    them, so ``manifests/base`` installs exactly what the models generate."""
    files = {f"{d['spec']['names']['plural']}.yaml": render(d) for d in crd_documents()}
    listing = "".join(f"  - {name}\n" for name in sorted(files))
    files[KUSTOMIZATION] = (
        "# Generated by `incident-operator crds`: the CRDs as a kustomization for manifests/base.\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n" + listing
    )
    return files
