"""The ``Incident`` custom resource: what happened, how bad, who responds, and its story."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from kube_custom_resource.custom_resource import CustomResource
from pydantic import ConfigDict, Field, StringConstraints

from .base import (
    Condition,
    LabelName,
    LongText,
    Model,
    Person,
    ResourceName,
    ShortText,
    StrEnum,
    TimelineEntry,
)
from .base import (
    column as _column,
)

MAX_TIMELINE = 100
MAX_STEP_OUTPUT = 2048


class Impact(Model):
    """Impact signals, named after the bullet lists of the playbook's four severity levels.

    When ``spec.severity`` is omitted the operator classifies from these.
    """

    # Level 1: CRITICAL
    all_users_affected: bool = False
    core_functionality_unavailable: bool = False
    data_integrity_compromised: bool = False
    revenue_impacting: bool = False
    # Level 2: HIGH
    multiple_services_affected: bool = False
    non_core_functionality_down: bool = False
    performance_severely_degraded: bool = False
    sla_impact_imminent: bool = False
    # Level 3: MEDIUM
    single_service_affected: bool = False
    workaround_available: bool = False
    limited_user_impact: bool = False
    performance_slightly_degraded: bool = False
    # Level 4: LOW
    monitoring_threshold_exceeded: bool = False
    no_actual_impact: bool = False
    informational: bool = False


class SourceKind(StrEnum):
    MANUAL = "Manual"
    ALERTMANAGER = "Alertmanager"
    CUSTOMER_REPORT = "CustomerReport"
    HEALTH_CHECK = "HealthCheck"


class Source(Model):
    """Where the incident was detected (playbook step 1)."""

    kind: SourceKind = SourceKind.MANUAL
    alert_name: Annotated[str, StringConstraints(max_length=253)] | None = None
    fingerprint: Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9a-f]*$")] | None = (
        None
    )
    labels: dict[str, Annotated[str, StringConstraints(max_length=1024)]] = Field(
        default_factory=dict, max_length=64
    )
    generator_url: Annotated[str, StringConstraints(max_length=2048)] | None = None


class Roles(Model):
    """The playbook's incident response team, by name or handle."""

    incident_commander: Person | None = None
    technical_lead: Person | None = None
    database_administrator: Person | None = None
    devops_engineer: Person | None = None
    product_manager: Person | None = None
    communications_lead: Person | None = None


class Resolution(Model):
    """Set by a human to resolve the incident."""

    resolved_by: Person
    root_cause: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    impact: LongText | None = None
    actions: list[ShortText] = Field(default_factory=list, max_length=32)


class Decision(StrEnum):
    APPROVED = "Approved"
    REJECTED = "Rejected"


class Approval(Model):
    """A human's answer to a step that waits for approval."""

    step: LabelName
    decision: Decision
    by: Person
    comment: Annotated[str, StringConstraints(max_length=1024)] | None = None


class Priority(StrEnum):
    CRITICAL = "Critical"
    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"


class ActionItemStatus(StrEnum):
    OPEN = "Open"
    IN_PROGRESS = "InProgress"
    DONE = "Done"


class ActionItem(Model):
    """The playbook's post-incident action item template."""

    description: ShortText
    owner: Person | None = None
    target_date: dt.date | None = None
    priority: Priority = Priority.MEDIUM
    status: ActionItemStatus = ActionItemStatus.OPEN


class IncidentSpec(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.severity) || has(self.impact)",
                    "message": "set spec.severity (1-4) or spec.impact so the incident can be "
                    "classified",
                },
                {
                    "rule": "self.service == oldSelf.service",
                    "message": "spec.service is immutable: open a new Incident for another service",
                },
                {
                    "rule": "!has(oldSelf.resolution) || has(self.resolution)",
                    "message": "spec.resolution cannot be removed once set: open a new Incident",
                },
            ]
        }
    )

    service: LabelName = Field(description="The affected service, e.g. dashboard, postgres.")
    summary: ShortText = Field(description="One line: what is wrong.")
    description: LongText | None = None
    severity: int | None = Field(
        default=None,
        ge=1,
        le=4,
        description="1 CRITICAL, 2 HIGH, 3 MEDIUM, 4 LOW. Omit to classify from spec.impact.",
    )
    impact: Impact | None = None
    symptoms: list[ShortText] = Field(default_factory=list, max_length=32)
    source: Source | None = None
    runbook: ResourceName | None = Field(
        default=None, description="Runbook to run. Omit to pick the best match."
    )
    roles: Roles | None = None
    acknowledged_by: Person | None = Field(
        default=None, description="Set by the responder who takes the incident."
    )
    resolution: Resolution | None = None
    approvals: list[Approval] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["step"],
        },
    )
    action_items: list[ActionItem] = Field(default_factory=list, max_length=64)
    dry_run: bool = Field(
        default=False, description="Record what the runbook would do without doing it."
    )


class Phase(StrEnum):
    DETECTED = "Detected"
    TRIAGED = "Triaged"
    INVESTIGATING = "Investigating"
    AWAITING_APPROVAL = "AwaitingApproval"
    MITIGATING = "Mitigating"
    MONITORING = "Monitoring"
    ESCALATED = "Escalated"
    RESOLVED = "Resolved"


class StepPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    AWAITING_APPROVAL = "AwaitingApproval"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    REJECTED = "Rejected"
    INTERRUPTED = "Interrupted"


class StepStatus(Model):
    name: LabelName
    stage: Annotated[str, StringConstraints(pattern=r"^(diagnosis|recovery)$")]
    action: Annotated[str, StringConstraints(max_length=64)]
    phase: StepPhase = StepPhase.PENDING
    attempts: int = Field(default=0, ge=0)
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    duration_seconds: float | None = Field(default=None, ge=0)
    message: Annotated[str, StringConstraints(max_length=1024)] = ""
    findings: dict[str, Annotated[str, StringConstraints(max_length=512)]] = Field(
        default_factory=dict
    )
    output: Annotated[str, StringConstraints(max_length=MAX_STEP_OUTPUT)] | None = None
    dry_run: bool | None = None
    approval_requested_at: dt.datetime | None = None
    approval_escalated: bool | None = None
    decided_by: Person | None = None


class Escalation(Model):
    level: int = Field(default=0, ge=0, description="Steps taken along the escalation chain.")
    contacts: list[Person] = Field(default_factory=list)
    last_escalated_at: dt.datetime | None = None
    reason: Annotated[str, StringConstraints(max_length=1024)] | None = None


class NotificationState(Model):
    initial_sent_at: dt.datetime | None = None
    updates_sent: int = Field(default=0, ge=0)
    last_update_at: dt.datetime | None = None
    next_update_at: dt.datetime | None = None
    resolution_sent_at: dt.datetime | None = None
    failures: int = Field(default=0, ge=0)


class Review(Model):
    required: bool
    due_at: dt.datetime | None = None
    action_items: list[ActionItem] = Field(default_factory=list)


class Diagnosis(Model):
    suspected_cause: Annotated[str, StringConstraints(max_length=1024)] | None = None
    summary: Annotated[str, StringConstraints(max_length=2048)] | None = None


class IncidentStatus(Model):
    phase: Phase | None = None
    observed_generation: int | None = None
    severity: int | None = Field(default=None, ge=1, le=4)
    severity_name: Annotated[str, StringConstraints(max_length=16)] | None = None
    classified_by: Annotated[str, StringConstraints(max_length=128)] | None = None
    runbook: Annotated[str, StringConstraints(max_length=253)] | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    detected_at: dt.datetime | None = None
    acknowledged_at: dt.datetime | None = None
    acknowledged_by: Person | None = None
    mitigated_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    resolved_by: Person | None = None
    alert_resolved_at: dt.datetime | None = None
    commander: Person | None = None
    response_deadline: dt.datetime | None = None
    time_to_acknowledge_seconds: float | None = None
    time_to_recover_seconds: float | None = None
    rto_seconds: float | None = None
    escalation: Escalation | None = None
    notifications: NotificationState | None = None
    current_step: Annotated[str, StringConstraints(max_length=128)] | None = None
    steps: list[StepStatus] = Field(default_factory=list)
    diagnosis: Diagnosis | None = None
    review: Review | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list, max_length=MAX_TIMELINE)
    timeline_folded: int = Field(
        default=0, ge=0, description="Oldest timeline entries folded away to bound the size."
    )
    message: Annotated[str, StringConstraints(max_length=1024)] | None = None


class Incident(
    CustomResource,
    version="v1alpha1",
    short_names=["inc"],
    subresources={"status": {}},
    printer_columns=[
        _column("Severity", ".status.severity", "integer"),
        _column("Phase", ".status.phase"),
        _column("Service", ".spec.service"),
        _column("Runbook", ".status.runbook"),
        _column("Step", ".status.currentStep", priority=1),
        _column("Commander", ".status.commander", priority=1),
        _column("Acked-By", ".status.acknowledgedBy", priority=1),
        _column("Escalation", ".status.escalation.level", "integer", priority=1),
        _column("Updates", ".status.notifications.updatesSent", "integer", priority=1),
        _column("Summary", ".spec.summary", priority=1),
    ],
):
    """An incident: created by a person with kubectl, or by the Alertmanager webhook."""

    spec: IncidentSpec
    status: IncidentStatus = Field(default_factory=IncidentStatus)
