"""The alerts an Incident was opened from, as the operator records them in its status.

One Incident stands for one problem: the alerts of one Alertmanager group (and of groups the
correlation merged into it) join it. The lists are bounded; the counts are not.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field, StringConstraints

from .base import Model, StatusKey, StatusRef, StatusShortName

#: Alert groups one Incident keeps (the first ones; later merges only count).
MAX_GROUPS = 16
#: Alerts listed per Incident (the first ones seen); ``total`` counts all of them.
MAX_ALERTS = 20

AlertName = StatusRef
Hex = Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9a-f]*$")]


class AlertGroup(Model):
    """One Alertmanager aggregation group whose alerts joined the Incident."""

    key: Hex = Field(
        description="SHA-256 (first 16 hex digits) of the group's groupKey and receiver."
    )
    labels: dict[
        str,
        Annotated[StatusKey, Field(description="The label value.")],
    ] = Field(default_factory=dict, max_length=16, description="The group's groupLabels (max 16).")
    firing: int = Field(default=0, ge=0, description="Firing alerts in its last notification.")
    resolved: int = Field(default=0, ge=0, description="Resolved alerts in its last notification.")
    notifications: int = Field(default=0, ge=0, description="Notifications received for the group.")
    last_notified_at: dt.datetime | None = Field(
        default=None, description="When its last notification arrived."
    )
    resolved_at: dt.datetime | None = Field(
        default=None,
        description="When a notification said every alert of the group resolved; cleared "
        "when one fires again.",
    )


class AlertRecord(Model):
    """One alert of the Incident, as its last notification told it."""

    fingerprint: Hex = Field(description="Alertmanager's fingerprint (or a hash of its labels).")
    alert_name: AlertName = Field(description="The alertname label.")
    state: Annotated[str, StringConstraints(pattern=r"^(firing|resolved)$")] = Field(
        description="firing or resolved."
    )
    starts_at: dt.datetime | None = Field(default=None, description="When it started firing.")
    ends_at: dt.datetime | None = Field(default=None, description="When it resolved.")
    seen: int = Field(default=1, ge=1, description="Notifications that carried it.")


class AlertsStatus(Model):
    """The alerts behind the Incident: its groups, its first alerts, and counts of all."""

    groups: list[AlertGroup] = Field(
        default_factory=list,
        max_length=MAX_GROUPS,
        description="The Alertmanager groups that joined (max 16).",
    )
    groups_merged: int = Field(
        default=0, ge=0, description="Groups merged in beyond the first, by correlation."
    )
    items: list[AlertRecord] = Field(
        default_factory=list,
        max_length=MAX_ALERTS,
        description="The first 20 distinct alerts; total counts them all.",
    )
    total: int = Field(
        default=0, ge=0, description="Distinct alerts in the groups' last notifications."
    )
    firing: int = Field(default=0, ge=0, description="Of those, how many fire.")
    notifications: int = Field(default=0, ge=0, description="Notifications received in all.")
    repeats: int = Field(
        default=0,
        ge=0,
        description="Notifications that brought no new alert and no change of state: counted, "
        "never a new Incident.",
    )
    all_resolved_at: dt.datetime | None = Field(
        default=None,
        description="When every group reported its alerts resolved; cleared when one fires again.",
    )


class MaintenanceHold(Model):
    """A maintenance window of the policy that holds the Incident's remediation."""

    window: StatusShortName = Field(description="The window's name in the policy.")
    until: dt.datetime = Field(description="When the window ends and remediation may go on.")
    step: StatusShortName | None = Field(
        default=None, description="The destructive step that waits for the window's end."
    )
