"""The committed CRDs must be exactly what the models generate."""

from __future__ import annotations

from pathlib import Path

from incident_operator.crdgen import crd_documents, crd_files
from incident_operator.models.actions import ACTION_TYPES

CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_committed_crds_match_the_models() -> None:
    generated = crd_files()
    committed = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert committed == generated, (
        "crds/ drifted from the models: run `incident-operator crds --write crds`"
    )


def test_crds_are_structural() -> None:
    forbidden = {"$ref", "$defs", "oneOf", "const", "default", "discriminator"}

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                assert key not in forbidden, f"{path}.{key} is not allowed in a CRD schema"
                if key == "additionalProperties":
                    assert value is not False, f"{path}: additionalProperties false"
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    for document in crd_documents():
        assert document["spec"]["group"] == "incidents.dev"
        for version in document["spec"]["versions"]:
            assert version["name"] == "v1alpha1"
            assert version["subresources"] == {"status": {}}
            walk(version["schema"]["openAPIV3Schema"], document["metadata"]["name"])


def test_action_union_lists_every_action() -> None:
    runbooks = next(d for d in crd_documents() if d["spec"]["names"]["kind"] == "Runbook")
    schema = runbooks["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    action = schema["properties"]["spec"]["properties"]["recovery"]["items"]["properties"]["action"]
    assert "restartWorkload" in action["properties"]["type"]["enum"]
    assert "redisFlushDb" in action["properties"]["type"]["enum"]
    assert sorted(action["properties"]["type"]["enum"]) == sorted(
        a.type_name() for a in ACTION_TYPES
    )
    rules = [r["rule"] for r in action["x-kubernetes-validations"]]
    assert "self.type != 'scaleWorkload' || (has(self.workload) && has(self.replicas))" in rules
