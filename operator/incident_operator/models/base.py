"""Shared building blocks of the custom resource models.

The CRDs in ``crds/`` are generated from these models, so every constraint written here is
enforced twice: by the API server on apply, and by pydantic when the operator parses a body.

Every model, field and enum value carries a description (a docstring, or
``Field(description=...)``): it is what ``kubectl explain`` prints. The generated schema takes
the description of a field whose type is a model or an enum from that type's docstring, so
those docstrings must fit every field that uses the type; an optional field (``X | None``)
keeps its own ``Field(description=...)``. An enum's docstring names each value and its
meaning, because the schema of an enum is one property.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from kube_custom_resource import schema
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from ..durations import MAX_DURATION_SECONDS, parse_duration

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

ResourceName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
]
LabelName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
LongText = Annotated[str, StringConstraints(max_length=4096)]
Person = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def _duration_cap_rule() -> str:
    """A CEL rule that holds when the duration (``self``) is at most 365 days: the seconds
    of each ``<number><unit>`` part, summed (a duration of 32 characters has at most 16
    parts)."""
    part = "'[0-9]+(\\\\.[0-9]+)?(ms|s|m|h|d)'"
    number = "double(p.find('^[0-9]+(\\\\.[0-9]+)?'))"
    unit = (
        "(p.endsWith('ms') ? 0.001 : p.endsWith('s') ? 1.0 : p.endsWith('m') ? 60.0 : "
        "p.endsWith('h') ? 3600.0 : 86400.0)"
    )
    total = " + ".join(f"(size(v) > {i} ? v[{i}] : 0.0)" for i in range(16))
    # [x].all(v, ...) binds v to x (the API server's CEL has no cel.bind).
    return (
        f"[self.findAll({part}).map(p, {number} * {unit})].all(v, "
        f"{total} <= {float(MAX_DURATION_SECONDS)})"
    )


#: The schema's side of the cap on durations (``durations.MAX_DURATION_SECONDS``).
DURATION_CAP_RULE = _duration_cap_rule()


class _DurationCap:
    """Puts the cap rule on the string schema itself, also inside ``anyOf`` (optionals)."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["x-kubernetes-validations"] = [
            {"rule": DURATION_CAP_RULE, "message": "a duration is at most 365d"}
        ]
        return schema


def _at_most_a_year(text: str) -> str:
    parse_duration(text)  # ValueError when longer (the pattern is checked before)
    return text


#: A duration such as 500ms, 30s, 10m, 1h30m or 2d: at most 365d.
Duration = Annotated[
    str,
    StringConstraints(pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$", max_length=32),
    AfterValidator(_at_most_a_year),
    _DurationCap(),
]

#: The end of a status string cut to its limit.
ELLIPSIS = "…"


def clamp(text: str, limit: int) -> str:
    """``text``, or its start and an ellipsis when it is longer than ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def _clamping(limit: int) -> BeforeValidator:
    def cut(value: object) -> object:
        return clamp(value, limit) if isinstance(value, str) else value

    return BeforeValidator(cut)


# Free text the operator writes to status, cut to the CRD's maximum length instead of refused
# (every assignment is validated): a long approval comment, step message or Runbook problem
# never makes a decision fail. This is the one place status strings are bounded.
StatusText = Annotated[str, StringConstraints(max_length=1024), _clamping(1024)]
StatusLongText = Annotated[str, StringConstraints(max_length=2048), _clamping(2048)]
StatusValue = Annotated[str, StringConstraints(max_length=512), _clamping(512)]
StatusKey = Annotated[str, StringConstraints(max_length=256), _clamping(256)]
StatusRef = Annotated[str, StringConstraints(max_length=253), _clamping(253)]
StatusName = Annotated[str, StringConstraints(max_length=128), _clamping(128)]
StatusShortName = Annotated[str, StringConstraints(max_length=63), _clamping(63)]
StatusPerson = Annotated[str, StringConstraints(min_length=1, max_length=128), _clamping(128)]
StatusWord = Annotated[str, StringConstraints(max_length=64), _clamping(64)]
StatusLabel = Annotated[str, StringConstraints(max_length=16), _clamping(16)]
ConditionType = Annotated[str, StringConstraints(min_length=1, max_length=64), _clamping(64)]


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
    """Whether the condition holds: True, False, or Unknown (not decided yet)."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(Model):
    """One observation in the Kubernetes condition convention, set by the operator. The
    conditions, not the phase, are the source of truth: one entry per type."""

    type: ConditionType = Field(
        description="What the condition observes. Incident: Triaged, RunbookReady, "
        "Acknowledged, Diagnosed, AwaitingApproval, Mitigated, Escalated, ResponseSLABreached, "
        "RecoveryTimeObjectiveBreached, Resolved. Runbook: Valid."
    )
    status: ConditionStatus
    reason: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Z]\w*$")
    ] = Field(description="Why, as one CamelCase word for machines, e.g. AcknowledgedByResponder.")
    message: StatusText = Field(default="", description="Why, in words for people.")
    last_transition_time: dt.datetime = Field(
        description="When status last changed (RFC 3339); a new reason or message alone does "
        "not move it."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation of the object the condition saw."
    )


class EventType(StrEnum):
    """Normal for progress, Warning for something a responder should look at (a failed step,
    an escalation, a breached deadline). Default: Normal."""

    NORMAL = "Normal"
    WARNING = "Warning"


class TimelineEntry(Model):
    """One line of the incident's story, kept in status (events expire, this does not)."""

    time: dt.datetime = Field(description="When it happened (RFC 3339).")
    type: EventType = EventType.NORMAL
    reason: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Z]\w*$")
    ] = Field(description="What happened, as one CamelCase word, e.g. Escalated, StepFailed.")
    message: StatusText = Field(description="What happened, in words for people.")
    actor: StatusName | None = Field(
        default=None, description="The person who did it, when a person did (e.g. approved)."
    )


def column(name: str, path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    """A CRD additionalPrinterColumn; priority 1 shows only with ``-o wide``."""
    printer: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        printer["priority"] = priority
    return printer
