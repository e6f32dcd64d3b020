"""The demo: a bad deploy takes the dashboard down and the operator runs the playbook.

    python -m incident_demo.story --kubeconfig PATH   (hack/demo.sh does the set-up)

It installs the CRDs and the shipped runbooks, brings up the demo workloads, starts the
operator, rolls out a broken dashboard build, opens an Incident, approves the rollback as
the incident commander would, resolves the incident and prints its timeline and report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from .stack import ROOT_ENV, LocalStack

NAMESPACE = "demo"


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def start_receiver() -> tuple[ThreadingHTTPServer, str]:
    """A local webhook that prints each notification: the playbook's message templates."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            print("\n    ┌─ notification (" + body["kind"] + ") " + "─" * 40)
            for line in body["text"].splitlines():
                print("    │ " + line)
            print("    └" + "─" * 56, flush=True)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/notify"


class Story:
    def __init__(self, kubeconfig: str, kubectl: str, root: Path | None = None) -> None:
        self.stack = LocalStack(kubeconfig, NAMESPACE, kubectl=kubectl, settle="3s", root=root)
        self.kubeconfig = kubeconfig
        self.incident = f"dashboard-outage-{time.strftime('%H%M%S')}"

    def k(self, *args: str, stdin: str | None = None) -> str:
        return self.stack.kubectl_run(*args, stdin=stdin)

    def status(self) -> dict[str, Any]:
        body = json.loads(self.k("get", "inc", self.incident, "-n", NAMESPACE, "-o", "json"))
        result: dict[str, Any] = body.get("status") or {}
        return result

    def wait_phase(self, phases: set[str], timeout: float = 180) -> dict[str, Any]:
        deadline, seen = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            status = self.status()
            phase = status.get("phase") or "(not triaged yet)"
            row = f"{phase} {status.get('currentStep') or ''}".strip()
            if row != seen:
                print(f"    phase: {row}", flush=True)
                seen = row
            if status.get("phase") in phases:
                return status
            time.sleep(0.5)
        raise TimeoutError(f"incident did not reach {phases} within {timeout:g}s")

    def run(self) -> None:
        say("Installing the CRDs (generated from the pydantic models)")
        print(self.k("apply", "--server-side", "-f", str(self.stack.root / "crds")).rstrip())
        self.k("create", "namespace", NAMESPACE, "--dry-run=client", "-o", "yaml")
        self.k(
            "apply",
            "-f",
            "-",
            stdin=yaml.safe_dump(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
            ),
        )
        say("Starting the demo workloads: dashboard, postgres, redis, prometheus")
        self.stack.start()
        print(f"    dashboard {self.stack.dashboard_url}  prometheus {self.stack.prometheus_url}")
        say("Applying the playbook's runbooks (manifests/runbooks, targets pointed at loopback)")
        self.k("apply", "-f", "-", stdin=yaml.safe_dump_all(self.stack.runbooks()))
        print(self.k("get", "rb", "-n", NAMESPACE).rstrip())
        receiver, url = start_receiver()
        self.k(
            "apply",
            "-f",
            "-",
            stdin=yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "demo-webhooks", "namespace": NAMESPACE},
                    "stringData": {"url": url},
                }
            ),
        )
        with tempfile.TemporaryDirectory() as tmp:
            policy = Path(tmp) / "policy.yaml"
            # One real minute is one playbook hour here, so updates show up during the demo.
            policy.write_text(
                yaml.safe_dump(
                    {
                        "timeScale": 60,
                        "channels": [
                            {
                                "name": "console",
                                "kind": "webhook",
                                "urlSecretRef": {"name": "demo-webhooks", "key": "url"},
                            }
                        ],
                    }
                )
            )
            operator = self.start_operator(policy, Path(tmp) / "operator.log")
            try:
                self.respond()
            finally:
                operator.terminate()
                operator.wait(timeout=30)
                self.stack.stop()
                receiver.shutdown()

    def start_operator(self, policy: Path, log: Path) -> subprocess.Popen[bytes]:
        say("Starting the operator (logs in a temporary file)")
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "INCIDENT_OPERATOR_NAMESPACE": NAMESPACE,
            "INCIDENT_OPERATOR_POLICY": str(policy),
            "INCIDENT_OPERATOR_TICK_SECONDS": "1",
        }
        return subprocess.Popen(
            [sys.executable, "-m", "incident_operator", "run", "--standalone", "-n", NAMESPACE],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def respond(self) -> None:
        say("Provoking the failure: rolling out the broken build v2-broken")
        self.k(
            "set",
            "image",
            "deployment/dashboard",
            "dashboard=incident-operator/dashboard:v2-broken",
            "-n",
            NAMESPACE,
        )
        deadline = time.monotonic() + 60
        while self.stack.dashboard_health() != 500 and time.monotonic() < deadline:
            time.sleep(0.3)
        print(f"    GET /health -> {self.stack.dashboard_health()}")
        manifest = {
            "apiVersion": "incidents.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": self.incident, "namespace": NAMESPACE},
            "spec": {
                "service": "dashboard",
                "summary": "/health returning 5xx errors",
                "impact": {"nonCoreFunctionalityDown": True},
                "acknowledgedBy": "oncall-alice",
                "roles": {"incidentCommander": "vp-eng-bob", "technicalLead": "tl-carol"},
            },
        }
        say("Opening the incident: kubectl apply -f incident.yaml")
        print(yaml.safe_dump(manifest, sort_keys=False).rstrip())
        self.k("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
        status = self.wait_phase({"AwaitingApproval", "Monitoring", "Escalated"})
        if status.get("phase") == "AwaitingApproval":
            step = status.get("currentStep")
            say(f"The runbook asks the incident commander to approve '{step}'")
            patch = json.dumps(
                {
                    "spec": {
                        "approvals": [{"step": step, "decision": "Approved", "by": "vp-eng-bob"}]
                    }
                }
            )
            print(f"    kubectl -n {NAMESPACE} patch inc {self.incident} --type merge -p '{patch}'")
            self.k("patch", "inc", self.incident, "-n", NAMESPACE, "--type", "merge", "-p", patch)
            status = self.wait_phase({"Monitoring", "Escalated"})
        print(f"    GET /health -> {self.stack.dashboard_health()}")
        say("Resolving: kubectl patch inc ... spec.resolution")
        self.k(
            "patch",
            "inc",
            self.incident,
            "-n",
            NAMESPACE,
            "--type",
            "merge",
            "-p",
            json.dumps(
                {
                    "spec": {
                        "resolution": {
                            "resolvedBy": "vp-eng-bob",
                            "rootCause": "Build v2 shipped a broken "
                            "health check; rolled back to v1",
                            "impact": "Dashboard unavailable",
                        }
                    }
                }
            ),
        )
        self.wait_phase({"Resolved"})
        time.sleep(1)  # let the resolution notification print before the summary
        say(f"kubectl get inc -n {NAMESPACE} -o wide")
        print(self.k("get", "inc", self.incident, "-n", NAMESPACE, "-o", "wide").rstrip())
        say(f"kubectl describe inc {self.incident} -n {NAMESPACE}")
        print(self.k("describe", "inc", self.incident, "-n", NAMESPACE).rstrip())
        say(f"incident-operator report {self.incident} -n {NAMESPACE}")
        report = subprocess.run(
            [
                sys.executable,
                "-m",
                "incident_operator",
                "report",
                self.incident,
                "-n",
                NAMESPACE,
                "--kubeconfig",
                self.kubeconfig,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        print(report.stdout.rstrip())
        say("Done. The cluster keeps running; stop it with: make cluster-down services-down")


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
    Story(args.kubeconfig, args.kubectl, args.root).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
