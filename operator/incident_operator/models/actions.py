"""The runbook action catalog: one typed model per action, joined in a discriminated union.

Every command of the playbook's runbooks and recovery procedures has an equivalent here.
Parameter names are shared across actions where they mean the same thing (``workload``,
``olderThan``, ``threshold``), because the CRD merges all of them into one structural schema.

Every model, field and enum value is described here: the descriptions are what
``kubectl explain runbook.spec.recovery.action`` prints. A parameter shared by several actions
either has one description that holds for all of them, or the CRD generator joins each
action's own description (see ``crdgen``). An action's docstring becomes its entry in the
description of ``type``.
"""

from __future__ import annotations

import enum
import operator
import typing
from collections.abc import Callable
from typing import Annotated, ClassVar, Literal, Protocol

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, model_validator

from .base import Duration, LabelName, Model, ResourceName, SecretKeyRef, StrEnum
from .patterns import check_pattern

#: An RE2 pattern (see ``models.patterns``): refused when the Runbook is validated if RE2
#: cannot compile it or it is too large.
Regex = Annotated[
    str, StringConstraints(min_length=1, max_length=512), AfterValidator(check_pattern)
]
Quantity = Annotated[
    str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$", max_length=32)
]
Command = Annotated[
    list[
        Annotated[
            str,
            StringConstraints(min_length=1, max_length=1024),
            Field(description="One argument, passed as is (no shell, no quoting)."),
        ]
    ],
    Field(min_length=1, max_length=64),
]
SqlIdentifier = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$", max_length=63)
]

WAIT = (
    "Wait for the rollout to complete (every replica updated, ready and available) before the "
    "step succeeds; a rollout that does not complete within the step's timeout fails the "
    "step. Waiting raises the step's default timeout from 1m to 5m. Default: true."
)


class WorkloadKind(StrEnum):
    """Kind of the workload, in the Incident's namespace. Deployment (the default): a
    Deployment of the apps/v1 API. StatefulSet: a StatefulSet of the apps/v1 API."""

    DEPLOYMENT = "Deployment"
    STATEFULSET = "StatefulSet"


class WorkloadRef(Model):
    """The workload the action reads or changes: a Deployment or StatefulSet in the
    Incident's namespace. Pods are found through the workload's selector; logs and exec use
    its newest Ready pod."""

    kind: WorkloadKind = WorkloadKind.DEPLOYMENT
    name: ResourceName = Field(description="Name of the workload, e.g. dashboard.")


class Comparison(StrEnum):
    """How a value is compared with the threshold (value on the left): ">" greater than,
    ">=" greater than or equal, "<" less than, "<=" less than or equal, "==" equal,
    "!=" not equal. Default: ">"."""

    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    EQ = "=="
    NE = "!="

    def holds(self, value: float, threshold: float) -> bool:
        """``value <comparison> threshold``, e.g. 7.5 > 5."""
        return bool(_COMPARISONS[self.value](value, threshold))


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


class ResourceList(Model):
    """Compute resources in Kubernetes quantity notation. An omitted resource is left as it
    is."""

    cpu: Quantity | None = Field(
        default=None, description="CPU in cores or millicores, e.g. 500m, 2."
    )
    memory: Quantity | None = Field(
        default=None, description="Memory in bytes with an optional suffix, e.g. 512Mi, 4Gi."
    )


class Target(enum.Enum):
    """What an action acts on; the safety gate claims one target at a time."""

    NONE = "none"
    WORKLOAD = "workload"
    JOB = "job"
    POSTGRES = "postgres"
    REDIS = "redis"
    HTTP = "http"
    PROMETHEUS = "prometheus"


#: The default time limit of one attempt of a step, and of one that waits for a rollout.
DEFAULT_TIMEOUT = 60.0
ROLLOUT_TIMEOUT = 300.0


class ActionModel(Model):
    """An action type and the facts the engine and the safety gate need about it.

    To add an action: a subclass here (its ``type`` literal, parameters, descriptions and
    facts), a member of the ``Action`` union below, and one ``@executor(TheAction)`` function
    in ``actions/``. Nothing else lists action types: the sets below, the CRD's ``type``
    enum, target keys and timeouts all come from these classes (see README, "Adding an
    action").
    """

    #: Changes or destroys state: approvals, cooldowns, attempt limits and dry runs apply.
    destructive: ClassVar[bool] = False
    #: Safe to run again when an operator restart interrupted it mid-way.
    idempotent: ClassVar[bool] = True
    #: What the action acts on (Targets entry, workload, Job or nothing).
    target: ClassVar[Target] = Target.NONE

    @classmethod
    def type_name(cls) -> str:
        """The value of ``type`` that selects this action in a Runbook."""
        (name,) = typing.get_args(cls.model_fields["type"].annotation)
        return str(name)

    def default_timeout(self) -> float:
        """A step's time limit when it sets none: longer when it waits for a rollout."""
        return ROLLOUT_TIMEOUT if getattr(self, "wait", False) else DEFAULT_TIMEOUT

    def target_key(self, step_name: str, targets: Targets, namespace: str) -> str:
        """The name of what this action acts on, shared by every action on the same thing:
        a workload or Job of the namespace, or a server that namespaces may share."""
        if self.target is Target.JOB:
            # each Job step is its own target (restore, check)
            return f"{namespace}-job-{step_name}"
        workload = getattr(self, "workload", None)
        if isinstance(workload, WorkloadRef):
            return f"{namespace}-{workload.kind.value}-{workload.name}".lower()
        connection = getattr(targets, self.target.value, None) if self.target.value else None
        host, port = getattr(connection, "host", None), getattr(connection, "port", None)
        if host is not None:
            return f"{self.target.value}-{host}-{port}"
        return f"{namespace}-{self.type_name()}".lower()


class Targets(Protocol):
    """The runbook's connections, as far as target keys need them (models.runbook.Targets)."""

    @property
    def postgres(self) -> object | None: ...

    @property
    def redis(self) -> object | None: ...


# --- Kubernetes -------------------------------------------------------------------------------


class RestartWorkload(ActionModel):
    """``kubectl rollout restart`` of the workload, then wait for the rollout (playbook:
    restart service)."""

    destructive = True
    idempotent = False
    target = Target.WORKLOAD

    type: Literal["restartWorkload"]
    workload: WorkloadRef
    wait: bool = Field(default=True, description=WAIT)


class ScaleWorkload(ActionModel):
    """``kubectl scale`` of the workload to a number of replicas (playbook: --scale
    dashboard=2)."""

    destructive = True
    target = Target.WORKLOAD

    type: Literal["scaleWorkload"]
    workload: WorkloadRef
    replicas: int = Field(
        ge=0, le=1000, description="The number of replicas to run (0-1000). Required."
    )
    wait: bool = Field(default=True, description=WAIT)


class RollbackDeployment(ActionModel):
    """``kubectl rollout undo`` of a Deployment: back to the previous (or a given) ReplicaSet
    revision. Deployments only."""

    destructive = True
    idempotent = False
    target = Target.WORKLOAD

    type: Literal["rollbackDeployment"]
    workload: WorkloadRef
    to_revision: int | None = Field(
        default=None,
        ge=1,
        description="The revision to roll back to (the ReplicaSet's deployment.kubernetes.io/"
        "revision). Default: the newest older revision that runs other images than the "
        "current one, else the previous revision.",
    )
    wait: bool = Field(default=True, description=WAIT)


class SetResources(ActionModel):
    """Change the resource requests and limits of one container of the workload's pod
    template, which rolls the workload out (playbook: docker update --memory 4g). Set
    requests, limits or both."""

    destructive = True
    target = Target.WORKLOAD

    type: Literal["setResources"]
    workload: WorkloadRef
    container: LabelName | None = Field(
        default=None,
        description="Container to change. Default: the first container of the pod template.",
    )
    requests: ResourceList | None = Field(
        default=None, description="Requests to set; other requests are kept."
    )
    limits: ResourceList | None = Field(
        default=None, description="Limits to set; other limits are kept."
    )
    wait: bool = Field(default=True, description=WAIT)


class PodLogs(ActionModel):
    """Read the last log lines of the workload's newest Ready pod and count the lines that
    match a pattern (playbook: logs | grep ERROR). Findings: pod, lines, matches."""

    target = Target.WORKLOAD

    type: Literal["podLogs"]
    workload: WorkloadRef
    container: LabelName | None = Field(
        default=None,
        description="Container to read. Default: the pod's default container.",
    )
    tail_lines: int = Field(
        default=100, ge=1, le=5000, description="How many lines to read from the end. Default: 100."
    )
    pattern: Regex | None = Field(
        default=None,
        description="RE2 regular expression searched in each line, e.g. ERROR|FATAL (no "
        "lookaround or backreferences). Omit to only show the lines.",
    )
    threshold: float | None = Field(
        default=None,
        description="Fail when more lines than this match the pattern. Omit to never fail.",
    )


class WorkloadStatus(ActionModel):
    """Replicas, readiness, revision, image and conditions of the workload (playbook:
    docker-compose ps). Fails when it is not fully ready and available or a condition reports
    a failure."""

    target = Target.WORKLOAD

    type: Literal["workloadStatus"]
    workload: WorkloadRef


class RecentRollouts(ActionModel):
    """Rollouts (revisions) of the workload created within a window, with their images
    (playbook: recent deployments, last 24h). Informational: never fails. Findings: rollouts,
    revisions, latestRevision, image, previousImage, latestAgeSeconds."""

    target = Target.WORKLOAD

    type: Literal["recentRollouts"]
    workload: WorkloadRef
    window: Duration = Field(
        default="24h", description="How far back to look, e.g. 30m, 24h. Default: 24h."
    )


class WarningEvents(ActionModel):
    """Warning events of the workload, its ReplicaSets and its pods within a window.
    Informational: never fails; test the ``warnings`` finding in a later step's ``when``.
    Findings: warnings, occurrences, latestReason."""

    target = Target.WORKLOAD

    type: Literal["warningEvents"]
    workload: WorkloadRef
    window: Duration = Field(
        default="1h", description="How far back to look, e.g. 30m, 24h. Default: 1h."
    )


class ExecInPod(ActionModel):
    """Run an allowlisted command in the workload's newest Ready pod (playbook: docker exec
    ...). Fails on a non-zero exit code. Only commands starting with an allowed argv prefix
    run (default: redis-cli, psql, pg_isready, df -h, du -sh, cat, free -m, uptime, ps aux;
    the operator's INCIDENT_OPERATOR_EXEC_ALLOWLIST replaces it). Findings: pod, exitCode,
    matched."""

    destructive = True
    idempotent = False
    target = Target.WORKLOAD

    type: Literal["execInPod"]
    workload: WorkloadRef
    container: LabelName | None = Field(
        default=None,
        description="Container to run in. Default: the pod's default container.",
    )
    command: Command = Field(
        description='The command as an argv list, e.g. ["redis-cli", "ping"]. Required.'
    )
    pattern: Regex | None = Field(
        default=None,
        description="RE2 regular expression (no lookaround or backreferences); the step "
        "fails unless stdout or stderr matches it, e.g. PONG.",
    )


class EnvVar(Model):
    """An environment variable of the Job's container: a literal value or a Secret key,
    not both."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)] = (
        Field(description="Variable name, e.g. PGHOST.")
    )
    value: Annotated[str, StringConstraints(max_length=1024)] | None = Field(
        default=None, description="Literal value. Never put a secret here: use secretRef."
    )
    secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Take the value from a key of a Secret in the Incident's namespace; the "
        "kubelet injects it, the operator never reads it.",
    )


#: One path segment that is not ``.`` or ``..`` (the API server's regex engine, RE2, has no
#: lookahead, so the two are excluded by their shapes).
_SEGMENT = r"([^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)"
#: An absolute, normalized path: no ``.`` or ``..`` segment, no ``//``, no trailing slash.
ABSOLUTE_PATH = rf"^(/{_SEGMENT})+$"
AbsolutePath = Annotated[str, StringConstraints(pattern=ABSOLUTE_PATH, max_length=1024)]
RelativePath = Annotated[
    str, StringConstraints(pattern=rf"^{_SEGMENT}(/{_SEGMENT})*$", max_length=1024)
]


class HostPathType(StrEnum):
    """What the path must be on the node before the kubelet mounts it. Directory (the
    default): an existing directory. DirectoryOrCreate: a directory, created (mode 0755,
    owned by the kubelet's user) when missing. File: an existing file. FileOrCreate: a file,
    created empty when missing."""

    DIRECTORY = "Directory"
    DIRECTORY_OR_CREATE = "DirectoryOrCreate"
    FILE = "File"
    FILE_OR_CREATE = "FileOrCreate"


class HostPathSource(Model):
    """A file or directory of the node the Job's pod runs on. Allowed only inside a path the
    operator's policy lists in jobs.hostPathAllowlist (empty by default: no hostPath at
    all); a step asking for another path fails without creating the Job."""

    path: AbsolutePath = Field(
        description="Absolute path on the node, without . or .. segments, e.g. /var/backups."
    )
    type: HostPathType = HostPathType.DIRECTORY


class ClaimSource(Model):
    """A PersistentVolumeClaim in the Incident's namespace."""

    claim_name: ResourceName = Field(description="Name of the claim, e.g. backups.")
    read_only: bool = Field(
        default=False, description="Attach the claim's volume read-only. Default: false."
    )


class JobVolume(Model):
    """A volume mounted into the Job's container: a PersistentVolumeClaim or a hostPath
    (exactly one of them) at mountPath."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.persistentVolumeClaim) != has(self.hostPath)",
                    "message": "a volume is either a persistentVolumeClaim or a hostPath",
                }
            ]
        }
    )

    persistent_volume_claim: ClaimSource | None = Field(
        default=None,
        description="Mount this PersistentVolumeClaim of the Incident's namespace.",
    )
    host_path: HostPathSource | None = Field(
        default=None,
        description="Mount this path of the node; only inside the policy's jobs.hostPathAllowlist.",
    )
    mount_path: AbsolutePath = Field(
        description="Where the volume appears in the container, e.g. /backup. Required."
    )
    sub_path: RelativePath | None = Field(
        default=None,
        description="Mount only this relative path inside the volume, e.g. daily. Default: "
        "the whole volume.",
    )
    read_only: bool = Field(
        default=False, description="Mount read-only in the container. Default: false."
    )

    @model_validator(mode="after")
    def _one_source(self) -> JobVolume:
        if (self.persistent_volume_claim is None) == (self.host_path is None):
            raise ValueError("a volume is either a persistentVolumeClaim or a hostPath")
        return self


class PullPolicy(StrEnum):
    """When the kubelet pulls the Job's image. IfNotPresent (the default): only when the
    node does not have it. Never: never; the image must already be on the node (images
    built or loaded there without a registry)."""

    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class JobSecurityContext(Model):
    """The user and group the Job's container runs as, e.g. one that may read the mounted
    backups. Omitted fields keep the image's defaults."""

    run_as_user: int | None = Field(
        default=None, ge=0, le=2147483647, description="User ID to run as, e.g. 999."
    )
    run_as_group: int | None = Field(
        default=None, ge=0, le=2147483647, description="Primary group ID to run as, e.g. 999."
    )


class RunJob(ActionModel):
    """Run a one-off Job in the Incident's namespace, wait for it within the step's timeout,
    report its log tail and delete it (playbook: restore from backup, integrity check).
    Fails when the Job fails or does not finish in time. Findings: job, succeeded, timedOut,
    durationSeconds, exitCode."""

    destructive = True
    idempotent = False
    target = Target.JOB

    type: Literal["runJob"]
    image: Annotated[str, StringConstraints(min_length=1, max_length=512)] = Field(
        description="Container image of the Job, e.g. postgres:15. Required."
    )
    command: Command = Field(
        description='The container\'s command as an argv list, e.g. ["pg_restore", "-d", '
        '"app", "/backup/latest.dump"]. Required.'
    )
    env: list[EnvVar] = Field(
        default_factory=list, max_length=32, description="Environment of the container (max 32)."
    )
    backoff_limit: int = Field(
        default=0,
        ge=0,
        le=6,
        description="Retries of a failed pod by the Job controller (0-6). Default: 0.",
    )
    volumes: list[JobVolume] = Field(
        default_factory=list,
        max_length=8,
        description="Volumes mounted into the container (max 8): PersistentVolumeClaims, or "
        "hostPaths inside the policy's jobs.hostPathAllowlist.",
    )
    host_network: bool = Field(
        default=False,
        description="Run the pod in the node's network namespace, e.g. to reach a server "
        "listening on 127.0.0.1 of the node. Default: false.",
    )
    image_pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    security_context: JobSecurityContext | None = Field(
        default=None,
        description="User and group of the container. Default: the image's.",
    )

    def host_paths(self) -> list[str]:
        """The node paths the Job would mount, for the policy's allowlist."""
        return [v.host_path.path for v in self.volumes if v.host_path is not None]


# --- PostgreSQL -------------------------------------------------------------------------------


class PostgresPing(ActionModel):
    """``SELECT 1`` against spec.targets.postgres (playbook: psql -c "SELECT 1"). Fails
    when the database cannot be reached. Findings: latencyMs, serverVersion."""

    target = Target.POSTGRES

    type: Literal["postgresPing"]


class PostgresLongQueries(ActionModel):
    """Queries running longer than ``olderThan``, from pg_stat_activity of
    spec.targets.postgres. Findings: longQueries, longestSeconds, hiddenSessions."""

    target = Target.POSTGRES

    type: Literal["postgresLongQueries"]
    older_than: Duration = Field(
        default="10m",
        description="Queries running longer than this count as long, e.g. 5m. Default: 10m.",
    )
    threshold: float | None = Field(
        default=None,
        description="Fail when more than this many queries run long. Omit to never fail.",
    )


class PostgresBlockedLocks(ActionModel):
    """Ungranted locks and who blocks them, from pg_locks of spec.targets.postgres
    (playbook: SELECT * FROM pg_locks WHERE NOT granted). Findings: blockedLocks,
    longestWaitSeconds."""

    target = Target.POSTGRES

    type: Literal["postgresBlockedLocks"]
    threshold: float | None = Field(
        default=None,
        description="Fail when more than this many lock requests wait. Omit to never fail.",
    )


class PostgresTopStatements(ActionModel):
    """Top statements by total execution time, from pg_stat_statements of
    spec.targets.postgres (the extension must be installed). Informational: never fails.
    Findings: statements, topTotalMs, topMeanMs."""

    target = Target.POSTGRES

    type: Literal["postgresTopStatements"]
    limit: int = Field(
        default=10, ge=1, le=100, description="How many entries to show (1-100). Default: 10."
    )


class PostgresDatabaseSize(ActionModel):
    """Size of the database of spec.targets.postgres (playbook: df -h
    /var/lib/postgresql/data). Findings: sizeMiB."""

    target = Target.POSTGRES

    type: Literal["postgresDatabaseSize"]
    threshold: float | None = Field(
        default=None, description="Fail when the database is larger than this many MiB."
    )


class PostgresTerminateBackends(ActionModel):
    """``pg_terminate_backend`` of the client sessions of spec.targets.postgres whose query
    runs longer than ``olderThan``; never idle sessions, background workers or the operator's
    own. Findings: terminated, candidates, failed."""

    destructive = True
    target = Target.POSTGRES

    type: Literal["postgresTerminateBackends"]
    older_than: Duration = Field(
        default="10m",
        description="Terminate sessions whose query runs longer than this, e.g. 5m. Default: 10m.",
    )


class MaintenanceOperation(StrEnum):
    """The maintenance statement to run. Reindex: REINDEX (rebuild indexes). Analyze: ANALYZE
    (refresh the planner's statistics)."""

    REINDEX = "Reindex"
    ANALYZE = "Analyze"


class PostgresMaintenance(ActionModel):
    """``REINDEX`` or ``ANALYZE`` of the database of spec.targets.postgres or of one table.
    Findings: durationMs."""

    destructive = True
    target = Target.POSTGRES

    type: Literal["postgresMaintenance"]
    operation: MaintenanceOperation
    table: SqlIdentifier | None = Field(
        default=None, description="Table name. Omit for the whole database."
    )


class PostgresCreateIndex(ActionModel):
    """``CREATE INDEX CONCURRENTLY IF NOT EXISTS`` on spec.targets.postgres, then ``ANALYZE``
    of the table. An invalid index of that name is rebuilt; one with other columns is an
    error. Findings: created, rebuiltInvalid, durationMs."""

    destructive = True
    target = Target.POSTGRES

    type: Literal["postgresCreateIndex"]
    table: SqlIdentifier = Field(description="Table name. Required.")
    columns: list[Annotated[SqlIdentifier, Field(description="A column name.")]] = Field(
        min_length=1, max_length=16, description="Indexed columns, in order (1-16). Required."
    )
    index_name: SqlIdentifier = Field(description="Name of the index. Required.")


# --- Redis ------------------------------------------------------------------------------------


class RedisInfo(ActionModel):
    """``INFO memory`` and ``INFO stats`` of spec.targets.redis: used against max memory,
    hit rate, evictions. Findings: usedMemory, maxMemory, usedMemoryPercent, hitRate,
    keyspaceHits, keyspaceMisses, evictedKeys."""

    target = Target.REDIS

    type: Literal["redisInfo"]
    max_memory_percent: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Fail when memory use exceeds this percentage (0-100) of maxmemory. Omit "
        "to never fail; without a maxmemory limit it does not apply.",
    )


class RedisDbSize(ActionModel):
    """``DBSIZE`` of spec.targets.redis: the number of keys. Findings: keys."""

    target = Target.REDIS

    type: Literal["redisDbSize"]


class RedisSlowlog(ActionModel):
    """``SLOWLOG GET`` of spec.targets.redis: the slowest recent commands, shown without
    their values. Informational: never fails. Findings: slowlogEntries, slowestMs."""

    target = Target.REDIS

    type: Literal["redisSlowlog"]
    limit: int = Field(
        default=10, ge=1, le=100, description="How many entries to show (1-100). Default: 10."
    )


class RedisFlushDb(ActionModel):
    """``FLUSHDB`` of the database of spec.targets.redis (never ``FLUSHALL``): every key
    of that database is deleted. Findings: keysRemoved, keys."""

    destructive = True
    target = Target.REDIS

    type: Literal["redisFlushDb"]


# --- HTTP and Prometheus -----------------------------------------------------------------------


class HttpCheck(ActionModel):
    """GET spec.targets.http.baseUrl + path: expected status, latency and body (playbook:
    curl /health). Fails on any mismatch or no response in time. Findings: statusCode,
    latencyMs, timedOut, patternMatched."""

    target = Target.HTTP

    type: Literal["httpCheck"]
    path: Annotated[str, StringConstraints(pattern=r"^/", max_length=1024)] = Field(
        default="/health",
        description="Path appended to the target's baseUrl, with any query. Default: /health.",
    )
    expect_status: int = Field(
        default=200, ge=100, le=599, description="The expected HTTP status code. Default: 200."
    )
    max_latency: Duration | None = Field(
        default=None, description="Fail when the response takes longer, e.g. 2s, 500ms."
    )
    pattern: Regex | None = Field(
        default=None,
        description="RE2 regular expression the response body must match (no lookaround or "
        'backreferences), e.g. "status": ?"ok".',
    )


class PrometheusQuery(ActionModel):
    """A PromQL instant query against spec.targets.prometheus, each series compared with
    a threshold (playbook: error rate > 5 %, p99 > 2000 ms). Findings: value, series,
    matching."""

    target = Target.PROMETHEUS

    type: Literal["prometheusQuery"]
    query: Annotated[str, StringConstraints(min_length=1, max_length=4096)] = Field(
        description="PromQL expression, e.g. "
        "histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m])). Required."
    )
    comparison: Comparison = Comparison.GT
    threshold: float = Field(description="The value each series is compared with. Required.")
    fail_when_true: bool = Field(
        default=True,
        description="True (default): the comparison is a bad signal; the step fails when it "
        "holds for any series and passes when there is no data. False: the comparison must "
        "hold; no data fails the step.",
    )


class Wait(ActionModel):
    """Give a restarted service time to settle (playbook: sleep 30). Never fails."""

    type: Literal["wait"]
    duration: Duration = Field(description="How long to wait, e.g. 30s. Required.")


Action = Annotated[
    RestartWorkload
    | ScaleWorkload
    | RollbackDeployment
    | SetResources
    | PodLogs
    | WorkloadStatus
    | RecentRollouts
    | WarningEvents
    | ExecInPod
    | RunJob
    | PostgresPing
    | PostgresLongQueries
    | PostgresBlockedLocks
    | PostgresTopStatements
    | PostgresDatabaseSize
    | PostgresTerminateBackends
    | PostgresMaintenance
    | PostgresCreateIndex
    | RedisInfo
    | RedisDbSize
    | RedisSlowlog
    | RedisFlushDb
    | HttpCheck
    | PrometheusQuery
    | Wait,
    Field(discriminator="type"),
]

ACTION_TYPES: tuple[type[ActionModel], ...] = typing.get_args(typing.get_args(Action)[0])
#: Actions that change or destroy state: cooldowns, approvals and dry runs apply to them.
DESTRUCTIVE_ACTIONS = frozenset(a.type_name() for a in ACTION_TYPES if a.destructive)
#: Actions that may safely run again after an operator restart interrupted them.
IDEMPOTENT_ACTIONS = frozenset(a.type_name() for a in ACTION_TYPES if a.idempotent)
