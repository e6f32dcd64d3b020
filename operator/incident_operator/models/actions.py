"""The runbook action catalog: one typed model per action, joined in a discriminated union.

Every command of the playbook's runbooks and recovery procedures has an equivalent here.
Parameter names are shared across actions where they mean the same thing (``workload``,
``olderThan``, ``threshold``), because the CRD merges all of them into one structural schema.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from .base import Duration, LabelName, Model, ResourceName, SecretKeyRef, StrEnum

Regex = Annotated[str, StringConstraints(min_length=1, max_length=512)]
Quantity = Annotated[
    str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$", max_length=32)
]
Command = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=1024)]],
    Field(min_length=1, max_length=64),
]
SqlIdentifier = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$", max_length=63)
]


class WorkloadKind(StrEnum):
    DEPLOYMENT = "Deployment"
    STATEFULSET = "StatefulSet"


class WorkloadRef(Model):
    kind: WorkloadKind = WorkloadKind.DEPLOYMENT
    name: ResourceName


class Comparison(StrEnum):
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    EQ = "=="
    NE = "!="


class ResourceList(Model):
    cpu: Quantity | None = None
    memory: Quantity | None = None


# --- Kubernetes -------------------------------------------------------------------------------


class RestartWorkload(Model):
    """``kubectl rollout restart`` and wait for the rollout (playbook: restart service)."""

    type: Literal["restartWorkload"]
    workload: WorkloadRef
    wait: bool = True


class ScaleWorkload(Model):
    """``kubectl scale`` (playbook: --scale dashboard=2)."""

    type: Literal["scaleWorkload"]
    workload: WorkloadRef
    replicas: int = Field(ge=0, le=1000)
    wait: bool = True


class RollbackDeployment(Model):
    """``kubectl rollout undo``: back to the previous (or a given) ReplicaSet revision."""

    type: Literal["rollbackDeployment"]
    workload: WorkloadRef
    to_revision: int | None = Field(default=None, ge=1)
    wait: bool = True


class SetResources(Model):
    """Change requests and limits of one container (playbook: docker update --memory 4g)."""

    type: Literal["setResources"]
    workload: WorkloadRef
    container: LabelName | None = None
    requests: ResourceList | None = None
    limits: ResourceList | None = None
    wait: bool = True


class PodLogs(Model):
    """Tail pod logs and count lines matching a pattern (playbook: logs | grep ERROR)."""

    type: Literal["podLogs"]
    workload: WorkloadRef
    container: LabelName | None = None
    tail_lines: int = Field(default=100, ge=1, le=5000)
    pattern: Regex | None = None
    threshold: float | None = Field(
        default=None, description="Fail when more lines than this match."
    )


class WorkloadStatus(Model):
    """Replicas, readiness and conditions (playbook: docker-compose ps)."""

    type: Literal["workloadStatus"]
    workload: WorkloadRef


class RecentRollouts(Model):
    """Rollouts within a window (playbook: recent deployments, last 24h)."""

    type: Literal["recentRollouts"]
    workload: WorkloadRef
    window: Duration = "24h"


class WarningEvents(Model):
    """Warning events of the workload and its pods."""

    type: Literal["warningEvents"]
    workload: WorkloadRef
    window: Duration = "1h"


class ExecInPod(Model):
    """Run an allowlisted command in one pod of the workload (playbook: docker exec ...)."""

    type: Literal["execInPod"]
    workload: WorkloadRef
    container: LabelName | None = None
    command: Command
    pattern: Regex | None = Field(
        default=None, description="Fail unless the output matches this pattern."
    )


class EnvVar(Model):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
    value: Annotated[str, StringConstraints(max_length=1024)] | None = None
    secret_ref: SecretKeyRef | None = None


class RunJob(Model):
    """Run a Job and wait for it (playbook: restore from backup, integrity check)."""

    type: Literal["runJob"]
    image: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    command: Command
    env: list[EnvVar] = Field(default_factory=list, max_length=32)
    backoff_limit: int = Field(default=0, ge=0, le=6)


# --- PostgreSQL -------------------------------------------------------------------------------


class PostgresPing(Model):
    """``SELECT 1`` (playbook: psql -c "SELECT 1")."""

    type: Literal["postgresPing"]


class PostgresLongQueries(Model):
    """Queries running longer than a threshold, from pg_stat_activity."""

    type: Literal["postgresLongQueries"]
    older_than: Duration = "10m"
    threshold: float | None = Field(default=None, description="Fail above this count.")


class PostgresBlockedLocks(Model):
    """Ungranted locks, from pg_locks (playbook: SELECT * FROM pg_locks WHERE NOT granted)."""

    type: Literal["postgresBlockedLocks"]
    threshold: float | None = Field(default=None, description="Fail above this count.")


class PostgresTopStatements(Model):
    """Top statements by total time, from pg_stat_statements."""

    type: Literal["postgresTopStatements"]
    limit: int = Field(default=10, ge=1, le=100)


class PostgresDatabaseSize(Model):
    """Database size (playbook: df -h /var/lib/postgresql/data)."""

    type: Literal["postgresDatabaseSize"]
    threshold: float | None = Field(default=None, description="Fail above this many MiB.")


class PostgresTerminateBackends(Model):
    """``pg_terminate_backend`` for queries older than a threshold."""

    type: Literal["postgresTerminateBackends"]
    older_than: Duration = "10m"


class MaintenanceOperation(StrEnum):
    REINDEX = "Reindex"
    ANALYZE = "Analyze"


class PostgresMaintenance(Model):
    """``REINDEX`` or ``ANALYZE`` of the database or one table."""

    type: Literal["postgresMaintenance"]
    operation: MaintenanceOperation
    table: SqlIdentifier | None = None


class PostgresCreateIndex(Model):
    """``CREATE INDEX CONCURRENTLY IF NOT EXISTS`` then ``ANALYZE``."""

    type: Literal["postgresCreateIndex"]
    table: SqlIdentifier
    columns: list[SqlIdentifier] = Field(min_length=1, max_length=16)
    index_name: SqlIdentifier


# --- Redis ------------------------------------------------------------------------------------


class RedisInfo(Model):
    """``INFO memory`` and ``INFO stats``: used vs max memory, hit rate."""

    type: Literal["redisInfo"]
    max_memory_percent: float | None = Field(
        default=None, ge=0, le=100, description="Fail when memory use exceeds this % of max."
    )


class RedisDbSize(Model):
    type: Literal["redisDbSize"]


class RedisSlowlog(Model):
    type: Literal["redisSlowlog"]
    limit: int = Field(default=10, ge=1, le=100)


class RedisFlushDb(Model):
    """``FLUSHDB`` of the runbook's Redis target."""

    type: Literal["redisFlushDb"]


# --- HTTP and Prometheus -----------------------------------------------------------------------


class HttpCheck(Model):
    """A health check with expected status and latency (playbook: curl /health)."""

    type: Literal["httpCheck"]
    path: Annotated[str, StringConstraints(pattern=r"^/", max_length=1024)] = "/health"
    expect_status: int = Field(default=200, ge=100, le=599)
    max_latency: Duration | None = None
    pattern: Regex | None = Field(default=None, description="Body must match this pattern.")


class PrometheusQuery(Model):
    """An instant query compared to a threshold (error rate > 5 %, p99 > 2000 ms)."""

    type: Literal["prometheusQuery"]
    query: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    comparison: Comparison = Comparison.GT
    threshold: float
    fail_when_true: bool = Field(
        default=True, description="The step fails when the comparison holds (a bad signal)."
    )


class Wait(Model):
    """Give a restarted service time to settle (playbook: sleep 30)."""

    type: Literal["wait"]
    duration: Duration


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

#: Actions that change or destroy state: cooldowns and approvals apply to them.
DESTRUCTIVE_ACTIONS = frozenset(
    {
        "restartWorkload",
        "scaleWorkload",
        "rollbackDeployment",
        "setResources",
        "execInPod",
        "runJob",
        "postgresTerminateBackends",
        "postgresMaintenance",
        "postgresCreateIndex",
        "redisFlushDb",
    }
)

#: Actions that may safely run again after an operator restart interrupted them.
IDEMPOTENT_ACTIONS = frozenset(
    {
        "scaleWorkload",
        "setResources",
        "podLogs",
        "workloadStatus",
        "recentRollouts",
        "warningEvents",
        "postgresPing",
        "postgresLongQueries",
        "postgresBlockedLocks",
        "postgresTopStatements",
        "postgresDatabaseSize",
        "postgresTerminateBackends",
        "postgresMaintenance",
        "postgresCreateIndex",
        "redisInfo",
        "redisDbSize",
        "redisSlowlog",
        "redisFlushDb",
        "httpCheck",
        "prometheusQuery",
        "wait",
    }
)
