"""What every runbook action shares: its base class and facts, and the parameter types.

The action classes themselves are in ``actions_kubernetes`` and ``actions_data``; the union
of all of them, and the sets derived from it, in ``actions``.
"""

from __future__ import annotations

import enum
import operator
import typing
from collections.abc import Callable
from typing import Annotated, ClassVar, Protocol

from pydantic import AfterValidator, Field, StringConstraints

from .base import Model, ResourceName, StrEnum
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
