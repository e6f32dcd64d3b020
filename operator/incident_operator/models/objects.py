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

    @classmethod
    def parse(cls, meta: Mapping[str, Any]) -> ObjectMeta:
        created = meta.get("creationTimestamp")
        if isinstance(created, str):
            created = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace") or "default",
            uid=meta.get("uid") or meta["name"],
            generation=meta.get("generation"),
            resource_version=meta.get("resourceVersion"),
            created=created,
            annotations=dict(meta.get("annotations") or {}),
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
    # Kopf may keep its own bookkeeping under status; it is not part of our model.
    return {k: v for k, v in dict(body.get("status") or {}).items() if k != "kopf"}
