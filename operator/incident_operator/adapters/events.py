"""Warning events of a workload, its ReplicaSets and its pods (``kubectl get events
--field-selector type=Warning``, narrowed to what belongs to the workload)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from .client import JSON, KubeClient, parse_time
from .workloads import EPOCH, check_kind, get_workload, now_utc, replica_sets


@dataclasses.dataclass(frozen=True)
class WarningEvent:
    time: dt.datetime
    kind: str
    name: str
    reason: str
    message: str
    count: int


def event_time(event: Mapping[str, Any]) -> dt.datetime:
    """When an Event was last seen (series, lastTimestamp, eventTime or creation)."""
    for value in (
        (event.get("series") or {}).get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        (event.get("metadata") or {}).get("creationTimestamp"),
    ):
        parsed = parse_time(value)
        if parsed is not None:
            return parsed
    return EPOCH


def involvement(
    kind: str, name: str, rs_names: Collection[str]
) -> Callable[[Mapping[str, Any]], bool]:
    """Whether an Event's ``involvedObject`` is the workload, one of its ReplicaSets or one
    of its pods (also pods already gone, recognised by their names)."""
    if kind == "Deployment":
        alternatives = "|".join(re.escape(n) for n in sorted(rs_names))
        pod_pattern = re.compile(f"^({alternatives})-[a-z0-9]+$") if rs_names else None
    else:
        pod_pattern = re.compile("^" + re.escape(name) + r"-[0-9]+$")

    def involved(ref: Mapping[str, Any]) -> bool:
        ref_kind, ref_name = ref.get("kind"), str(ref.get("name", ""))
        if ref_kind == kind:
            return ref_name == name
        if ref_kind == "ReplicaSet":
            return ref_name in rs_names
        if ref_kind == "Pod":
            return bool(pod_pattern and pod_pattern.match(ref_name))
        return False

    return involved


def warning_event(event: Mapping[str, Any]) -> WarningEvent:
    ref = event.get("involvedObject") or {}
    return WarningEvent(
        time=event_time(event),
        kind=str(ref.get("kind", "")),
        name=str(ref.get("name", "")),
        reason=str(event.get("reason", "")),
        message=str(event.get("message", ""))[:512],
        count=int(event.get("count") or (event.get("series") or {}).get("count") or 1),
    )


async def warning_events(
    kube: KubeClient,
    namespace: str,
    kind: str,
    name: str,
    window_s: float,
    now: dt.datetime | None = None,
) -> list[WarningEvent]:
    """Warning events last seen within the window on the workload, its ReplicaSets and
    its pods (including pods already gone), newest first."""
    kind = check_kind(kind)
    obj = await get_workload(kube, namespace, kind, name)
    since = (now or now_utc()) - dt.timedelta(seconds=window_s)
    rs_names: set[str] = set()
    if kind == "Deployment":
        rs_names = {str(rs["metadata"]["name"]) for rs in await replica_sets(kube, namespace, obj)}
    involved = involvement(kind, name, rs_names)
    listing: JSON = await kube.json(
        kube.core.list_namespaced_event, namespace, field_selector="type=Warning", what="Events"
    )
    found = [
        warning_event(event)
        for event in listing.get("items") or []
        if involved(event.get("involvedObject") or {})
    ]
    return sorted((e for e in found if e.time >= since), key=lambda e: e.time, reverse=True)
