"""People working an Incident with kubectl: open it, approve the steps that ask, resolve it.

Each act runs as its person (``kubectl --as``), so the API server's checks apply: an approval
or a resolution must name its requester, and approvers need the verb ``approve``. Approvals are
given only once a step asks for one (earlier ones do not count).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from .kube import Kubectl, wait_until

API_VERSION = "incidents.dev/v1alpha1"


class Incidents:
    def __init__(self, kubectl: Kubectl, namespace: str) -> None:
        self.k, self.namespace = kubectl, namespace

    def manifest(
        self, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": name, "namespace": self.namespace}
        if labels:
            metadata["labels"] = labels
        return {"apiVersion": API_VERSION, "kind": "Incident", "metadata": metadata, "spec": spec}

    def open(
        self, name: str, spec: dict[str, Any], by: str, labels: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """``kubectl create -f incident.yaml`` as ``by``; returns the manifest."""
        manifest = self.manifest(name, spec, labels)
        self.k.out("create", "-f", "-", stdin=yaml.safe_dump(manifest), as_user=by)
        return manifest

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.k.json("-n", self.namespace, "get", "incident", name)
        return found

    def status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.get(name).get("status") or {}
        return status

    def steps(self, name: str) -> dict[str, dict[str, Any]]:
        return {step["name"]: step for step in self.status(name).get("steps", [])}

    def patch(self, name: str, spec: dict[str, Any], by: str) -> None:
        body = json.dumps({"spec": spec})
        self.k.out(
            "-n", self.namespace, "patch", "incident", name, "--type", "merge", "-p", body,
            as_user=by,
        )  # fmt: skip

    def approve(self, name: str, step: str, by: str, decision: str = "Approved") -> None:
        """Adds ``{step, decision, by}`` to spec.approvals, keeping the earlier entries."""
        current = self.get(name)["spec"].get("approvals", [])
        entry = {"step": step, "decision": decision, "by": by}
        self.patch(name, {"approvals": [*current, entry]}, by)

    def resolve(self, name: str, by: str, root_cause: str, impact: str = "") -> None:
        resolution = {"resolvedBy": by, "rootCause": root_cause}
        if impact:
            resolution["impact"] = impact
        self.patch(name, {"resolution": resolution}, by)

    def explain(self, name: str) -> str:
        """Phase, steps and the last timeline entries, for messages when something hangs."""
        status = self.status(name)
        lines = [f"{name}: phase={status.get('phase')} runbook={status.get('runbook')}"]
        lines += [
            f"  {s['name']}: {s['phase']} {s.get('message', '')}" for s in status.get("steps", [])
        ]
        lines += [f"  {e['reason']}: {e['message']}" for e in status.get("timeline", [])[-8:]]
        return "\n".join(lines)

    def wait(
        self,
        name: str,
        phases: Iterable[str],
        timeout: float = 300,
        approver: str | None = None,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the Incident's phase is one of ``phases``. With ``approver``, approve
        each step that asks on the way, as that person. ``on_status`` sees every status read."""
        wanted, approved = set(phases), set[str]()

        def progress() -> dict[str, Any] | None:
            status = self.status(name)
            if on_status is not None:
                on_status(status)
            if status.get("phase") in wanted:
                return status
            for step in status.get("steps", []):
                asks = step["phase"] == "AwaitingApproval" and step["name"] not in approved
                if approver and asks:
                    self.approve(name, step["name"], approver)
                    approved.add(step["name"])
            return None

        found: dict[str, Any] = wait_until(
            progress,
            timeout,
            f"incident {name} in {sorted(wanted)}",
            describe=lambda: self.explain(name),
        )
        return found

    def delete(self, selector: str) -> None:
        self.k.out("-n", self.namespace, "delete", "incidents", "-l", selector, "--wait=false")
