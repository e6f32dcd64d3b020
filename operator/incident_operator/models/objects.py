"""Parsed custom resource objects: metadata we use plus the typed spec and status.

The operator parses a body once, at the boundary, into one of these.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from .incident import IncidentSpec, IncidentStatus
from .runbook import RunbookSpec, RunbookStatus


@dataclasses.dataclass
class ObjectMeta:
    """The metadata of a custom resource the operator uses; the namespace defaults to
    ``default`` and the uid to the name (bodies in tests may omit them)."""

    name: str
    namespace: str
    uid: str
    generation: int | None
    resource_version: str | None
    created: dt.datetime | None
    annotations: dict[str, str]
    #: When each top-level spec field was last written, from ``managedFields``.
    field_times: dict[str, dt.datetime] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, meta: Mapping[str, Any]) -> ObjectMeta:
        created = _time(meta.get("creationTimestamp"))
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace") or "default",
            uid=meta.get("uid") or meta["name"],
            generation=meta.get("generation"),
            resource_version=meta.get("resourceVersion"),
            created=created,
            annotations=dict(meta.get("annotations") or {}),
            field_times=spec_field_times(meta.get("managedFields")),
        )


@dataclasses.dataclass
class IncidentObject:
    """An Incident as stored: metadata, the typed spec and the operator's own status."""

    metadata: ObjectMeta
    spec: IncidentSpec
    status: IncidentStatus

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> IncidentObject:
        return cls(
            metadata=ObjectMeta.parse(body["metadata"]),
            spec=IncidentSpec.model_validate(body.get("spec") or {}),
            status=IncidentStatus.model_validate(_own_status(body)),
        )


@dataclasses.dataclass
class RunbookObject:
    """A Runbook as stored: metadata, the typed spec and the operator's check in status."""

    metadata: ObjectMeta
    spec: RunbookSpec
    status: RunbookStatus

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> RunbookObject:
        return cls(
            metadata=ObjectMeta.parse(body["metadata"]),
            spec=RunbookSpec.model_validate(body.get("spec") or {}),
            status=RunbookStatus.model_validate(_own_status(body)),
        )


def _own_status(body: Mapping[str, Any]) -> dict[str, Any]:
    # Kopf may keep its own bookkeeping under status; it is not part of our model. A status
    # that is not an object (the schema forbids it) counts as none: the operator rewrites it.
    status = body.get("status")
    if not isinstance(status, Mapping):
        return {}
    return {k: v for k, v in status.items() if k != "kopf"}


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def spec_field_times(managed: Any) -> dict[str, dt.datetime]:
    """``spec.<field>`` -> the time of the newest write by a manager that owns the field.

    The API server stamps each manager's entry with the time of its last change, so this
    tells when a person acknowledged, approved or resolved, whenever the operator noticed.
    Unreadable entries are skipped: this is evidence, never a reason to fail.
    """
    times: dict[str, dt.datetime] = {}
    if not isinstance(managed, list):
        return times
    for entry in managed:
        if not isinstance(entry, Mapping) or entry.get("subresource"):
            continue
        when = _time(entry.get("time"))
        spec = (
            (entry.get("fieldsV1") or {}) if isinstance(entry.get("fieldsV1"), Mapping) else {}
        ).get("f:spec")
        if when is None or not isinstance(spec, Mapping):
            continue
        for key in spec:
            if isinstance(key, str) and key.startswith("f:"):
                field = f"spec.{key[2:]}"
                if field not in times or times[field] < when:
                    times[field] = when
    return times
