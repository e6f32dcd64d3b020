"""No shipped manifest holds a receiver token, and the receiver component takes its token and
TLS certificate from Secrets the admin creates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
COMPONENT = MANIFESTS / "components" / "alertmanager-receiver" / "kustomization.yaml"


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in MANIFESTS.rglob("*.y*ml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                found.append((path, doc))
    return found


def test_no_shipped_secret_holds_a_token() -> None:
    for path, doc in _documents():
        if doc.get("kind") != "Secret":
            continue
        keys = {**(doc.get("data") or {}), **(doc.get("stringData") or {})}
        assert not [k for k in keys if "token" in k.lower()], f"{path} ships a token"


def test_the_receiver_component_reads_its_token_and_certificate_from_secrets() -> None:
    component = yaml.safe_load(COMPONENT.read_text())
    ops = [op for patch in component["patches"] for op in yaml.safe_load(patch["patch"])]
    env = {op["value"]["name"]: op["value"] for op in ops if op["path"].endswith("/env/-")}
    assert "INCIDENT_OPERATOR_WEBHOOK_TOKEN" not in env, "a literal token would be in the spec"
    assert "INCIDENT_OPERATOR_WEBHOOK_INSECURE" not in env
    assert env["INCIDENT_OPERATOR_WEBHOOK_TOKEN_FILE"]["value"].startswith(
        "/etc/incident-operator/receiver/"
    )
    secrets = {
        op["value"]["secret"]["secretName"] for op in ops if op["path"].endswith("/volumes/-")
    }
    assert secrets == {"incident-operator-receiver", "incident-operator-receiver-tls"}
