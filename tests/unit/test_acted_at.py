"""Human acts are timed by when they happened (managedFields), not when they were noticed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from incident_operator.domain.lifecycle import decide
from incident_operator.domain.policy import load_policy
from incident_operator.domain.story import RunbookChoice
from incident_operator.models.objects import IncidentObject, spec_field_times

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
POLICY = load_policy()
CHOICE = RunbookChoice(None, "NoMatchingRunbook", "none")


def _managed(manager: str, at: dt.datetime, *fields: str) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": "Update",
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {f"f:{f}": {} for f in fields}},
    }


def _incident(managed: list[dict[str, Any]], status: dict[str, Any], **spec: Any) -> IncidentObject:
    return IncidentObject.parse(
        {
            "metadata": {
                "name": "i",
                "namespace": "n",
                "uid": "u",
                "creationTimestamp": T0.isoformat(),
                "managedFields": managed,
            },
            "spec": {"service": "s", "summary": "down", "severity": 1, **spec},
            "status": status,
        }
    )


def test_field_times_take_the_newest_writer_and_skip_status() -> None:
    times = spec_field_times(
        [
            _managed("kubectl-create", T0, "service", "summary"),
            _managed("kubectl-patch", T0 + dt.timedelta(seconds=70), "acknowledgedBy"),
            {
                "manager": "op",
                "subresource": "status",
                "time": "2030-01-01T00:00:00Z",
                "fieldsV1": {"f:spec": {"f:service": {}}},
            },
            {"manager": "broken", "time": "not a time", "fieldsV1": {"f:spec": {}}},
        ]
    )
    assert times["spec.service"] == T0
    assert times["spec.acknowledgedBy"] == T0 + dt.timedelta(seconds=70)


def test_a_late_noticed_acknowledgement_keeps_its_own_time_and_breaches_nothing() -> None:
    first = decide(_incident([], {}), POLICY, CHOICE, T0)  # triaged before the ack arrived
    acked = T0 + dt.timedelta(seconds=90)  # within level 1's 2 minutes
    noticed = T0 + dt.timedelta(minutes=4)  # after the deadline, e.g. a slow operator
    managed = [_managed("kubectl-patch", acked, "acknowledgedBy")]
    status = first.status.model_copy(update={"severity": 1})
    acking = _incident(managed, status.to_k8s(), acknowledgedBy="alice")
    later = decide(acking, POLICY, CHOICE, noticed)
    assert later.status.acknowledged_at == acked
    assert later.status.time_to_acknowledge_seconds == 90
    assert not any(c.type == "ResponseSLABreached" for c in later.status.conditions)
