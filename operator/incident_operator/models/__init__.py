"""Pydantic models of the custom resources: the single source of truth for the CRDs."""

from .incident import Incident, IncidentSpec, IncidentStatus
from .runbook import Runbook, RunbookSpec, RunbookStatus

__all__ = [
    "Incident",
    "IncidentSpec",
    "IncidentStatus",
    "Runbook",
    "RunbookSpec",
    "RunbookStatus",
]
