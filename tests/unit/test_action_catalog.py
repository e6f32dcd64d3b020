"""Every action describes itself, and the catalog and the executors agree on the list."""

from __future__ import annotations

import pytest

from incident_operator.actions.catalog import EXECUTORS
from incident_operator.models.actions import (
    ACTION_TYPES,
    DESTRUCTIVE_ACTIONS,
    IDEMPOTENT_ACTIONS,
    ActionModel,
    RestartWorkload,
    RunJob,
    Target,
    Wait,
)
from incident_operator.models.runbook import PostgresTarget, RunbookSpec, Targets


def test_every_action_of_the_union_has_an_executor() -> None:
    missing = {a.type_name() for a in ACTION_TYPES} - set(EXECUTORS)
    assert not missing, f"actions without an executor: {sorted(missing)}"


def test_every_executor_runs_an_action_of_the_union() -> None:
    stray = set(EXECUTORS) - {a.type_name() for a in ACTION_TYPES}
    assert not stray, f"executors for no action of the union: {sorted(stray)}"


def test_type_names_are_unique_and_match_the_discriminator() -> None:
    names = [a.type_name() for a in ACTION_TYPES]
    assert len(names) == len(set(names))
    for action in ACTION_TYPES:
        assert issubclass(action, ActionModel)
        assert action.model_fields["type"].annotation is not None


def test_the_sets_come_from_the_classes() -> None:
    assert "restartWorkload" in DESTRUCTIVE_ACTIONS
    assert "restartWorkload" not in IDEMPOTENT_ACTIONS
    assert "wait" in IDEMPOTENT_ACTIONS and "wait" not in DESTRUCTIVE_ACTIONS
    assert {a.type_name() for a in ACTION_TYPES if a.destructive} == DESTRUCTIVE_ACTIONS


@pytest.mark.parametrize("action", ACTION_TYPES, ids=lambda a: a.type_name())
def test_a_destructive_action_names_its_target(action: type[ActionModel]) -> None:
    if action.destructive:
        assert action.target is not Target.NONE


def _spec(action: dict[str, object]) -> RunbookSpec:
    return RunbookSpec.model_validate(
        {
            "title": "t",
            "rto": {"mitigation": "5m"},
            "targets": {"postgres": {"host": "db", "database": "d", "user": "u"}},
            "recovery": [{"name": "s", "action": action}],
        }
    )


def test_target_keys() -> None:
    targets = Targets(postgres=PostgresTarget(host="db", port=5433, database="d", user="u"))
    workload = {"kind": "StatefulSet", "name": "dashboard"}
    restart = RestartWorkload(type="restartWorkload", workload=workload)
    assert restart.target_key("restart", targets, "ns") == "ns-statefulset-dashboard"
    job = RunJob(type="runJob", image="busybox", command=["true"])
    assert job.target_key("restore", targets, "ns") == "ns-job-restore"
    terminate = _spec({"type": "postgresTerminateBackends", "olderThan": "5m"})
    # a server is shared across namespaces: its key names no namespace
    assert terminate.recovery[0].action.target_key("kill", targets, "ns") == "postgres-db-5433"
    assert Wait(type="wait", duration="1s").target_key("w", targets, "ns") == "ns-wait"


def test_timeouts_follow_waiting() -> None:
    waits = RestartWorkload(type="restartWorkload", workload={"name": "d"})
    quick = RestartWorkload(type="restartWorkload", workload={"name": "d"}, wait=False)
    assert waits.default_timeout() > quick.default_timeout()
