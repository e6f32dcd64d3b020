"""The demo: a bad deploy takes the dashboard down and the operator, running in the cluster,
works the playbook's runbook with the people on call.

    python -m incident_demo.story --kubeconfig PATH   (hack/demo.sh does the set-up)

It installs the operator (``kubectl apply -k manifests/overlays/local``), the staging stack
(``manifests/demo``) and the shipped runbooks (``manifests/demo/runbooks``); rolls out a broken
dashboard build; alice, on call, opens an Incident; the runbook restarts the dashboard, which
does not help, and asks for a rollback; bob, the incident commander, approves it; the rollback
brings v1 back; bob resolves the Incident. Then ``kubectl get inc``, ``kubectl describe inc``
and ``incident-operator report``. The cluster and the stack keep running.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from .incidents import Incidents
from .kube import Kubectl, wait_until
from .stack import COMMANDER, NAMESPACE, ONCALL, PORTS, ROOT_ENV, Stack

BROKEN = "localhost/incident-demo-dashboard:v2-broken"


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def show(text: str, indent: str = "    ") -> None:
    for line in text.rstrip().splitlines():
        print(indent + line)
    sys.stdout.flush()


class Story:
    def __init__(self, kubectl: Kubectl, root: Path | None = None) -> None:
        self.k = kubectl
        self.stack = Stack(kubectl, root)
        self.incidents = Incidents(kubectl, NAMESPACE)
        self.name = f"dashboard-down-{time.strftime('%H%M%S')}"
        self.printed = 0

    def run(self) -> None:
        started = time.monotonic()
        with self.stack.exclusive():
            self.install()
            self.break_and_respond()
            self.review()
        say(f"Done in {time.monotonic() - started:.0f} s. The cluster and the stack keep running.")
        show(
            f"dashboard http://127.0.0.1:{PORTS['dashboard']}/health, Prometheus "
            f"http://127.0.0.1:{PORTS['prometheus']}\n"
            f"kubectl --kubeconfig {self.k.kubeconfig} -n {NAMESPACE} get inc,pods\n"
            "Stop everything with: hack/cluster-down.sh"
        )

    # --- set-up ----------------------------------------------------------------------------
    def install(self) -> None:
        say("The operator, as users install it: kubectl apply -k manifests/overlays/local")
        applied = self.stack.install_operator(restart=True)
        changed = [line for line in applied.splitlines() if not line.endswith(" unchanged")]
        show("\n".join(changed) or "(everything unchanged)")
        show(self.k.out("-n", "incident-operator", "get", "pods"))
        forgotten = self.stack.forget_remediations()
        if forgotten:
            show(
                f"(a fresh start: deleted the safety gate's history of earlier runs, "
                f"{len(forgotten)} Leases in incident-operator, so the attempt limits count "
                "this incident only)"
            )

        say("The staging stack: dashboard, PostgreSQL, Redis, Prometheus (manifests/demo)")
        for secret in self.stack.ensure_secrets():
            show(f"created Secret {secret} with random values (kubectl create secret generic)")
        show("kubectl apply -k manifests/demo")
        restarted = self.stack.heal()
        if restarted:
            show(f"(restarted {', '.join(restarted)}: a server was down)")
        show(self.k.out("-n", NAMESPACE, "get", "pods,pvc"))
        self.health()

        say("The playbook's runbooks: kubectl apply -k manifests/demo/runbooks")
        docs = self.stack.runbooks()
        self.stack.apply_docs(docs)
        self.stack.wait_runbooks_checked([doc["metadata"]["name"] for doc in docs])
        show(self.k.out("-n", NAMESPACE, "get", "runbooks"))

    def health(self) -> int | None:
        answer = self.stack.http("GET", "/health")
        code, body = answer if answer else (None, "no container to ask")
        show(f"GET 127.0.0.1:{PORTS['dashboard']}/health -> {code or 'no answer'} {body[:110]}")
        return code

    # --- the incident ----------------------------------------------------------------------
    def break_and_respond(self) -> None:
        say(f"A bad deploy: kubectl set image deployment/dashboard dashboard={BROKEN}")
        self.k.out("-n", NAMESPACE, "set", "image", "deployment/dashboard", f"dashboard={BROKEN}")
        wait_until(lambda: self.stack.health() == 500, 180, "the broken build serving")
        self.health()

        spec = {
            "service": "dashboard",
            "summary": "/health returning 5xx errors",
            "impact": {"nonCoreFunctionalityDown": True},
            "acknowledgedBy": ONCALL,
            "roles": {"incidentCommander": COMMANDER, "technicalLead": ONCALL},
        }
        say(f"{ONCALL}, on call, opens an Incident: kubectl --as={ONCALL} create -f incident.yaml")
        show(yaml.safe_dump(self.incidents.manifest(self.name, spec), sort_keys=False))
        self.incidents.open(self.name, spec, ONCALL)

        say("The operator works the runbook (the Incident's timeline as it grows)")
        status = self.incidents.wait(
            self.name, {"AwaitingApproval", "Monitoring", "Escalated"}, on_status=self.follow
        )
        while status.get("phase") == "AwaitingApproval":
            step = str(status.get("currentStep"))
            say(f"The runbook asks for approval of '{step}': {COMMANDER}, the commander, approves")
            show(
                f"kubectl --as={COMMANDER} -n {NAMESPACE} patch inc {self.name} --type merge -p "
                f'\'{{"spec":{{"approvals":[{{"step":"{step}","decision":"Approved",'
                f'"by":"{COMMANDER}"}}]}}}}\''
            )
            self.incidents.approve(self.name, step, COMMANDER)
            status = self.incidents.wait(
                self.name, {"Monitoring", "Escalated"}, on_status=self.follow
            )
        if status.get("phase") != "Monitoring":
            show(self.incidents.explain(self.name))
            raise SystemExit(f"the runbook did not mitigate the outage: {status.get('phase')}")
        self.health()

        say(f"{COMMANDER} resolves it: kubectl --as={COMMANDER} patch inc ... spec.resolution")
        self.incidents.resolve(
            self.name,
            COMMANDER,
            "Build v2 shipped a broken health check; rolled back to v1",
            "Dashboard unavailable until the rollback",
        )
        self.incidents.wait(self.name, {"Resolved"}, timeout=60, on_status=self.follow)

    def follow(self, status: dict[str, Any]) -> None:
        """Print the timeline entries not printed yet."""
        timeline = status.get("timeline") or []
        for entry in timeline[self.printed :]:
            print(f"    {entry['time'][11:19]}  {entry['reason']:<22} {entry['message']}"[:160])
        self.printed = max(self.printed, len(timeline))
        sys.stdout.flush()

    # --- after -----------------------------------------------------------------------------
    def review(self) -> None:
        say(f"kubectl -n {NAMESPACE} get inc -o wide")
        show(self.k.out("-n", NAMESPACE, "get", "inc", self.name, "-o", "wide"))
        say(f"kubectl -n {NAMESPACE} describe inc {self.name}")
        show(self.k.out("-n", NAMESPACE, "describe", "inc", self.name))
        say(f"incident-operator report {self.name} -n {NAMESPACE}")
        report = subprocess.run(
            [
                sys.executable, "-m", "incident_operator", "report", self.name,
                "-n", NAMESPACE, "--kubeconfig", self.k.kubeconfig,
            ],
            capture_output=True,
            text=True,
            check=True,
        )  # fmt: skip
        show(report.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m incident_demo.story")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--kubectl", default=os.environ.get("KUBECTL", "kubectl"))
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help=f"the incident-operator checkout (default: ${ROOT_ENV}, else the one around "
        "this package)",
    )
    args = parser.parse_args(argv)
    Story(Kubectl(args.kubeconfig, args.kubectl), args.root).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
