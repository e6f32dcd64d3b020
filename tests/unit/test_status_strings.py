"""Every string the operator writes to status is cut to its limit, never refused.

Status fields have maximum lengths (the CRD enforces them), and the models validate every
assignment. A decision that wrote a longer string raised ValidationError on every tick: a
Rejected approval with the longest ``by`` and ``comment``, an Incident naming an invalid
Runbook with a long problem, a failed step's long message with ``onFailure: Escalate``, an
escalation contact longer than a person's name. The Incident then never escalated or notified
again. The status models now cut such strings, ending them in an ellipsis.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import ValidationError

from incident_operator.domain import engine, lifecycle
from incident_operator.domain.policy import load_policy
from incident_operator.domain.results import StepResult
from incident_operator.domain.story import RunbookChoice
from incident_operator.models.base import ELLIPSIS, clamp
from incident_operator.models.incident import Approval, IncidentStatus, StepPhase
from incident_operator.models.objects import IncidentObject
from incident_operator.models.runbook import RunbookSpec, RunbookStatus
from tests.unit.status_schema import longest_status, string_limits

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
POLICY = load_policy()
CHOICE = RunbookChoice("rb", "RunbookSelected", "named", None, 300)
RUNBOOK = RunbookSpec.model_validate(
    {
        "title": "t",
        "rto": {"mitigation": "5m"},
        "recovery": [
            {
                "name": "flush",
                "requiresApproval": True,
                "onFailure": "Escalate",
                "action": {"type": "wait", "duration": "1s"},
            }
        ],
    }
)


def _incident(spec: dict[str, Any] | None = None) -> IncidentObject:
    return IncidentObject.parse(
        {
            "metadata": {
                "name": "i",
                "namespace": "n",
                "uid": "u",
                "generation": 1,
                "creationTimestamp": T0.isoformat(),
            },
            "spec": {"service": "cache", "summary": "cache full", "severity": 2, **(spec or {})},
        }
    )


def _within_limits(status: IncidentStatus) -> None:
    """What the API server would check: every string within the CRD's maxLength."""
    for path, text, limit in string_limits(status.to_k8s(), IncidentStatus):
        assert len(text) <= limit, f"{path}: {len(text)} > {limit}"


def test_clamp_cuts_with_an_ellipsis() -> None:
    assert clamp("abc", 3) == "abc"
    assert clamp("abcd", 3) == "ab" + ELLIPSIS
    assert len(clamp("x" * 5000, 1024)) == 1024


def test_a_rejection_with_the_longest_by_and_comment_stops_the_runbook() -> None:
    approval = Approval.model_validate(
        {"step": "flush", "decision": "Rejected", "by": "b" * 128, "comment": "c" * 1024}
    )
    story = lifecycle.start(_incident(), T0, POLICY)
    level = lifecycle.advance(story, CHOICE)
    assert engine.next_step(story, RUNBOOK, {"flush": approval}, POLICY, level) is None
    status = lifecycle.finish(story).status
    (record,) = status.steps
    assert record.phase == StepPhase.REJECTED
    assert len(record.message) == 1024 and record.message.endswith(ELLIPSIS)
    _within_limits(status)


def test_an_incident_naming_a_runbook_invalid_for_a_long_reason_still_escalates() -> None:
    choice = RunbookChoice(None, "RunbookInvalid", "Runbook rb is invalid: " + "p" * 1024)
    status = lifecycle.decide(_incident(), POLICY, choice, T0).status
    assert status.escalation is not None and status.escalation.level == 1
    assert status.escalation.reason is not None and status.escalation.reason.endswith(ELLIPSIS)
    _within_limits(status)


def test_a_failed_step_with_a_long_message_escalates() -> None:
    story = lifecycle.start(_incident(), T0, POLICY)
    level = lifecycle.advance(story, CHOICE)
    plan = engine.StepToRun(RUNBOOK.recovery[0], "recovery")
    engine.mark_running(story, plan, dry_run=False)
    result = StepResult(False, "m" * 1024, {"finding": "f" * 2000}, "o" * 5000)
    engine.record_result(story, plan, result, POLICY, level)
    status = lifecycle.finish(story).status
    assert status.escalation is not None and status.escalation.reason is not None
    assert status.escalation.reason.startswith("flush failed: mmm")
    _within_limits(status)


def test_an_escalation_contact_longer_than_a_name_is_cut() -> None:
    policy = load_policy(overrides={"escalationChain": ["On-Call " + "x" * 300]})
    later = T0 + dt.timedelta(hours=1)
    status = lifecycle.decide(_incident({"severity": 1}), policy, CHOICE, later).status
    assert status.escalation is not None and len(status.escalation.contacts[0]) == 128
    _within_limits(status)


#: Copied whole from the validated spec (spec.actionItems) or the operator's defaults.
FROM_SPEC = ("review",)


def test_every_string_of_the_incident_status_is_cut_not_refused() -> None:
    """Built from the schema: every string at its limit plus 100; the model cuts them all.

    A new status field with a maxLength must use one of the ``Status*`` types of
    ``models/base.py`` (or this test names it).
    """
    raw = {k: v for k, v in longest_status(IncidentStatus).items() if k not in FROM_SPEC}
    try:
        status = IncidentStatus.model_validate(raw)
    except ValidationError as exc:
        fields = [".".join(str(p) for p in e["loc"]) for e in exc.errors()]
        raise AssertionError(f"refusing long strings, use a Status* type: {fields}") from None
    _within_limits(status)


def test_every_string_of_the_runbook_status_is_cut_not_refused() -> None:
    status = RunbookStatus.model_validate(longest_status(RunbookStatus))
    for path, text, limit in string_limits(status.to_k8s(), RunbookStatus):
        assert len(text) <= limit, f"{path}: {len(text)} > {limit}"
