"""Runbook actions on data stores and HTTP endpoints: PostgreSQL, Redis, HTTP checks,
Prometheus queries, and the wait."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from .action_base import ActionModel, Comparison, Regex, SqlIdentifier, Target
from .base import Duration, StrEnum

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
