"""The ``Incident`` status: the response as the operator decided it, step by step.

Everything here is written by the operator only, through the commit loop; every string is
cut to its limit rather than refused (``Status*`` types)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BeforeValidator, Field, StringConstraints

from .alerting import AlertsStatus, MaintenanceHold
from .base import (
    Condition,
    LabelName,
    Model,
    Person,
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

MAX_TIMELINE = 100
#: Undelivered messages kept in status; past this the oldest is dropped (with a timeline note).
MAX_OUTBOX = 16
MAX_MESSAGE = 8192


def _cut(value: object) -> object:
    return clamp(value, MAX_MESSAGE) if isinstance(value, str) else value


MAX_STEP_OUTPUT = 2048


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
