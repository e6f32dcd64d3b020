"""Shared building blocks of the custom resource models.

The CRDs in ``crds/`` are generated from these models, so every constraint written here is
enforced twice: by the API server on apply, and by pydantic when the operator parses a body.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from kube_custom_resource import schema
from pydantic import ConfigDict, Field, StringConstraints

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

ResourceName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
]
LabelName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
LongText = Annotated[str, StringConstraints(max_length=4096)]
Person = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Duration = Annotated[
    str,
    StringConstraints(pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$", max_length=32),
]


class Model(schema.BaseModel):
    """Base of every spec/status model: camelCase on the wire, unknown fields forbidden."""

    model_config = ConfigDict(extra="forbid")

    def to_k8s(self) -> dict[str, Any]:
        """The JSON the API server stores: camelCase, without unset optionals."""
        dumped: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return dumped


class StrEnum(str, schema.Enum):
    """A string enum rendered without a title, so the CRD shows a plain ``enum``."""

    def __str__(self) -> str:
        return str(self.value)


class SecretKeyRef(Model):
    """Where a secret value lives. Secrets never appear in spec, status, events or logs."""

    name: ResourceName = Field(description="Name of the Secret in the Incident's namespace.")
    key: Annotated[str, StringConstraints(min_length=1, max_length=253)] = Field(
        description="Key inside the Secret's data."
    )


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(Model):
    """A Kubernetes API convention condition."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    status: ConditionStatus
    reason: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Z]\w*$")]
    message: Annotated[str, StringConstraints(max_length=1024)] = ""
    last_transition_time: dt.datetime
    observed_generation: int | None = Field(default=None, ge=0)


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class TimelineEntry(Model):
    """One line of the incident's story, kept in status (events expire, this does not)."""

    time: dt.datetime
    type: EventType = EventType.NORMAL
    reason: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Z]\w*$")]
    message: Annotated[str, StringConstraints(max_length=1024)]
    actor: Annotated[str, StringConstraints(max_length=128)] | None = None


def column(name: str, path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    """A CRD additionalPrinterColumn; priority 1 shows only with ``-o wide``."""
    printer: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        printer["priority"] = priority
    return printer
