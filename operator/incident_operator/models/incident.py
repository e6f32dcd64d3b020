"""The ``Incident`` custom resource: what happened, how bad, who responds, and its story."""

from __future__ import annotations

from typing import Annotated

from kube_custom_resource.custom_resource import CustomResource
from pydantic import ConfigDict, Field, StringConstraints

from .base import (
    LabelName,
    LongText,
    Model,
    Person,
    ResourceName,
    ShortText,
    StrEnum,
)
from .base import (
    column as _column,
)
from .incident_status import (
    MAX_MESSAGE as MAX_MESSAGE,
)
from .incident_status import (
    MAX_OUTBOX as MAX_OUTBOX,
)
from .incident_status import (
    MAX_STEP_OUTPUT as MAX_STEP_OUTPUT,
)
from .incident_status import (
    MAX_TIMELINE as MAX_TIMELINE,
)
from .incident_status import (
    ActionItem as ActionItem,
)
from .incident_status import (
    ActionItemStatus as ActionItemStatus,
)
from .incident_status import (
    Diagnosis as Diagnosis,
)
from .incident_status import (
    Escalation as Escalation,
)
from .incident_status import (
    IncidentStatus as IncidentStatus,
)
from .incident_status import (
    NotificationState as NotificationState,
)
from .incident_status import (
    PendingMessage as PendingMessage,
)
from .incident_status import (
    Phase as Phase,
)
from .incident_status import (
    Priority as Priority,
)
from .incident_status import (
    Review as Review,
)
from .incident_status import (
    StepPhase as StepPhase,
)
from .incident_status import (
    StepStatus as StepStatus,
)


class Impact(Model):
    """Impact signals, named after the bullet lists of the playbook's four severity levels.

    When ``spec.severity`` is omitted the operator classifies from these: the most severe
    level with a signal set wins. Every signal defaults to false; with none set, the matched
    runbook's severity applies, else level 4.
    """

    # Level 1: CRITICAL
    all_users_affected: bool = Field(
        default=False, description="Level 1 CRITICAL signal: all users are affected."
    )
    core_functionality_unavailable: bool = Field(
        default=False, description="Level 1 CRITICAL signal: core functionality is unavailable."
    )
    data_integrity_compromised: bool = Field(
        default=False, description="Level 1 CRITICAL signal: data integrity is compromised."
    )
    revenue_impacting: bool = Field(
        default=False, description="Level 1 CRITICAL signal: revenue is impacted."
    )
    # Level 2: HIGH
    multiple_services_affected: bool = Field(
        default=False, description="Level 2 HIGH signal: several services are affected."
    )
    non_core_functionality_down: bool = Field(
        default=False, description="Level 2 HIGH signal: non-core functionality is down."
    )
    performance_severely_degraded: bool = Field(
        default=False, description="Level 2 HIGH signal: performance is severely degraded."
    )
    sla_impact_imminent: bool = Field(
        default=False, description="Level 2 HIGH signal: an SLA impact is imminent."
    )
    # Level 3: MEDIUM
    single_service_affected: bool = Field(
        default=False, description="Level 3 MEDIUM signal: one service is affected."
    )
    workaround_available: bool = Field(
        default=False, description="Level 3 MEDIUM signal: a workaround is available."
    )
    limited_user_impact: bool = Field(
        default=False, description="Level 3 MEDIUM signal: user impact is limited."
    )
    performance_slightly_degraded: bool = Field(
        default=False, description="Level 3 MEDIUM signal: performance is slightly degraded."
    )
    # Level 4: LOW
    monitoring_threshold_exceeded: bool = Field(
        default=False, description="Level 4 LOW signal: a monitoring threshold is exceeded."
    )
    no_actual_impact: bool = Field(
        default=False, description="Level 4 LOW signal: no actual impact is observed."
    )
    informational: bool = Field(
        default=False, description="Level 4 LOW signal: an informational alert."
    )


class SourceKind(StrEnum):
    """How the incident was detected. Manual (the default): a person created it with
    kubectl. Alertmanager: the operator's Alertmanager webhook created it from a firing alert.
    CustomerReport: a customer reported it. HealthCheck: a failed health check found it."""

    MANUAL = "Manual"
    ALERTMANAGER = "Alertmanager"
    CUSTOMER_REPORT = "CustomerReport"
    HEALTH_CHECK = "HealthCheck"


class Source(Model):
    """Where the incident was detected (playbook step 1)."""

    kind: SourceKind = SourceKind.MANUAL
    alert_name: Annotated[str, StringConstraints(max_length=253)] | None = Field(
        default=None,
        description="The alert's alertname label, e.g. DashboardDown; runbooks match it "
        "against match.alertNames.",
    )
    fingerprint: Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9a-f]*$")] | None = (
        Field(
            default=None,
            description="Alertmanager's fingerprint of the alert (lowercase hex), or a hash of "
            "its labels; with the alert's start time it names the Incident, so a repeated "
            "notification never opens a second one.",
        )
    )
    labels: dict[
        str,
        Annotated[str, StringConstraints(max_length=1024), Field(description="The label's value.")],
    ] = Field(
        default_factory=dict,
        max_length=64,
        description="The alert's labels (max 64); runbooks filter on them with match.labels.",
    )
    generator_url: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None, description="Link to what raised the alert, e.g. a Prometheus graph."
    )


class Roles(Model):
    """The playbook's incident response team, by name or handle, e.g. alice or @alice."""

    incident_commander: Person | None = Field(
        default=None,
        description="Makes the decisions, coordinates the team, decides on escalation and "
        "may declare a rollback; shown as status.commander and in every notification.",
    )
    technical_lead: Person | None = Field(
        default=None,
        description="Investigates the root cause, determines the impact scope, recommends "
        "and implements fixes; named in the notifications.",
    )
    database_administrator: Person | None = Field(
        default=None,
        description="Monitors database health, runs recovery procedures, validates data "
        "integrity, manages backups and restores.",
    )
    devops_engineer: Person | None = Field(
        default=None,
        description="Manages infrastructure, deploys fixes and rollbacks, scales.",
    )
    product_manager: Person | None = Field(
        default=None,
        description="Communicates with customers, gives business context, prioritizes fixes.",
    )
    communications_lead: Person | None = Field(
        default=None,
        description="Updates the status page, sends customer notifications, documents the "
        "timeline.",
    )


class Resolution(Model):
    """Set by a human to resolve the incident."""

    resolved_by: Person = Field(description="Who resolves the incident. Required.")
    root_cause: Annotated[str, StringConstraints(min_length=1, max_length=4096)] = Field(
        description="What caused the incident. Required."
    )
    impact: LongText | None = Field(
        default=None,
        description="The impact for the resolution notice. Default: the incident's description "
        "or summary.",
    )
    actions: list[
        Annotated[ShortText, Field(description="One action taken, e.g. Rolled back to v1.")]
    ] = Field(
        default_factory=list,
        max_length=32,
        description="Actions taken, for the resolution notice (max 32). Default: the "
        "succeeded runbook steps.",
    )


class ApprovalDecision(StrEnum):
    """The answer to a step that waits for approval. Approved: the step runs. Rejected: it
    does not, and the runbook stops."""

    APPROVED = "Approved"
    REJECTED = "Rejected"


class Approval(Model):
    """A human's answer to a step that waits for approval."""

    step: LabelName = Field(
        description="Name of the runbook step (one with requiresApproval); one entry per step."
    )
    decision: ApprovalDecision
    by: Person = Field(description="Who decided, e.g. the incident commander.")
    comment: Annotated[str, StringConstraints(max_length=1024)] | None = Field(
        default=None, description="Why; shown with a rejection."
    )


class IncidentSpec(Model):
    """What is wrong, how bad it is and who responds; written by people (or the Alertmanager
    webhook). The operator never changes spec."""

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
    description: LongText | None = Field(
        default=None, description="What is known so far, in more words (max 4096 characters)."
    )
    severity: int | None = Field(
        default=None,
        ge=1,
        le=4,
        description="1 CRITICAL, 2 HIGH, 3 MEDIUM, 4 LOW. Omit to classify from spec.impact.",
    )
    impact: Impact | None = Field(
        default=None, description="Impact signals to classify the severity from."
    )
    symptoms: list[
        Annotated[ShortText, Field(description="One symptom, e.g. 502 Bad Gateway.")]
    ] = Field(
        default_factory=list,
        max_length=32,
        description="What is observed (max 32); runbooks score their match.symptoms keywords "
        "against these.",
    )
    source: Source | None = Field(default=None, description="Where it was detected.")
    runbook: ResourceName | None = Field(
        default=None, description="Runbook to run. Omit to pick the best match."
    )
    roles: Roles | None = Field(default=None, description="Who responds, by role.")
    acknowledged_by: Person | None = Field(
        default=None,
        description="Set by the responder who takes the incident: stops the escalation for "
        "a missed acknowledgement.",
    )
    resolution: Resolution | None = Field(
        default=None,
        description="Set to resolve the incident: the operator sends the resolution notice "
        "and schedules the review. Cannot be removed once set.",
    )
    approvals: list[Approval] = Field(
        default_factory=list,
        max_length=64,
        description="Answers to steps that wait for approval, one per step name (max 64).",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["step"],
        },
    )
    action_items: list[ActionItem] = Field(
        default_factory=list,
        max_length=64,
        description="Follow-up items for the post-incident review (max 64); added to "
        "status.review.actionItems.",
    )
    dry_run: bool = Field(
        default=False,
        description="Record what the runbook's actions that change state would do without "
        "doing it; read-only checks still run. Default: false.",
    )


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
