"""Playbook: Recovery Procedures. Complete Service Restart after every server died, and
Database Restore from Backup: a real pg_dump taken beforehand, the writers stopped, the restore
and integrity Jobs run on the backup volume, the writers back."""

from __future__ import annotations

import json

import pytest
from tests.fixtures.cluster import eventually

from e2e.conftest import E2E_LABEL, apply_runbooks, phases, record_recovery, unique
from incident_demo.incidents import Incidents
from incident_demo.kube import Kubectl
from incident_demo.stack import COMMANDER, DBA, NAMESPACE, ONCALL, Stack

pytestmark = pytest.mark.cluster
SERVERS = ("postgres", "redis", "dashboard")
#: The Incident the database-restore runbook answers, as an alert would open it.
RESTORE_INCIDENT = {
    "service": "postgres",
    "summary": "Data corruption detected in inventory: restore from backup",
    "severity": 1,
    "acknowledgedBy": ONCALL,
    "roles": {"incidentCommander": COMMANDER, "databaseAdministrator": DBA},
    "source": {"kind": "Alertmanager", "alertName": "DatabaseCorruption"},
}


def test_complete_service_restart_brings_every_server_back(
    stack: Stack, incidents: Incidents, request: pytest.FixtureRequest
) -> None:
    apply_runbooks(stack)
    before = {app: stack.server_identity(app) for app in (*SERVERS, "prometheus")}
    for app in SERVERS:
        stack.kill_server(app)
    eventually(lambda: stack.health() == 0, what="the dashboard gone")
    eventually(lambda: not stack.ready("dashboard"), what="the dashboard pod not Ready")
    name = unique("outage")
    spec = {
        "service": "platform",
        "summary": "Complete outage, all services down",
        "impact": {"allUsersAffected": True},
        "acknowledgedBy": ONCALL,
        "roles": {"incidentCommander": COMMANDER},
    }
    incidents.open(name, spec, ONCALL, E2E_LABEL)

    status = incidents.wait(name, {"Monitoring", "Escalated"}, timeout=300, approver=COMMANDER)
    assert status["phase"] == "Monitoring", incidents.explain(name)
    assert status["runbook"] == "complete-service-restart"
    assert status["severity"] == 1
    done = incidents.steps(name)
    assert done["dashboard-status"]["phase"] == "Failed"
    assert done["restart-postgres"]["decidedBy"] == COMMANDER
    for step in (
        "restart-postgres",
        "restart-redis",
        "clear-caches",
        "restart-dashboard",
        "restart-prometheus",
        "check-postgres",
        "check-dashboard",
        "check-prometheus",
    ):
        assert done[step]["phase"] == "Succeeded", step
    # Each server is a new process (Prometheus too: restarted although it was up).
    after = {app: stack.server_identity(app) for app in before}
    assert [app for app in before if after[app] == before[app]] == []
    assert stack.health() == 200
    record_recovery(request, status, name)
    incidents.resolve(name, COMMANDER, "every server of the stack was killed")


def test_database_restore_from_backup(
    stack: Stack, incidents: Incidents, kube: Kubectl, request: pytest.FixtureRequest
) -> None:
    apply_runbooks(stack)
    stack.psql(
        "DELETE FROM inventory WHERE sku LIKE 'E2E-%'; "
        "INSERT INTO inventory (sku, name, quantity, price) "
        "SELECT 'E2E-' || g, 'restore test item ' || g, g % 50, 1.25 "
        "FROM generate_series(1, 1000) AS g"
    )
    rows = int(stack.psql("SELECT count(*) FROM inventory"))
    # A backup, as the CronJob takes every 15 minutes.
    backup = unique("e2e-backup")
    log = stack.backup(backup)
    assert log.startswith("backup ") and " tables" in log, log
    request.addfinalizer(
        lambda: kube.out("-n", NAMESPACE, "delete", "job", backup, "--ignore-not-found")
    )
    # Then the data is damaged: a third of the rows gone, others overwritten.
    stack.psql("DELETE FROM inventory WHERE sku LIKE 'E2E-%' AND id % 3 = 0")
    stack.psql("UPDATE inventory SET quantity = -1 WHERE sku LIKE 'E2E-%'")
    assert int(stack.psql("SELECT count(*) FROM inventory")) < rows

    name = unique("restore")
    incidents.open(name, RESTORE_INCIDENT, ONCALL, E2E_LABEL)
    status = incidents.wait(name, {"AwaitingApproval", "Escalated"}, timeout=120)
    assert status["phase"] == "AwaitingApproval", incidents.explain(name)
    assert status["runbook"] == "database-restore"
    assert status["currentStep"] == "stop-writers"

    incidents.approve(name, "stop-writers", DBA)
    status = incidents.wait(name, {"Monitoring", "Escalated"}, timeout=600)
    assert status["phase"] == "Monitoring", incidents.explain(name)
    done = incidents.steps(name)
    assert phases(done) == {
        "connectivity": "Succeeded",
        "database-size": "Succeeded",
        "stop-writers": "Succeeded",
        "restore": "Succeeded",
        "verify": "Succeeded",
        "integrity-check": "Succeeded",
        "start-writers": "Succeeded",
    }
    # The writers were stopped before the restore and came back after the integrity check.
    assert done["stop-writers"]["findings"]["previousReplicas"] in (1, "1")
    assert done["stop-writers"]["finishedAt"] <= done["restore"]["startedAt"]
    assert done["integrity-check"]["finishedAt"] <= done["start-writers"]["startedAt"]
    # Both Jobs ran their commands in the cluster; their exit codes were read.
    for job in ("restore", "integrity-check"):
        assert done[job]["findings"]["exitCode"] in (0, "0"), done[job]
    assert "restored retail from /backups/postgresql/latest.sql" in done["restore"]["output"]
    assert (
        f"public.inventory: {rows} rows in the backup, {rows} in the database"
        in (done["integrity-check"]["output"])
    )
    assert int(stack.psql("SELECT count(*) FROM inventory")) == rows
    assert stack.psql("SELECT count(*) FROM inventory WHERE quantity = -1") == "0"
    assert stack.health() == 200
    replicas = kube.out(
        "-n", NAMESPACE, "get", "deployment/dashboard", "-o", "jsonpath={.spec.replicas}"
    )
    assert replicas == "1"
    ttr = record_recovery(request, status, name)
    print(f"database-restore: time to recover {ttr:.0f} s against the playbook's RTO of 10-20 min")
    incidents.resolve(name, DBA, "inventory rows lost; restored the last backup")


def overwrite_latest_backup(kube: Kubectl, name: str, text: str) -> None:
    """A Job that writes ``text`` over postgresql/latest.sql on the backup claim."""
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "write",
                            "image": "localhost/incident-demo-postgres:dev",
                            "imagePullPolicy": "Never",
                            "command": [
                                "sh",
                                "-c",
                                'printf "%s\\n" "$TEXT" >/backups/postgresql/latest.sql',
                            ],
                            "env": [{"name": "TEXT", "value": text}],
                            "volumeMounts": [{"name": "backups", "mountPath": "/backups"}],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "backups",
                            "persistentVolumeClaim": {"claimName": "postgres-backups"},
                        }
                    ],
                }
            },
        },
    }
    kube.out("apply", "-f", "-", stdin=json.dumps(job))
    kube.out("-n", NAMESPACE, "wait", "--for=condition=complete", f"job/{name}", "--timeout=120s")
    kube.out("-n", NAMESPACE, "delete", "job", name)


def test_failed_restore_escalates_and_keeps_the_writers_stopped(
    stack: Stack, incidents: Incidents, kube: Kubectl, request: pytest.FixtureRequest
) -> None:
    """The restore Job's command fails (a damaged backup file): its exit code is read, the
    Incident escalates, and the writers stay stopped on a database nobody has checked."""
    apply_runbooks(stack)
    backup = unique("e2e-backup")
    stack.backup(backup)
    overwrite_latest_backup(kube, unique("e2e-damage"), "SELEKT 'not a dump';")

    def good_backup_again() -> None:
        kube.out("-n", NAMESPACE, "delete", "job", backup, "--ignore-not-found")
        again = unique("e2e-backup")
        stack.backup(again)
        kube.out("-n", NAMESPACE, "delete", "job", again)

    request.addfinalizer(good_backup_again)
    rows = stack.psql("SELECT count(*) FROM inventory")
    name = unique("restore-fails")
    incidents.open(name, RESTORE_INCIDENT, ONCALL, E2E_LABEL)
    status = incidents.wait(name, {"Escalated", "Monitoring"}, timeout=300, approver=DBA)
    assert status["phase"] == "Escalated", incidents.explain(name)
    done = incidents.steps(name)
    restore = done["restore"]
    assert restore["phase"] == "Failed"
    assert restore["findings"]["exitCode"] in (3, "3")  # psql -v ON_ERROR_STOP=1: script error
    assert "SELEKT" in restore.get("output", "")
    assert "integrity-check" not in done or done["integrity-check"]["phase"] == "Pending"
    assert "start-writers" not in done or done["start-writers"]["phase"] == "Pending"
    replicas = kube.out(
        "-n", NAMESPACE, "get", "deployment/dashboard", "-o", "jsonpath={.spec.replicas}"
    )
    assert replicas == "0"
    assert stack.psql("SELECT count(*) FROM inventory") == rows  # one transaction: untouched
    escalated = next(c for c in status["conditions"] if c["type"] == "Escalated")
    assert escalated["reason"] == "RecoveryFailed"
    assert "exit code 3" in status["escalation"]["reason"]
