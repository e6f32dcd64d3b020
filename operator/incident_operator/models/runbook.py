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
    StatusText,
    StrEnum,
)
from .base import (
    column as _column,
)
from .incident import StepPhase

MAX_STEPS = 32
DEFAULT_SERVICE_ACCOUNT = "incident-runbook"


class Match(Model):
    """Which incidents this runbook answers.

    Labels filter (all must equal the alert's labels); alert names (20 points), services (10)
    and symptom keywords (3 each, found in summary, description or symptoms) score. The
    highest-scoring valid runbook wins; a score of zero means no match.
    """

    services: list[Annotated[LabelName, Field(description="A service name, e.g. dashboard.")]] = (
        Field(
            default_factory=list,
            max_length=32,
            description="Services this runbook is for: the Incident's spec.service in this list "
            "scores 10.",
        )
    )
    alert_names: list[
        Annotated[
            str,
            StringConstraints(min_length=1, max_length=253),
            Field(description="An Alertmanager alertname, e.g. DashboardDown."),
        ]
    ] = Field(
        default_factory=list,
        max_length=32,
        description="Alertmanager alert names: the Incident's spec.source.alertName in this list "
        "scores 20.",
    )
    labels: dict[
        str,
        Annotated[
            str,
            StringConstraints(max_length=253),
            Field(description="The value the alert label must have."),
        ],
    ] = Field(
        default_factory=dict,
        max_length=16,
        description="Alert labels that must all equal the Incident's spec.source.labels, or the "
        "runbook does not apply (a filter, no score). Max 16.",
    )
    symptoms: list[
        Annotated[
            ShortText,
            Field(description="A keyword, found case-insensitively as a substring, e.g. 502."),
        ]
    ] = Field(
        default_factory=list,
        max_length=32,
        description="Keywords; each one found in the incident's summary, description or "
        "symptoms scores 3.",
    )


class Rto(Model):
    """Recovery time objectives from the playbook, e.g. 5 minutes (restart) / 10 (rollback)."""

    mitigation: Duration = Field(
        description="Time from detection to recovery (the runbook's recovery steps done) the "
        "incident must meet, e.g. 5m; later sets RecoveryTimeObjectiveBreached. Required."
    )
    full_recovery: Duration | None = Field(
        default=None, description="Time to full recovery, for the record, e.g. 1h."
    )


class OnFailure(StrEnum):
    """What a failed step (after its retries) does to the rest of the runbook. Stop (the
    default): no later step runs and the incident is not mitigated (reason RunbookStopped).
    Continue: the next step runs; later steps can test the failure with when. Escalate: the
    incident escalates one step up the escalation chain and no later step runs."""

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

    step: LabelName = Field(
        description="Name of an earlier step (diagnosis or recovery) whose result is tested. "
        "The condition does not hold until that step has finished."
    )
    phases: list[StepPhase] | None = Field(
        default=None,
        min_length=1,
        max_length=8,
        description="Holds when the step ended in one of these phases, e.g. [Failed].",
    )
    finding: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None,
        description="Holds when this finding of the step compared with value holds, e.g. "
        "warnings (see each action's findings in the description of action.type; true and "
        "false count as 1 and 0).",
    )
    comparison: Comparison = Comparison.GT
    value: float | None = Field(
        default=None, description="The number the finding is compared with; needs finding."
    )


class Step(Model):
    """One runbook step: an action, when it runs, how long it may take and what a failure
    does. Steps run one at a time, diagnosis first, each in order; a finished step never
    runs again, also after an operator restart."""

    name: LabelName = Field(
        description="Unique name of the step across diagnosis and recovery, e.g. restart. "
        "spec.approvals, when conditions and status.steps refer to it."
    )
    description: LongText | None = Field(
        default=None, description="Why the step is there, for people reading the runbook."
    )
    action: Action = Field(
        description="What the step does: the type names the action, its parameters sit "
        "beside it, e.g. {type: restartWorkload, workload: {name: dashboard}}."
    )
    timeout: Duration | None = Field(
        default=None,
        description="Time limit of one attempt, e.g. 2m. Default: 5m for an action that waits "
        "for its rollout (wait: true), else 1m.",
    )
    retries: int = Field(
        default=0, ge=0, le=10, description="Attempts after a failed one (0-10). Default: 0."
    )
    backoff: Duration = Field(
        default="5s",
        description="Pause before the first retry, doubled before each further one, e.g. 10s. "
        "Default: 5s.",
    )
    when: list[When] = Field(
        default_factory=list,
        max_length=8,
        description="Conditions on earlier steps; the step runs only if all hold, else it is "
        "Skipped. Default: none, the step always runs.",
    )
    on_failure: OnFailure = OnFailure.STOP
    requires_approval: bool = Field(
        default=False,
        description="Wait for an Approved entry for this step in the Incident's "
        "spec.approvals before running; Rejected stops the runbook. A wait longer than "
        "spec.safety.approvalTimeout escalates. Default: false.",
    )


class PostgresTarget(Model):
    """The PostgreSQL database the postgres* actions connect to, as the operator reaches it."""

    host: Annotated[str, StringConstraints(min_length=1, max_length=253)] = Field(
        description="Host name or address, e.g. postgres.demo.svc."
    )
    port: int = Field(default=5432, ge=1, le=65535, description="TCP port. Default: 5432.")
    database: Annotated[str, StringConstraints(min_length=1, max_length=63)] = Field(
        description="Database name, e.g. app."
    )
    user: Annotated[str, StringConstraints(min_length=1, max_length=63)] = Field(
        description="Role to connect as; postgresLongQueries and postgresTopStatements see "
        "other roles' queries only if it has pg_read_all_stats."
    )
    password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key that holds the password. Omit for none."
    )
    sslmode: (
        Annotated[
            str,
            StringConstraints(pattern=r"^(disable|allow|prefer|require|verify-ca|verify-full)$"),
        ]
        | None
    ) = Field(
        default=None,
        description="libpq sslmode: disable, allow, prefer, require, verify-ca or verify-full. "
        "Default: verify-full when caSecretRef is set (TLS, the server's certificate signed by "
        "that CA and naming host), else prefer. verify-full without caSecretRef trusts the "
        "system's CAs.",
    )
    ca_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key that holds the CA certificate(s), PEM, that signed the "
        "server's certificate; sslmode then defaults to verify-full.",
    )

    def effective_sslmode(self) -> str:
        """The sslmode to connect with: as set, else verify-full with a CA, else prefer."""
        if self.sslmode is not None:
            return self.sslmode
        return "verify-full" if self.ca_secret_ref is not None else "prefer"


class RedisTarget(Model):
    """The Redis server the redis* actions connect to."""

    host: Annotated[str, StringConstraints(min_length=1, max_length=253)] = Field(
        description="Host name or address, e.g. redis.demo.svc."
    )
    port: int = Field(default=6379, ge=1, le=65535, description="TCP port. Default: 6379.")
    db: int = Field(
        default=0,
        ge=0,
        le=15,
        description="Database number (0-15) the actions use; redisFlushDb empties only this "
        "one. Default: 0.",
    )
    password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key that holds the password (AUTH). Omit for none."
    )
    tls: bool | None = Field(
        default=None,
        description="Connect with TLS, verifying the server's certificate and that it names "
        "host, against caSecretRef or else the system's CAs. Default: true when caSecretRef "
        "is set, else false.",
    )
    ca_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key that holds the CA certificate(s), PEM, that signed the "
        "server's certificate; implies tls.",
    )

    def uses_tls(self) -> bool:
        """Whether to connect with TLS: as set, else when a CA is given."""
        return self.tls if self.tls is not None else self.ca_secret_ref is not None


class HttpTarget(Model):
    """The HTTP service httpCheck probes."""

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2048)] = Field(
        description="http:// or https:// URL that each httpCheck path is appended to, e.g. "
        "http://dashboard.demo.svc:8080."
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key whose value is sent as the X-API-Key header; it is masked in "
        "the step's output. Omit for no header.",
    )


class PrometheusTarget(Model):
    """The Prometheus server prometheusQuery asks."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2048)] = Field(
        description="Base URL; the query goes to its /api/v1/query, e.g. http://prometheus:9090."
    )


class Targets(Model):
    """Connections the steps use; credentials come only from Secrets."""

    postgres: PostgresTarget | None = Field(
        default=None, description="Needed by the postgres* actions."
    )
    redis: RedisTarget | None = Field(default=None, description="Needed by the redis* actions.")
    http: HttpTarget | None = Field(default=None, description="Needed by httpCheck.")
    prometheus: PrometheusTarget | None = Field(
        default=None, description="Needed by prometheusQuery."
    )


class Safety(Model):
    """Limits on the actions that change state ([changes state] in action.type). On one
    target (a workload, a database, a Redis server, a Job step) only one runs at a time,
    across all incidents: a step whose target is taken waits for it."""

    cooldown: Duration = Field(
        default="10m",
        description="Minimum time between two runs of the same action on one target, e.g. "
        "5m: a step that comes sooner fails (CooldownActive) and the incident escalates. "
        "Another action, such as a rollback after a restart, may follow at once. Default: 10m.",
    )
    max_attempts_per_target: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Actions that change state allowed on one target within max(cooldown x "
        "this, 1h); one more fails (MaxAttemptsReached) and the incident escalates (1-20). "
        "Default: 3.",
    )
    approval_timeout: Duration = Field(
        default="15m",
        description="Escalate when a step with requiresApproval waits longer than this, e.g. "
        "30m. Default: 15m.",
    )


class RunbookSpec(Model):
    """A runbook: which incidents it answers (match), what to check (diagnosis) and what to
    do (recovery), with the targets and safety limits the steps use."""

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

    title: ShortText = Field(description="One line, e.g. Dashboard Service Outage.")
    description: LongText | None = Field(
        default=None, description="What the runbook is for, for people."
    )
    match: Match = Field(default_factory=Match)
    severity: int | None = Field(
        default=None,
        ge=1,
        le=4,
        description="Severity (1 CRITICAL - 4 LOW) of a matched Incident that sets neither "
        "spec.severity nor an impact signal.",
    )
    rto: Rto
    targets: Targets = Field(default_factory=Targets)
    diagnosis: list[Step] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Checks run first, in order (max 32). The messages of the failed ones "
        "become status.diagnosis.suspectedCause; give them onFailure: Continue so one failed "
        "check does not stop the rest.",
    )
    recovery: list[Step] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Steps that mitigate, run in order after diagnosis (max 32). When all "
        "have run, the incident is Mitigated and its time to recover is measured.",
    )
    safety: Safety = Field(default_factory=Safety)
    service_account_name: LabelName = Field(
        default=DEFAULT_SERVICE_ACCOUNT,
        description="ServiceAccount in the Runbook's namespace that every Kubernetes action "
        "and Secret read of its steps runs as (with a short-lived token), so a Runbook can do "
        "no more than the namespace's admin granted that account. Bind it to the ClusterRole "
        "incident-operator-runbook-actions, or to less. Default: incident-runbook.",
    )


class RunbookStatus(Model):
    """The operator's check of the runbook, beyond what the schema can express."""

    valid: bool | None = Field(
        default=None,
        description="Whether incidents can use it: every when refers to an earlier step and "
        "every action has its target in spec.targets.",
    )
    observed_generation: int | None = Field(
        default=None, description="metadata.generation the check saw."
    )
    step_count: int | None = Field(
        default=None, description="Number of diagnosis and recovery steps."
    )
    message: StatusText | None = Field(
        default=None, description="Runbook is valid, or what is wrong."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="The Valid condition.",
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
