"""The ``Incident`` custom resource: what happened, how bad, who responds, and its story."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from kube_custom_resource.custom_resource import CustomResource
from pydantic import BeforeValidator, ConfigDict, Field, StringConstraints

from .alerting import AlertsStatus, MaintenanceHold
from .base import (
    Condition,
    LabelName,
    LongText,
    Model,
    Person,
    ResourceName,
    ShortText,
    StatusKey,
    StatusLabel,
    StatusLongText,
    StatusName,
    StatusPerson,
    StatusRef,
    StatusText,
    StatusValue,
    StatusWord,
    StrEnum,
    TimelineEntry,
    clamp,
)
from .base import (
    column as _column,
)

MAX_TIMELINE = 100
#: Undelivered messages kept in status; past this the oldest is dropped (with a timeline note).
MAX_OUTBOX = 16
MAX_MESSAGE = 8192


def _cut(value: object) -> object:
    return clamp(value, MAX_MESSAGE) if isinstance(value, str) else value


MAX_STEP_OUTPUT = 2048


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


class Priority(StrEnum):
    """Priority of an action item: Critical, High, Medium (the default) or Low."""

    CRITICAL = "Critical"
    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"


class ActionItemStatus(StrEnum):
    """Progress of an action item: Open (the default), InProgress or Done."""

    OPEN = "Open"
    IN_PROGRESS = "InProgress"
    DONE = "Done"


class ActionItem(Model):
    """The playbook's post-incident action item template."""

    description: ShortText = Field(description="What to do. Required.")
    owner: Person | None = Field(default=None, description="Who does it.")
    target_date: dt.date | None = Field(
        default=None, description="When it is due, as a date, e.g. 2025-07-01."
    )
    priority: Priority = Priority.MEDIUM
    status: ActionItemStatus = ActionItemStatus.OPEN


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


class Phase(StrEnum):
    """Where the response stands, derived from the conditions (first that applies wins).
    Resolved: spec.resolution is set. Monitoring: recovery completed, waiting for
    resolution. AwaitingApproval: a step waits for spec.approvals. Escalated: escalated and
    not yet mitigated. Mitigating: a recovery step runs. Investigating: acknowledged, or a
    diagnosis step runs. Triaged: severity classified. Detected: just created."""

    DETECTED = "Detected"
    TRIAGED = "Triaged"
    INVESTIGATING = "Investigating"
    AWAITING_APPROVAL = "AwaitingApproval"
    MITIGATING = "Mitigating"
    MONITORING = "Monitoring"
    ESCALATED = "Escalated"
    RESOLVED = "Resolved"


class StepPhase(StrEnum):
    """State of a runbook step. Pending: not started (or approved, about to start).
    Running: started. AwaitingApproval: waits for an entry in spec.approvals. Succeeded: done,
    passed. Failed: done, failed (after its retries). Skipped: its when conditions did not
    hold. Rejected: its approval was Rejected. Interrupted: the operator restarted while it
    ran and it is not safe to repeat: check it by hand."""

    PENDING = "Pending"
    RUNNING = "Running"
    AWAITING_APPROVAL = "AwaitingApproval"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    REJECTED = "Rejected"
    INTERRUPTED = "Interrupted"


class StepStatus(Model):
    """The record of one runbook step: the durable progress of the runbook."""

    name: LabelName = Field(description="The step's name in the runbook.")
    stage: Annotated[str, StringConstraints(pattern=r"^(diagnosis|recovery)$")] = Field(
        description="diagnosis or recovery."
    )
    action: StatusWord = Field(description="The step's action type, e.g. restartWorkload.")
    phase: StepPhase = StepPhase.PENDING
    attempts: int = Field(
        default=0, ge=0, description="How many times the step was started (retries not counted)."
    )
    started_at: dt.datetime | None = Field(default=None, description="When it last started.")
    finished_at: dt.datetime | None = Field(default=None, description="When it finished.")
    duration_seconds: float | None = Field(
        default=None, ge=0, description="How long it ran, in seconds."
    )
    message: StatusText = Field(default="", description="What the step found or did, in words.")
    findings: dict[
        str,
        Annotated[StatusValue, Field(description="The finding's value.")],
    ] = Field(
        default_factory=dict,
        description="Named results of the action, e.g. replicas: 2, warnings: 0; later "
        "steps test them in when conditions.",
    )
    output: StatusLongText | None = Field(
        default=None,
        description="Raw output (log lines, a table), its end kept (max 2048 characters).",
    )
    dry_run: bool | None = Field(
        default=None, description="True when the step was only recorded (spec.dryRun)."
    )
    approval_requested_at: dt.datetime | None = Field(
        default=None, description="When the step started waiting for approval."
    )
    approval_escalated: bool | None = Field(
        default=None,
        description="True once the wait for approval exceeded spec.safety.approvalTimeout and "
        "escalated.",
    )
    approval_before_request: StatusKey | None = Field(
        default=None,
        description="The approval entry (by/decision) that was already in spec.approvals when "
        "the step asked for approval. It does not count: an approval answers a request, so it "
        "must be given (again) after the step asked.",
    )
    approval_refused: StatusKey | None = Field(
        default=None,
        description="The approval entry (by/decision) the operator did not honour because "
        "its author may not approve Incidents in this namespace (the verb approve on "
        "incidents.incidents.dev, checked with a SubjectAccessReview).",
    )
    blocked_by: StatusWord | None = Field(
        default=None,
        description="Why the step has not started although it is next: the safety gate's "
        "reason, TargetBusy (another remediation holds the target) or GuardUnavailable (the "
        "gate's Lease could not be read). Cleared when the step starts.",
    )
    decided_by: StatusPerson | None = Field(
        default=None, description="Who approved or rejected the step."
    )


class Escalation(Model):
    """How far up the policy's escalation chain the incident went (by default On-Call Engineer,
    Engineering Lead, VP Engineering, CTO): one step per missed response time, failed step or
    approval timeout."""

    level: int = Field(default=0, ge=0, description="Steps taken along the escalation chain.")
    contacts: list[
        Annotated[StatusPerson, Field(description="A contact of the escalation chain.")]
    ] = Field(default_factory=list, description="Who was called, in order.")
    last_escalated_at: dt.datetime | None = Field(
        default=None, description="When the last step was taken."
    )
    reason: StatusText | None = Field(default=None, description="Why the last step was taken.")


class PendingMessage(Model):
    """A notification committed to status and not yet delivered to every channel that wants
    it. The operator sends what is here after each commit and after a restart, so a message
    is delivered at least once; its key (the Idempotency-Key header) lets a receiver drop a
    repeat."""

    key: StatusKey = Field(description="incident uid/kind/number: stable across retries.")
    kind: StatusWord = Field(description="Initial, Update, Escalation, Approval or Resolution.")
    severity: int = Field(ge=1, le=4, description="The Incident's severity when it was sent.")
    title: StatusText = Field(description="The message's title.")
    text: Annotated[str, StringConstraints(max_length=MAX_MESSAGE), BeforeValidator(_cut)] = Field(
        description="The message as rendered from the policy's template."
    )
    channels: list[Annotated[StatusName, Field(description="A channel of the policy.")]] = Field(
        max_length=32, description="The policy's channels still to deliver to."
    )
    created_at: dt.datetime = Field(description="When the decision that sent it committed.")


class NotificationState(Model):
    """Which of the playbook's notifications went out: they are numbered here, so a restarted
    operator never sends one twice."""

    initial_sent_at: dt.datetime | None = Field(
        default=None, description="When the initial notification was sent."
    )
    updates_sent: int = Field(
        default=0, ge=0, description="Number of the last status update sent (#1, #2, ...)."
    )
    last_update_at: dt.datetime | None = Field(
        default=None, description="When the last status update was sent."
    )
    next_update_at: dt.datetime | None = Field(
        default=None,
        description="When the next status update is due, at the severity's update cadence.",
    )
    resolution_sent_at: dt.datetime | None = Field(
        default=None, description="When the resolution notice was sent."
    )
    failures: int = Field(
        default=0, ge=0, description="Deliveries to a channel that failed, in total."
    )
    outbox: list[PendingMessage] = Field(
        default_factory=list,
        max_length=MAX_OUTBOX,
        description="Messages not yet delivered to every channel (at-least-once delivery).",
    )


class Review(Model):
    """The post-incident review, scheduled on resolution."""

    required: bool = Field(
        description="Whether the severity's policy requires a review (levels 1 and 2 by default)."
    )
    due_at: dt.datetime | None = Field(
        default=None, description="When the review is due, if required."
    )
    action_items: list[ActionItem] = Field(
        default_factory=list,
        description="The playbook's documentation items (when required), then spec.actionItems.",
    )


class Diagnosis(Model):
    """The conclusion of the runbook's diagnosis steps."""

    suspected_cause: StatusText | None = Field(
        default=None,
        description="The failed checks and their messages, or that none failed.",
    )
    summary: StatusLongText | None = Field(
        default=None, description="How many checks found a problem, e.g. 2 of 5 checks ..."
    )


class IncidentStatus(Model):
    """The response as the operator runs it: written only by the operator. Times are RFC
    3339 UTC timestamps."""

    phase: Phase | None = None
    observed_generation: int | None = Field(
        default=None, description="metadata.generation of the spec the status reflects."
    )
    severity: int | None = Field(
        default=None, ge=1, le=4, description="The classified level: 1 CRITICAL - 4 LOW."
    )
    severity_name: StatusLabel | None = Field(
        default=None, description="CRITICAL, HIGH, MEDIUM or LOW."
    )
    classified_by: StatusName | None = Field(
        default=None,
        description="The rule that set the severity: spec.severity, impact.<signal>, "
        "impact.none, runbook.severity or default.",
    )
    runbook: StatusRef | None = Field(
        default=None, description="The Runbook selected for the incident (same namespace)."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="The source of truth of the response; the phase summarises them.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    detected_at: dt.datetime | None = Field(
        default=None, description="When the incident was detected (its creation)."
    )
    acknowledged_at: dt.datetime | None = Field(
        default=None, description="When spec.acknowledgedBy was set."
    )
    acknowledged_by: StatusPerson | None = Field(default=None, description="Who acknowledged it.")
    mitigated_at: dt.datetime | None = Field(
        default=None, description="When the runbook's recovery steps completed."
    )
    resolved_at: dt.datetime | None = Field(
        default=None, description="When spec.resolution was set."
    )
    resolved_by: StatusPerson | None = Field(default=None, description="Who resolved it.")
    alert_resolved_at: dt.datetime | None = Field(
        default=None,
        description="When Alertmanager reported the alert resolved (evidence only: a person "
        "still resolves the incident).",
    )
    commander: StatusPerson | None = Field(
        default=None, description="The incident commander, from spec.roles."
    )
    response_deadline: dt.datetime | None = Field(
        default=None,
        description="Acknowledge by then: detection plus the severity's response time (by default "
        "2m for level 1 ... 1h for level 4); later sets ResponseSLABreached and escalates.",
    )
    time_to_acknowledge_seconds: float | None = Field(
        default=None, description="Seconds from detection to acknowledgement."
    )
    time_to_recover_seconds: float | None = Field(
        default=None, description="Seconds from detection to mitigation (or resolution)."
    )
    rto_seconds: float | None = Field(
        default=None, description="The runbook's rto.mitigation, in seconds."
    )
    escalation: Escalation | None = Field(default=None, description="Escalations so far, if any.")
    notifications: NotificationState | None = Field(
        default=None, description="Notifications sent so far."
    )
    current_step: StatusName | None = Field(
        default=None, description="The step running or waiting for approval, if any."
    )
    steps: list[StepStatus] = Field(
        default_factory=list, description="One record per runbook step started or skipped."
    )
    diagnosis: Diagnosis | None = Field(
        default=None, description="Set when the diagnosis steps have run."
    )
    review: Review | None = Field(default=None, description="Set on resolution.")
    timeline: list[TimelineEntry] = Field(
        default_factory=list,
        max_length=MAX_TIMELINE,
        description="The incident's story, oldest first (the last 100 entries); unlike "
        "Events, it does not expire.",
    )
    timeline_folded: int = Field(
        default=0, ge=0, description="Oldest timeline entries folded away to bound the size."
    )
    message: StatusText | None = Field(
        default=None, description="What the response waits for, if anything."
    )
    alerts: AlertsStatus | None = Field(
        default=None, description="The Alertmanager alerts behind the Incident, if any."
    )
    maintenance: MaintenanceHold | None = Field(
        default=None,
        description="Set while a maintenance window holds the Incident's remediation.",
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
