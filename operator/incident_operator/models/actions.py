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

import typing
from typing import Annotated

from pydantic import Field

from .action_base import *  # noqa: F403  (one import point for every action name)
from .action_base import ActionModel
from .actions_data import *  # noqa: F403
from .actions_data import (
    HttpCheck,
    PostgresBlockedLocks,
    PostgresCreateIndex,
    PostgresDatabaseSize,
    PostgresLongQueries,
    PostgresMaintenance,
    PostgresPing,
    PostgresTerminateBackends,
    PostgresTopStatements,
    PrometheusQuery,
    RedisDbSize,
    RedisFlushDb,
    RedisInfo,
    RedisSlowlog,
    Wait,
)
from .actions_kubernetes import *  # noqa: F403
from .actions_kubernetes import (
    ExecInPod,
    PodLogs,
    RecentRollouts,
    RestartWorkload,
    RollbackDeployment,
    RunJob,
    ScaleWorkload,
    SetResources,
    WarningEvents,
    WorkloadStatus,
)

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
