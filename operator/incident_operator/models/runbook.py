"""The ``Runbook`` custom resource: match rules plus ordered diagnosis and recovery steps."""

from __future__ import annotations

from typing import Annotated

from kube_custom_resource.custom_resource import CustomResource
from pydantic import ConfigDict, Field, StringConstraints

from .actions import Action, Comparison
from .base import (
    Condition,
    Duration,
    LabelName,
    LongText,
    Model,
    SecretKeyRef,
    ShortText,
    StrEnum,
)
from .base import (
    column as _column,
)
from .incident import StepPhase

MAX_STEPS = 32


class Match(Model):
    """Which incidents this runbook answers.

    Labels filter (all must equal the alert's labels); alert names (20 points), services (10)
    and symptom keywords (3 each, found in summary, description or symptoms) score. The
    highest-scoring valid runbook wins; a score of zero means no match.
    """

    services: list[LabelName] = Field(default_factory=list, max_length=32)
    alert_names: list[Annotated[str, StringConstraints(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=32
    )
    labels: dict[str, Annotated[str, StringConstraints(max_length=253)]] = Field(
        default_factory=dict, max_length=16
    )
    symptoms: list[ShortText] = Field(
        default_factory=list,
        max_length=32,
        description="Keywords; each one found in the incident's symptoms or summary adds score.",
    )


class Rto(Model):
    """Recovery time objectives from the playbook, e.g. 5 minutes (restart) / 10 (rollback)."""

    mitigation: Duration
    full_recovery: Duration | None = None


class OnFailure(StrEnum):
    CONTINUE = "Continue"
    STOP = "Stop"
    ESCALATE = "Escalate"


class When(Model):
    """A condition on an earlier step's result. A step runs only if all its conditions hold."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.phases) != has(self.finding)",
                    "message": "a when condition tests either phases or a finding, not both",
                },
                {
                    "rule": "!has(self.finding) || has(self.value)",
                    "message": "a finding condition needs a value to compare with",
                },
            ]
        }
    )

    step: LabelName
    phases: list[StepPhase] | None = Field(default=None, min_length=1, max_length=8)
    finding: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    comparison: Comparison = Comparison.GT
    value: float | None = None


class Step(Model):
    name: LabelName
    description: LongText | None = None
    action: Action
    timeout: Duration | None = None
    retries: int = Field(default=0, ge=0, le=10)
    backoff: Duration = "5s"
    when: list[When] = Field(default_factory=list, max_length=8)
    on_failure: OnFailure = OnFailure.STOP
    requires_approval: bool = False


class PostgresTarget(Model):
    host: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    port: int = Field(default=5432, ge=1, le=65535)
    database: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    user: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    password_secret_ref: SecretKeyRef | None = None
    sslmode: Annotated[
        str, StringConstraints(pattern=r"^(disable|allow|prefer|require|verify-ca|verify-full)$")
    ] = "prefer"


class RedisTarget(Model):
    host: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    port: int = Field(default=6379, ge=1, le=65535)
    db: int = Field(default=0, ge=0, le=15)
    password_secret_ref: SecretKeyRef | None = None


class HttpTarget(Model):
    base_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2048)]
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Sent as the X-API-Key header."
    )


class PrometheusTarget(Model):
    url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2048)]


class Targets(Model):
    """Connections the steps use; credentials come only from Secrets."""

    postgres: PostgresTarget | None = None
    redis: RedisTarget | None = None
    http: HttpTarget | None = None
    prometheus: PrometheusTarget | None = None


class Safety(Model):
    cooldown: Duration = Field(
        default="10m", description="Minimum time between destructive actions on one target."
    )
    max_attempts_per_target: int = Field(
        default=3, ge=1, le=20, description="Destructive actions per target before escalating."
    )
    approval_timeout: Duration = Field(
        default="15m", description="Escalate when a gated step waits longer than this."
    )


class RunbookSpec(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.diagnosis) ? size(self.diagnosis) : 0) + "
                    "(has(self.recovery) ? size(self.recovery) : 0) > 0",
                    "message": "a runbook needs at least one diagnosis or recovery step",
                },
                {
                    "rule": "!has(self.diagnosis) || !has(self.recovery) || "
                    "self.diagnosis.all(d, !self.recovery.exists(r, r.name == d.name))",
                    "message": "step names must be unique across diagnosis and recovery",
                },
            ]
        }
    )

    title: ShortText
    description: LongText | None = None
    match: Match = Field(default_factory=Match)
    severity: int | None = Field(
        default=None, ge=1, le=4, description="Severity when the incident does not give one."
    )
    rto: Rto
    targets: Targets = Field(default_factory=Targets)
    diagnosis: list[Step] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    recovery: list[Step] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    safety: Safety = Field(default_factory=Safety)


class RunbookStatus(Model):
    valid: bool | None = None
    observed_generation: int | None = None
    step_count: int | None = None
    message: Annotated[str, StringConstraints(max_length=1024)] | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )


class Runbook(
    CustomResource,
    version="v1alpha1",
    short_names=["rb"],
    subresources={"status": {}},
    printer_columns=[
        _column("Title", ".spec.title"),
        _column("Valid", ".status.valid", "boolean"),
        _column("Steps", ".status.stepCount", "integer"),
        _column("RTO", ".spec.rto.mitigation"),
        _column("Services", ".spec.match.services", priority=1),
        _column("Message", ".status.message", priority=1),
    ],
):
    """A runbook kept in Git: when it applies and what to do, step by step."""

    spec: RunbookSpec
    status: RunbookStatus = Field(default_factory=RunbookStatus)
