"""Which Runbook answers an Incident: the one it names, else the best valid match."""

from __future__ import annotations

import dataclasses

from ..durations import parse_duration
from ..models.incident import IncidentSpec
from ..models.objects import RunbookObject
from ..models.runbook import Match
from .story import RunbookChoice


@dataclasses.dataclass(frozen=True)
class Candidate:
    runbook: RunbookObject
    valid: bool
    problem: str = ""


def score(match: Match, spec: IncidentSpec) -> int | None:
    """How well a runbook fits, or None when it does not apply.

    Labels are a filter: all must hold. Alert names, services and symptom keywords are
    signals: at least one must hit, and more specific hits score higher.
    """
    source = spec.source
    labels = source.labels if source else {}
    if any(labels.get(k) != v for k, v in match.labels.items()):
        return None
    total = 0
    if source is not None and source.alert_name and source.alert_name in match.alert_names:
        total += 20
    if spec.service in match.services:
        total += 10
    text = " ".join([spec.summary, spec.description or "", *spec.symptoms]).lower()
    total += 3 * sum(1 for keyword in match.symptoms if keyword.lower() in text)
    return total or None


def _choice(runbook: RunbookObject, reason: str, message: str) -> RunbookChoice:
    return RunbookChoice(
        name=runbook.metadata.name,
        reason=reason,
        message=message,
        severity=runbook.spec.severity,
        rto_seconds=parse_duration(runbook.spec.rto.mitigation),
    )


def choose(spec: IncidentSpec, candidates: list[Candidate]) -> RunbookChoice:
    if spec.runbook:
        named = next((c for c in candidates if c.runbook.metadata.name == spec.runbook), None)
        if named is None:
            return RunbookChoice(None, "RunbookNotFound", f"Runbook {spec.runbook} does not exist")
        if not named.valid:
            return RunbookChoice(
                None, "RunbookInvalid", f"Runbook {spec.runbook} is invalid: {named.problem}"
            )
        return _choice(named.runbook, "RunbookSelected", f"Runbook {spec.runbook} (named)")
    scored = [
        (points, c.runbook.metadata.name, c)
        for c in candidates
        if c.valid and (points := score(c.runbook.spec.match, spec)) is not None
    ]
    if not scored:
        return RunbookChoice(
            None, "NoMatchingRunbook", f"No valid Runbook matches service {spec.service}"
        )
    # Highest score wins; on a tie the alphabetically first name, so the choice is stable.
    points, name, best = min(scored, key=lambda item: (-item[0], item[1]))
    return _choice(best.runbook, "RunbookSelected", f"Runbook {name} matched (score {points})")
